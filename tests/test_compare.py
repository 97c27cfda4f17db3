"""CompareView on real runs (two micro models, probed with different grids) and on live, synthetic ones."""

from __future__ import annotations

import csv
import math
import xml.dom.minidom
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.compare.feed import flatten, spec_differences
from app.compare.view import CompareView
from db import Ingester, Store, testing as fake
from tests.app_support import app_settings, compare_runs, compare_view  # noqa: F401 - fixture

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.fixture(autouse=True)
def _own_settings(app_settings):
    """Compare remembers its runs in the settings: each test has its own file."""


@pytest.fixture
def compare(qtbot, gui_store) -> CompareView:
    view = compare_view(qtbot, gui_store)
    view.resize(1100, 750)
    view.show()
    return view


def test_compare_two_runs_with_different_grids_shows_their_difference(compare, gui_workspace, gui_store):
    ws = gui_workspace
    compare_runs(compare, [ws.probe_a, ws.probe_b])
    grids = compare.grids
    assert set(grids.heatmaps) == {ws.probe_a, ws.probe_b}
    # One colour scale for both grids.
    assert grids.heatmaps[ws.probe_a].levels() == grids.heatmaps[ws.probe_b].levels()
    # How sure each grid is, from its grid.json: 64 test images, 10 classes, chance marked, no scale finer
    # than a cell's 95% interval on 64 images (over 13 points wide for any cell between 10% and 90%).
    heatmap = grids.heatmaps[ws.probe_a]
    assert "on 64 test images" in heatmap.readout_at(0.5, 0.5)
    assert heatmap.baseline_mark("chance") == pytest.approx(0.1, abs=1e-6)
    lo, hi = heatmap.levels()
    assert hi - lo >= 0.13
    a = {(c.timestep, c.layer): c.accuracy for c in gui_store.grid_cells(ws.probe_a)}
    b = {(c.timestep, c.layer): c.accuracy for c in gui_store.grid_cells(ws.probe_b)}
    assert {t for t, _ in a} == {11, 51} and {t for t, _ in b} == {11, 101}
    grids.combo_a.setCurrentIndex(grids.combo_a.findData(ws.probe_a))
    grids.combo_b.setCurrentIndex(grids.combo_b.findData(ws.probe_b))
    difference = grids.difference
    assert difference.axes()[0] == [11, 51, 101]                       # both grids' timesteps
    assert difference.cells() == pytest.approx({key: b[key] - a[key] for key in a.keys() & b.keys()})
    assert {t for t, _ in difference.cells()} == {11}                  # only shared cells get a value
    assert difference.text_of(51, "out_1") == ""
    lo, hi = difference.levels()
    assert lo == -hi and difference.outlined_cell() is None
    # Swapping A and B flips the sign.
    grids.combo_a.setCurrentIndex(grids.combo_a.findData(ws.probe_b))
    grids.combo_b.setCurrentIndex(grids.combo_b.findData(ws.probe_a))
    assert difference.cells() == pytest.approx({key: a[key] - b[key] for key in a.keys() & b.keys()})


def test_compare_train_runs_overlays_every_panel_in_one_colour_per_run(compare, gui_workspace, gui_store):
    ws = gui_workspace
    compare_runs(compare, [ws.train_a, ws.train_b])
    runs = [ws.train_a, ws.train_b]
    assert compare.loss_plot.series_names() == runs
    for run_id in runs:
        history = gui_store.metric_history(run_id, "loss/train")
        steps, values, _ = compare.loss_plot.series_data(run_id)
        assert steps.tolist() == list(history.steps) and values.tolist() == list(history.values)
        colour = compare.colors[run_id]
        assert compare.loss_plot._series[run_id].color == colour
        assert colour.name() in compare.grids.heatmaps[run_id].plot.titleLabel.text
        assert colour.name() in compare.samples.viewers[run_id].title_label.text()
    assert compare.colors[ws.train_a] != compare.colors[ws.train_b]
    # Train runs bring their probe child's grid, the noisy child's curve and their samples.
    assert set(compare.grids.heatmaps) == set(runs)
    assert compare.noise_plot.series_names() == [ws.train_a]
    accuracy = gui_store.metric_history(ws.noisy_a, "noisy/accuracy")
    assert compare.noise_plot.series_data(ws.train_a)[0].tolist() == list(accuracy.steps)
    compare.sigma_box.setChecked(True)
    sigma = gui_store.metric_history(ws.noisy_a, "noisy/sigma")
    assert compare.noise_plot.series_data(ws.train_a)[0].tolist() == sorted(sigma.values)
    assert compare.noise_plot.log_x_box.isChecked()
    # Samples: one slider drives both viewers.
    assert compare.samples.current_step() == 8
    compare.samples.set_step(3)
    assert all(v.current_step() == 4 for v in compare.samples.viewers.values())
    assert compare.samples.step_label.text() == "step 4"


def test_compare_tables_show_best_cells_final_loss_and_only_differing_spec_keys(compare, gui_workspace, gui_store):
    ws = gui_workspace
    compare_runs(compare, [ws.train_a, ws.train_b])
    headers = compare.summary_model.headers()
    assert headers[:6] == ["run", "kind", "best cell", "best accuracy", "final loss", "best noisy accuracy"]
    rows = {row[0]: row for row in compare.summary_model.rows()}
    run_a = gui_store.get_run(ws.train_a)
    best = max(gui_store.grid_cells(ws.probe_a), key=lambda c: c.accuracy)
    assert rows[run_a.name][3] == pytest.approx(best.accuracy)
    assert rows[run_a.name][4] == pytest.approx(gui_store.metric_history(ws.train_a, "loss/train").values[-1])
    assert rows[gui_store.get_run(ws.train_b).name][5] is None             # no noisy classifier there
    # Each grid's protocol and baselines beside its best cell, as its heatmap marks them.
    assert headers[6:9] == ["protocol", "raw pixels", "random init"]
    grid_a = compare.grids.heatmaps[ws.train_a].baselines()
    assert rows[run_a.name][6] == "fast" and set(grid_a) == {"raw pixels", "random init"}
    assert rows[run_a.name][7] == pytest.approx(grid_a["raw pixels"])
    assert compare.grids.heatmaps[ws.train_a].levels()[0] <= min(grid_a.values())
    spec_keys = [row[0] for row in compare.spec_model.rows()]
    assert "config.network.dropout" in spec_keys and "options.lr" in spec_keys
    assert "config.network.n_channels" not in spec_keys and "id" not in spec_keys
    assert compare.spec_model.headers() == ["spec key", run_a.name, gui_store.get_run(ws.train_b).name]


def test_compare_spec_differences_flatten_nested_keys():
    assert flatten({"config": {"network": {"n_channels": 128, "ch_mults": [1, 2]}}, "data": None}) == {
        "config.network.n_channels": 128, "config.network.ch_mults": [1, 2], "data": None}
    diffs = dict(spec_differences({"a": {"x": {"y": 1, "z": 2}, "id": "a"}, "b": {"x": {"y": 1, "z": 3}, "id": "b"},
                                   "c": {"x": {"y": 1}, "id": "c"}}))
    assert list(diffs) == ["x.z"]


def test_compare_exports_write_files(compare, gui_workspace, gui_store, tmp_path):
    ws = gui_workspace
    compare_runs(compare, [ws.train_a, ws.train_b])
    written = compare.export_all(tmp_path / "out")
    names = {p.name for p in written}
    assert {"loss.png", "loss.svg", "loss.csv", "grid_difference.csv", "summary.csv",
            "spec_differences.csv", "accuracy_vs_noise.csv"} <= names
    for path in written:
        assert path.is_file() and path.stat().st_size > 0
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG_MAGIC
        if path.suffix == ".svg":
            assert xml.dom.minidom.parse(str(path)).documentElement.tagName == "svg"
    loss_rows = read_csv(tmp_path / "out" / "loss.csv")[1:]
    for run_id in (ws.train_a, ws.train_b):
        history = gui_store.metric_history(run_id, "loss/train")
        mine = [r for r in loss_rows if r[0] == run_id]
        assert [int(r[1]) for r in mine] == list(history.steps)
        assert [float(r[2]) for r in mine] == list(history.values)
    name_a = gui_store.get_run(ws.train_a).name
    grid_rows = read_csv(tmp_path / "out" / f"grid_{name_a}.csv")
    cells = gui_store.grid_cells(ws.probe_a)
    assert sorted((int(t), layer, float(acc)) for t, layer, acc in grid_rows[1:]) == \
        sorted((c.timestep, c.layer, c.accuracy) for c in cells)
    spec_rows = read_csv(tmp_path / "out" / "spec_differences.csv")
    assert spec_rows[0][0] == "spec key" and len(spec_rows) - 1 == compare.spec_model.rowCount()


# Live updates, on synthetic run folders (no engine needed).
class CountingStore:
    """The Store, counting calls by method name."""

    def __init__(self, store: Store):
        self._store, self.calls = store, {}

    def __getattr__(self, name):
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            return attr(*args, **kwargs)
        return counted


def test_compare_refresh_is_one_query_when_nothing_changed_and_appends_new_points(qtbot, workspace):
    runs = [fake.run_id("train", i) for i in (1, 2)]
    for rid in runs:
        fake.write_run(workspace, rid, events=[fake.metric("loss/train", s, 1 / (1 + s), 1000.0 + s)
                                               for s in range(0, 50, 5)])
    store = Store.open(workspace)
    ingester = Ingester(store, workspace)
    ingester.acquire()
    try:
        ingester.ingest_once()
        counting = CountingStore(store)
        view = compare_view(qtbot, counting)
        compare_runs(view, runs)
        assert len(view.loss_plot.series_data(runs[0])[0]) == 10
        counting.calls.clear()
        view.hub.poll()
        view.hub.poll()
        assert counting.calls == {"data_version": 2}
        run_dir = store.run_dir(runs[0])
        fake.append(run_dir, [fake.metric("loss/train", s, 0.01, 2000.0 + s) for s in range(50, 60)])
        ingester.ingest_once()
        counting.calls.clear()
        view.hub.poll()
        view.loss_plot.flush()
        steps, values, times = view.loss_plot.series_data(runs[0])
        assert steps.tolist() == list(range(0, 50, 5)) + list(range(50, 60))
        assert values[-1] == 0.01 and not math.isnan(times[-1])
        assert counting.calls.get("metric_history", 0) >= 1
        assert len(view.loss_plot.series_data(runs[1])[0]) == 10
        view.close()
    finally:
        ingester.release()
        store.close()


def test_compare_reads_nothing_while_hidden_and_catches_up_when_shown_again(qtbot, workspace):
    runs = [fake.run_id("train", i) for i in (1, 2)]
    for rid in runs:
        fake.write_run(workspace, rid, events=[fake.metric("loss/train", s, 1.0, 1000.0 + s) for s in range(0, 50, 5)])
    store = Store.open(workspace)
    ingester = Ingester(store, workspace)
    ingester.acquire()
    try:
        ingester.ingest_once()
        counting = CountingStore(store)
        view = compare_view(qtbot, counting)
        compare_runs(view, runs)
        view.hide()                                 # another tab is in front
        fake.append(store.run_dir(runs[0]), [fake.metric("loss/train", s, 0.5, 2000.0 + s) for s in range(50, 60)])
        ingester.ingest_once()
        counting.calls.clear()
        view.hub.poll()
        assert "metric_history" not in counting.calls and "get_run" not in counting.calls
        assert len(view.loss_plot.series_data(runs[0])[0]) == 10
        view.show()
        view.hub.poll()                             # one read of what changed while it was hidden
        view.loss_plot.flush()
        assert len(view.loss_plot.series_data(runs[0])[0]) == 20
        view.close()
    finally:
        ingester.release()
        store.close()


def test_compare_tells_runs_with_one_name_apart(qtbot, workspace):
    runs = [fake.run_id("train", i) for i in (1, 2)]
    for rid in runs:
        fake.write_run(workspace, rid, name="gui-small", events=[fake.metric("loss/train", s, 1 / (1 + s), 1000.0 + s)
                                                                 for s in range(0, 50, 5)])
    with Store.open(workspace) as store:
        with Ingester(store) as ingester:
            ingester.ingest_once()
        view = compare_view(qtbot, store)
        compare_runs(view, runs)
        labels = [b.name for b in view.bundles()]
        assert labels == [f"gui-small [{rid}]" for rid in runs]
        assert all(label in view.header.text() for label in labels)
        view.close()


def test_compare_two_probes_of_one_parent_share_its_loss_curve_and_empty_plots_say_why(compare, gui_workspace):
    ws = gui_workspace
    second = fake.run_id("probe", 99)
    compare_runs(compare, [ws.probe_a, ws.train_b])
    assert compare.loss_plot.series_names() == [ws.train_a, ws.train_b]       # keyed by the train run
    assert "(parent of" in compare.loss_plot._series[ws.train_a].label
    # No noisy classifier among these runs: the plot says so instead of showing empty axes.
    compare_runs(compare, [ws.probe_a, ws.probe_b])
    assert compare.noise_plot.is_empty() and not compare.noise_plot.empty_label.isHidden()
    assert "noise-conditional classifier" in compare.noise_plot.empty_label.text()
    assert compare.loss_plot.empty_label.isHidden()
    compare_runs(compare, [ws.train_a, ws.noisy_a])
    assert compare.noise_plot.empty_label.isHidden() and not compare.noise_plot.plot_widget.isHidden()
    assert second not in compare.run_ids()


def test_compare_shares_one_curve_for_two_probes_of_one_parent(qtbot, workspace):
    train = fake.write_run(workspace, fake.run_id("train", 1), name="parent",
                           events=[fake.metric("loss/train", s, 1 / (1 + s), 1000.0 + s) for s in range(0, 50, 5)]
                           + [fake.image(45)])
    probes = [fake.write_run(workspace, fake.run_id("probe", i), kind="probe", name=f"grid {i}",
                             parent={"run": train.name, "checkpoint": "latest"}) for i in (2, 3)]
    with Store.open(workspace) as store:
        with Ingester(store) as ingester:
            ingester.ingest_once()
        view = compare_view(qtbot, store)
        compare_runs(view, [p.name for p in probes])
        assert view.loss_plot.series_names() == [train.name]               # one curve, not two alike
        assert len(view.samples.viewers) == 1                             # their parent's samples once
        assert next(iter(view.samples.viewers.values())).title() == "parent"
        assert view.loss_plot._series[train.name].label == "parent (parent of grid 2, grid 3)"
        rows = {row[0]: row for row in view.summary_model.rows()}
        assert rows["grid 2"][4] == rows["grid 3"][4] == pytest.approx(1 / 46)
        view.close()


def test_compare_picks_runs_itself_and_remembers_them_on_restart(qtbot, gui_store, gui_workspace):
    ws = gui_workspace
    view = compare_view(qtbot, gui_store)
    picker = view.open_picker()
    assert picker.checked() == []
    picker.search.setText("no dropout")
    shown = [picker.list.item(i) for i in range(picker.list.count()) if not picker.list.item(i).isHidden()]
    shown_ids = [item.data(Qt.ItemDataRole.UserRole) for item in shown]
    assert ws.train_b in shown_ids and ws.train_a not in shown_ids
    picker.set_checked([ws.train_a, ws.train_b])
    picker.accept()
    assert set(view.run_ids()) == {ws.train_a, ws.train_b}
    view.close()
    # A new view on the same workspace (the app restarted) shows the same runs.
    again = compare_view(qtbot, gui_store)
    assert set(again.run_ids()) == {ws.train_a, ws.train_b} and len(again.bundles()) == 2
    again.close()


def test_a_train_run_shows_its_running_grid_else_its_best_one_as_its_row_does():
    from app.compare.feed import grid_of
    from db import RunSummary

    def probe(rid, status, best, created):
        return RunSummary(rid, rid, "probe", status, None, created, None, None, best, None, (), "", None, None,
                          "train", None, None, None, None)

    old_best, newer = probe("a", "done", 0.7, 1.0), probe("b", "done", 0.4, 2.0)
    assert grid_of([old_best, newer], "a").id == "a"          # the train row's headline grid, as the runs table
    assert grid_of([old_best, newer], "b").id == "b"          # whichever grid the row's rule named
    assert grid_of([old_best, newer, probe("c", "running", None, 3.0)], "a").id == "c"   # one filling in is seen
    assert grid_of([probe("d", "failed", None, 1.0), probe("e", "queued", None, 2.0)], None).id == "e"
