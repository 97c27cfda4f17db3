"""The Runs view's lab tools on a real index and real widgets: setting columns, the chooser and "only what
varies", collapsible sections, groups, parallel-coordinate brushing, saved views across a reopened view."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from app.runs.feed import RunsPager, brush_query, combined_where
from app.runs.view import RunsView
from app.widgets.parallel import layout
from db import Store
from db.paper_table import markdown
from db.testing import write_lab
from tests.fixtures import ingest


@pytest.fixture
def lab(workspace):
    truth = write_lab(workspace, n_Ts=(1000, 256, 64), seeds=2)
    ingest(workspace)
    return truth


def open_view(qtbot, store: Store) -> RunsView:
    view = RunsView(RunsPager(store))
    qtbot.addWidget(view)
    view.resize(1200, 800)
    view.show()
    view.reload()
    return view


def shown_ids(view: RunsView) -> list[str]:
    return [view.model.run_at(r).id for r in range(view.model.rowCount())]


def column_texts(view: RunsView, column: str) -> list[str]:
    c = view.model.column_names().index(column)
    return [view.model.index(r, c).data() for r in range(view.model.rowCount())]


def test_chooser_offers_settings_by_section_searches_and_shows_only_what_varies(qtbot, store, lab):
    view = open_view(qtbot, store)
    view.kind.setCurrentIndex(view.kind.findData("train"))
    view.lab.choose_columns()
    chooser = view.lab.chooser
    sections = [chooser.tree.topLevelItem(i).text(0) for i in range(chooser.tree.topLevelItemCount())]
    assert sections == ["metrics", "network", "diffusion", "training", "evaluation"]
    chooser.only_varying.setChecked(True)
    settings = [k for k in chooser.visible_keys() if k not in ("best", "best_t", "best_layer", "gain_pixels",
                                                                  "gain_random", "fid", "fid_step", "loss")]
    assert sorted(settings) == ["diffusion.n_T", "seed"]       # among train runs, only T and the seed differ
    chooser.only_varying.setChecked(False)
    chooser.search.setText("n_t")
    assert chooser.visible_keys() == ["diffusion.n_T"]
    chooser.check("diffusion.n_T")
    chooser.check("fid")
    assert view.model.extra_columns() == ["diffusion.n_T", "fid"]
    c = view.model.column_names().index("diffusion.n_T")
    assert view.model.headerData(c, Qt.Orientation.Horizontal) == "diffusion\nn_T"
    by_id = {rid: t for rid, t in lab.items()}
    assert column_texts(view, "diffusion.n_T") == [str(by_id[rid]["n_T"]) for rid in shown_ids(view)]
    assert column_texts(view, "fid") == [f"{by_id[rid]['fid']:.2f}" for rid in shown_ids(view)]
    # A click on the setting's header sorts by it, in the database.
    view.table.horizontalHeader().setSortIndicator(c, Qt.SortOrder.AscendingOrder)
    assert [by_id[rid]["n_T"] for rid in shown_ids(view)] == [64, 64, 256, 256, 1000, 1000]
    # Collapsing a section leaves one column headed by the section.
    chooser.search.clear()
    chooser.check("network.ch")
    chooser.check("diffusion.betas")
    view.lab.toggle_section("diffusion")
    columns = view.model.column_names()
    first, second = columns.index("diffusion.n_T"), columns.index("diffusion.betas")
    assert view.table.isColumnHidden(second) and not view.table.isColumnHidden(first)
    assert view.model.headerData(first, Qt.Orientation.Horizontal) == "▸ diffusion\n(2 columns)"
    view.lab.toggle_section("diffusion")
    assert not view.table.isColumnHidden(second)


def test_brushing_an_axis_filters_the_table_and_feeds_compare(qtbot, store, lab):
    view = open_view(qtbot, store)
    view.kind.setCurrentIndex(view.kind.findData("train"))
    view.lab.plot_button.setChecked(True)
    view.lab.plot.set_axes(["diffusion.n_T", "best", "seed"], color_by="best")
    plot = view.lab.plot.plot
    assert len(plot.run_ids) == 6 and [a.column for a in plot.axes] == ["diffusion.n_T", "best", "seed"]
    plot.set_brush("diffusion.n_T", 200, 300)
    wanted = sorted(rid for rid, t in lab.items() if t["n_T"] == 256)
    assert sorted(shown_ids(view)) == wanted and view.pager.total == 2
    assert sorted(plot.brushed_ids()) == wanted
    assert len(plot.run_ids) == 6                  # the plot still shows what lies outside the brush
    with qtbot.waitSignal(view.compare, timeout=2000) as compared:
        view.lab.plot.compare_button.click()
    assert sorted(compared.args[0]) == wanted
    view.lab.plot.clear_brushes()
    assert view.pager.total == 6


def test_axis_positions_numbers_by_range_texts_by_rank_missing_as_nan():
    nan = float("nan")
    axes, positions = layout(["diffusion.n_T", "model_type", "mixed", "empty"],
                             [(64, None, 1000, 298), ("EDM", "DDPM", None, "None"), ("64", 128, None, 128),
                              (None,) * 4])
    assert (axes[0].low, axes[0].high) == (64, 1000)
    assert positions[:, 0] == pytest.approx([0, nan, 1, 0.25], nan_ok=True)
    assert axes[1].categories == ("DDPM", "EDM", "None")          # a missing value is not the text "None"
    assert positions[:, 1] == pytest.approx([0.5, 0, nan, 1], nan_ok=True)
    assert axes[2].categories == ("128", "64")                    # a text among numbers: all ranked as texts
    assert positions[:, 2] == pytest.approx([1, 0, nan, 0], nan_ok=True)
    assert positions[:, 3] == pytest.approx([nan] * 4, nan_ok=True)


def test_brushes_become_query_conditions():
    assert brush_query("lr", (0.0001, 0.0005)) == "lr in 0.0001..0.0005"
    assert brush_query("model_type", ("DDPM", "it's")) == "model_type in ('DDPM', \"it's\")"
    assert combined_where("best > 0.5 or tag:x", {"seed": (0, 1)}) == "(best > 0.5 or tag:x) and seed in 0..1"
    assert combined_where(None, {}) is None


def test_groups_panel_matches_its_members_and_exports_the_paper_table(qtbot, store, lab):
    view = open_view(qtbot, store)
    view.kind.setCurrentIndex(view.kind.findData("train"))
    view.lab.group_button.setChecked(True)
    panel = view.lab.groups
    panel.set_grouping(["diffusion.n_T"], ["best", "fid"])
    assert panel.model.rowCount() == 3
    assert [panel.model.item(r, 0).text() for r in range(3)] == [
        "diffusion.n_T = 64", "diffusion.n_T = 256", "diffusion.n_T = 1000"]
    panel.tree.expand(panel.model.index(1, 0))
    assert sorted(panel.member_ids(1)) == sorted(rid for rid, t in lab.items() if t["n_T"] == 256)
    member = panel.model.item(1, 0).child(0, 0)
    panel.tree.expand(member.index())               # a train run expands to its children
    assert {member.child(r, 0).text().split("  (")[1].split(",")[0] for r in range(member.rowCount())} == {
        "probe", "fid"}
    groups = store.group_runs(["diffusion.n_T"], ["best", "fid"], kind="train")
    assert panel.markdown() == markdown(groups, ["diffusion.n_T"], ["best", "fid"])
    assert "| 256 | 2 | 54.06 ± 2.12 | 27.94 ± 0.71 | fast | 30.00 / 20.00 |" in panel.markdown()


def test_saved_views_come_back_in_a_reopened_view(qtbot, workspace, lab):
    with Store.open(workspace) as store:
        view = open_view(qtbot, store)
        view.lab.set_columns(["diffusion.n_T", "seed", "fid"])
        view.query.setText("kind = train and diffusion.n_T >= 256")
        qtbot.keyClick(view.query, Qt.Key.Key_Return)
        view.table.horizontalHeader().setSortIndicator(view.model.column_names().index("fid"),
                                                       Qt.SortOrder.AscendingOrder)
        view.lab.group_button.setChecked(True)
        view.lab.groups.set_grouping(["diffusion.n_T"], ["best", "loss"])
        view.lab.plot_button.setChecked(True)
        view.lab.plot.set_axes(["diffusion.n_T", "best"], color_by="seed")
        view.lab.toggle_section("diffusion")
        view.lab.save_view("ablation")
        saved = view.lab.state()
        view.close()
    assert (workspace / "run_views.json").is_file()
    with Store.open(workspace) as store:
        again = open_view(qtbot, store)
        assert again.lab.views.currentText() == "ablation"
        assert again.lab.state() == saved
        assert again.model.extra_columns() == ["diffusion.n_T", "seed", "fid"]
        assert again.query.text() == "kind = train and diffusion.n_T >= 256"
        assert (again.pager.where, again.pager.order_by, again.pager.descending) == (
            "kind = train and diffusion.n_T >= 256", "fid", False)
        fids = [lab[rid]["fid"] for rid in shown_ids(again)]
        assert fids == sorted(fids) and len(fids) == 4
        assert again.lab.group_button.isChecked() and again.lab.groups.model.rowCount() == 2
        assert again.lab.plot.isVisibleTo(again) and again.lab.plot.axes() == ["diffusion.n_T", "best"]
        again.lab.views.setCurrentIndex(0)          # no view: the next opening starts plain
        assert again.lab.saved.last is None


def test_a_runs_row_copies_as_the_official_readme_row(qtbot, store, lab):
    from PySide6.QtGui import QGuiApplication

    view = open_view(qtbot, store)
    train = next(iter(lab))
    view.select([train])
    view._copy_readme_row()
    text = QGuiApplication.clipboard().text()
    assert text == store.readme_row(train) and "<td>T1000 seed 0</td>" in text
    probe = next(r.id for r in store.list_runs(kind="fid"))
    view.select([probe])
    view._copy_readme_row()
    assert "has no probe and FID results" in view.message.text()


def test_parallel_coordinates_draw_one_line_per_group_at_its_means(qtbot, store, lab):
    view = open_view(qtbot, store)
    view.kind.setCurrentIndex(view.kind.findData("train"))
    view.lab.group_button.setChecked(True)
    view.lab.groups.set_grouping(["diffusion.n_T"], ["best"])
    view.lab.plot_button.setChecked(True)
    view.lab.plot.set_axes(["diffusion.n_T", "best"])
    view.lab.plot.per_group.setChecked(True)
    plot = view.lab.plot.plot
    assert plot.run_ids == ["diffusion.n_T=64", "diffusion.n_T=256", "diffusion.n_T=1000"]
    means = {g.values[0]: g.stats["best"].mean for g in store.group_runs(["diffusion.n_T"], ["best"], kind="train")}
    best = plot.axes[1]
    assert [best.value_at(p) for p in plot.positions[:, 1]] == pytest.approx([means[64], means[256], means[1000]])
    assert not view.lab.plot.compare_button.isEnabled()


def test_hiding_the_plot_drops_its_brushes(qtbot, store, lab):
    view = open_view(qtbot, store)
    view.lab.plot_button.setChecked(True)
    view.lab.plot.set_axes(["diffusion.n_T", "best"])
    view.lab.plot.plot.set_brush("diffusion.n_T", 1000, 1000)
    assert view.pager.total == 6                   # the train, probe and FID runs of T=1000
    view.lab.plot_button.setChecked(False)
    assert view.pager.brushes == {} and view.pager.total == 18


def test_the_plot_reads_its_axes_again_only_when_the_runs_or_the_filters_change(qtbot, store, lab, workspace):
    from db.testing import run_id, write_run

    pager = RunsPager(store)
    first = pager.axes(["diffusion.n_T", "best"])
    pager.brushes = {"best": (0.5, 0.6)}
    assert pager.axes(["diffusion.n_T", "best"]) is first          # brushing: the same values
    write_run(workspace, run_id("train", 99), config={"diffusion": {"n_T": 32}})
    ingest(workspace)
    again = pager.axes(["diffusion.n_T", "best"])
    assert again is not first and 32 in again.values[0]
    pager.kind = "probe"
    assert len(pager.axes(["diffusion.n_T", "best"]).run_ids) == 6


def drag(plot, axis: int, low: float, high: float) -> None:
    """A real left-button drag along axis `axis` of a ParallelCoordinates, from `low` to `high` (0..1)."""
    from PySide6.QtCore import QEvent, QPointF
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    widget = plot.plot

    def at(y: float):
        return widget.mapFromScene(plot._box.mapViewToScene(QPointF(axis, y)))

    def send(kind, pos, buttons) -> None:
        event = QMouseEvent(kind, QPointF(pos), QPointF(widget.viewport().mapToGlobal(pos)),
                            Qt.MouseButton.LeftButton, buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(widget.viewport(), event)

    start, end = at(low), at(high)
    send(QEvent.Type.MouseButtonPress, start, Qt.MouseButton.LeftButton)
    for i in range(1, 6):
        send(QEvent.Type.MouseMove, start + (end - start) * i / 5, Qt.MouseButton.LeftButton)
    send(QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)


def test_a_mouse_drag_along_an_axis_filters_the_table(qtbot, store, lab):
    view = open_view(qtbot, store)
    view.kind.setCurrentIndex(view.kind.findData("train"))
    view.lab.plot_button.setChecked(True)
    view.lab.plot.set_axes(["best", "diffusion.n_T"])
    qtbot.waitExposed(view)
    drag(view.lab.plot.plot, 0, 0.55, 1.0)         # the upper part of the best-accuracy axis
    low, high = view.pager.brushes["best"]
    wanted = sorted(rid for rid, t in lab.items() if low <= t["best"] <= high)
    assert 0 < len(wanted) < len(lab) and sorted(shown_ids(view)) == wanted
