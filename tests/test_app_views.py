"""Runs table, run view, models, the demo offer, drops and exports, on fake run folders (no torch jobs)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from app import workspace as workspaces
from app.first_run import DEMO_MINUTES, DEMO_TAG, DemoController
from app.queue.feed import QueueLine
from app.queue.model import QueueModel
from app.run.feed import RunFeed
from app.run.panels import AlignPanel, GridPanel, MetricsPanel, SamplesPanel, TrainingPanel
from app.runs.model import RunTableModel
from app.widgets.align_uniform import AlignUniformPlot
from app.widgets.curves import CurvePlot
from app.widgets.heatmap import GridHeatmap
from db import Store, testing as fake
from ddae_core.jobs import examples
from ddae_core.jobs.examples import DEMO_EXAMPLE
from tests.app_support import (  # noqa: F401
    app_settings,
    micro_overrides,
    no_leftovers,
    studio,
    trained_run_with_samples,
)
from tests.fixtures import ingest, micro_train_config


def probe_events(t0: float = 1000.0) -> list[dict]:
    cells = [fake.grid_cell(layer, t, 0.5 + 0.01 * i + 0.1 * (layer == "out_6"), t0)
             for i, (t, layer) in enumerate((t, layer) for t in (1, 11) for layer in ("out_5", "out_6", "out_7"))]
    return [fake.status("running", t0), fake.grid([1, 11], ["out_5", "out_6", "out_7"], t0), *cells[:4]]


def test_a_finished_grid_says_how_it_chose_its_best_cell_and_whether_it_brackets_it(studio, qtbot, tmp_path):
    ws = tmp_path / "ws"
    probe = fake.write_run(ws, fake.run_id("probe", 2), kind="probe", name="grid",
                           events=[*probe_events(), fake.status("done")])
    grid = {"timesteps": [1, 11], "layers": ["out_5", "out_6", "out_7"], "test_images": 200,
            "classes": [f"c{i}" for i in range(10)], "complete": True, "timestep_range": [1, 1000],
            "best": {"timestep": 11, "layer": "out_5", "accuracy": 0.53},
            "selection": {"on": "held-out", "images": 1000, "accuracy": 0.55}}
    (probe / "grid.json").write_text(json.dumps(grid))
    ingest(ws)
    window = studio(ws, run_scheduler=False)
    window.show_run(probe.name)
    panel = window.run_view.panel(GridPanel)
    qtbot.waitUntil(lambda: "held-out" in panel.heatmap.status.text(), timeout=10_000)
    text = panel.heatmap.status.text()
    assert "Best: out_5 at t=11, 53.0% (chosen on 1,000 held-out training images) (run without baselines)." in text
    assert "t=11, is the largest probed" in text and "add t=31,51" in text
    assert panel.heatmap.outlined_cell() == (11, "out_5")            # the held-out choice, not the test maximum
    assert "95% interval" in panel.heatmap.readout_at(0.5, 0.5)      # 200 test images, from grid.json
    panel.grey.setChecked(True)
    assert panel.heatmap.greyed_cells() == set()                     # 50-60% of 10 classes: far above chance


def test_runs_table_pages_filters_sorts_and_edits_in_place(studio, qtbot, tmp_path):
    ws = tmp_path / "ws"
    for n in range(45):
        kind = "probe" if n % 3 == 0 else "train"
        fake.write_run(ws, fake.run_id(kind, n), kind=kind, name=f"run {n:02d}", created=1000.0 + n,
                       events=fake.training_events(20) if kind == "train" else [])
    ingest(ws)
    window = studio(ws, run_scheduler=False)
    view = window.runs_view
    view.pager.page_size = 20
    view.reload()
    assert view.model.rowCount() == 20 and view.count.text() == "1–20 of 45"
    assert view.model.run_at(0).name == "run 44"            # newest first
    view.next_button.click()
    view.next_button.click()
    assert view.model.rowCount() == 5 and not view.next_button.isEnabled()

    view.table.sortByColumn(RunTableModel.COLUMNS.index("name"), Qt.SortOrder.AscendingOrder)
    assert view.pager.offset == 0 and view.model.run_at(0).name == "run 00"
    view.kind.setCurrentIndex(view.kind.findData("probe"))
    assert view.pager.total == 15 and {r.kind for r in view.model.runs()} == {"probe"}
    view.search.setText("run 3")
    qtbot.waitUntil(lambda: view.pager.total == 4, timeout=3000)     # run 30, 33, 36, 39

    # Tags and notes are edited in the table and stored (and mirrored to meta.json).
    run = view.model.run_at(0)
    tags = view.model.index(0, RunTableModel.COLUMNS.index("tags"))
    assert view.model.setData(tags, "baseline,  cifar ,")
    notes = view.model.index(0, RunTableModel.COLUMNS.index("notes"))
    assert view.model.setData(notes, "first try")
    assert window.store.get_run(run.id).tags == ("baseline", "cifar")
    assert window.store.get_run(run.id).notes == "first try"
    window.hub.poll()
    assert view.model.run_at(view.model.row_of(run.id)).tags == ("baseline", "cifar")
    name = view.model.index(0, RunTableModel.COLUMNS.index("name"))
    view.model.setData(name, "   ")
    assert "cannot be empty" in view.message.text()

    # Multi-select feeds Compare.
    view.search.clear()
    qtbot.waitUntil(lambda: view.pager.total == 15, timeout=3000)
    view.select([view.model.run_at(0).id, view.model.run_at(1).id])
    assert view.compare_button.isEnabled()
    with qtbot.waitSignal(view.compare, timeout=1000) as blocker:
        view.compare_button.click()
    assert len(blocker.args[0]) == 2


def test_run_feed_reads_only_new_points(tmp_path):
    ws = tmp_path / "ws"
    run_dir = fake.write_run(ws, fake.run_id("train", 1), events=[fake.status("running")] +
                             [fake.metric("loss/train", s, 1.0 / s) for s in range(1, 51)])
    ingest(ws)
    with Store.open(ws) as store:
        feed = RunFeed(store, run_dir.name)
        first = feed.poll()
        assert list(first.replaced["loss/train"].steps) == list(range(1, 51)) and not first.appended
        fake.append(run_dir, [fake.metric("loss/train", s, 1.0 / s) for s in range(51, 61)])
        ingest(ws)
        second = feed.poll()
        assert list(second.appended["loss/train"].steps) == list(range(51, 61)) and not second.replaced
        assert feed.poll().appended == {}
        fake.append(run_dir, [fake.metric("loss/train", 10, 9.0)])     # a replayed step rewrites the curve
        ingest(ws)
        third = feed.poll()
        assert "loss/train" in third.replaced and len(third.replaced["loss/train"].steps) == 60


def test_run_view_fills_in_live_and_every_plot_exports(studio, qtbot, tmp_path):
    ws = tmp_path / "ws"
    train = trained_run_with_samples(ws, side=64)
    probe = fake.write_run(ws, fake.run_id("probe", 2), kind="probe", name="grid",
                           parent={"run": train.name, "checkpoint": "latest"}, events=probe_events())
    align = fake.write_run(ws, fake.run_id("align-uniform", 3), kind="align-uniform",
                           parent={"run": train.name, "checkpoint": "latest"},
                           events=[fake.metric(f"{w}/out_6", s, v + s / 1000) for s in (100, 200, 300)
                                   for w, v in (("align", 0.8), ("uniform", -2.0))])
    ingest(ws)
    window = studio(ws)
    window.show_run(probe.name)
    heatmap = window.run_view.panel(GridPanel).heatmap
    assert len(heatmap.cells()) == 4 and heatmap.outlined_cell() == (1, "out_6")
    assert "no baselines yet" in heatmap.status.text()
    fake.append(probe, [fake.progress(50, 100, "extract t=11")])      # a row's cells come only when it is done
    qtbot.waitUntil(lambda: "Now: extract t=11, 50%." in heatmap.status.text(), timeout=10_000)
    fake.append(probe, [fake.grid_cell("out_7", 11, 0.61), fake.metric("probe/baseline/pixels", 0, 0.1),
                        fake.metric("probe/baseline/random_init", 0, 0.35), fake.status("done")])
    qtbot.waitUntil(lambda: len(heatmap.cells()) == 5 and bool(heatmap.baselines()), timeout=10_000)
    assert heatmap.text_of(11, "out_7") == "61.0"
    assert heatmap.baselines() == {"raw pixels": 0.1, "random init": 0.35}
    assert "61.0% = +51.0 over raw pixels, +26.0 over random init" in heatmap.status.text()
    assert heatmap.levels()[0] == pytest.approx(0.1)                # fitted by default, down to the baselines
    qtbot.waitUntil(lambda: "Now:" not in heatmap.status.text(), timeout=10_000)   # done: nothing in progress

    window.show_run(align.name)
    assert window.run_view.panel(AlignPanel).plot.layers() == ["out_6"]

    window.show_run(train.name)
    view = window.run_view
    assert view.panel(SamplesPanel).viewer.steps() == [100]
    assert len(view.panel(TrainingPanel).loss.series_data("loss/train")[0]) == 10
    assert len(view.panel(GridPanel).heatmap.cells()) == 5        # its newest probe grid
    keys = {view.panel(MetricsPanel).list.item(i).text() for i in range(view.panel(MetricsPanel).list.count())}
    assert {"loss/train", "lr"} <= keys

    out = tmp_path / "exports"
    out.mkdir()
    exported = 0
    for run in (train.name, probe.name, align.name):
        window.show_run(run)
        for plot in [*view.findChildren(CurvePlot), *view.findChildren(GridHeatmap),
                     *view.findChildren(AlignUniformPlot)]:
            for fmt in ("png", "svg", "csv"):
                path = getattr(plot, f"export_{fmt}")(out / f"{run}-{exported}.{fmt}")
                assert Path(path).stat().st_size > 0
            exported += 1
    assert exported >= 6


def test_queue_model_shows_elapsed_and_time_left():
    model = QueueModel()
    now = time.time()
    row = QueueLine("r1", "run", "train", "running", None, "cpu0", now - 65, None, 10, 100, "train")
    model.set_rows([row])
    assert model.data(model.index(0, 6)).startswith("1:0")
    assert model.data(model.index(0, 7)) == ""          # one report seen: no rate yet (the start never counts)
    model.remaining.observe("r1", "train", 0, 100, now - 10)   # as if seen 10 s ago at step 0
    model.remaining.observe("r1", "train", 10, 100, now)
    assert model.data(model.index(0, 7)) in ("1:30 left", "1:29 left")  # 10 steps in 10 s, 90 to go
    assert model.headerData(7, Qt.Orientation.Horizontal) == "Time left"
    waiting = QueueLine.from_entry(fake_entry(), "waiting for parent checkpoint")
    model.set_rows([row, waiting])
    assert model.data(model.index(1, 3)) == "waiting for parent checkpoint"


def fake_entry():
    from db import QueueEntry

    return QueueEntry("r2", "probe", "probe", "queued", 3, 0, "auto", time.time())


@pytest.mark.skipif(DEMO_EXAMPLE not in examples.available(), reason="no bundled example in this copy")
def test_demo_imports_the_bundled_example_and_probes_it_before_training(studio, qtbot):
    window = studio(run_scheduler=False)
    window.demo.train_overrides = {"config": micro_train_config()}
    window.banner.button.click()
    info = examples.manifest(DEMO_EXAMPLE)
    example_train = info["runs"][0]["id"]
    assert window.run_view.run_id == example_train                 # the bundled model's grid is what is shown
    rows = {r.id: r for r in window.store.list_runs()}
    assert rows[example_train].status == "done" and "example" in rows[example_train].tags
    probes = [c for c in window.store.children(example_train) if c.status == "queued"]
    assert len(probes) == 1
    spec = window.store.get_run(probes[0].id).spec
    assert spec["options"]["protocol"] == "standardized" and spec["options"]["baselines"]
    queue = window.store.queued_jobs()
    assert queue[0].run == probes[0].id                              # ahead of the user's own training
    assert any(r.kind == "train" and r.status == "queued" and DEMO_TAG in r.tags for r in rows.values())
    if examples.CLASSIFY_EXAMPLE in examples.available():        # Classify opens on the bundled CIFAR-10 model
        photos = examples.manifest(examples.CLASSIFY_EXAMPLE)["runs"][0]["id"]
        assert window.demo.classify_run == photos and rows[photos].status == "done"
        window.tabs.setCurrentWidget(window.classify_view)     # it lists its runs (on the hub) while shown
        window.hub.poll()
        assert window.classify_view.run_combo.currentData() == photos
        assert window.classify_view.current_head().head == "probe"


def test_demo_is_offered_on_an_empty_workspace_and_queues_its_probe_when_trained(studio, qtbot):
    window = studio(run_scheduler=False)
    assert window.banner.isVisible()
    window.demo.train_overrides = {"config": micro_train_config()}
    window.demo.example = None              # the bundled example's part: the test below
    window.banner.button.click()
    train_id = window.run_view.run_id
    assert train_id is not None and not window.banner.isVisible()
    record = window.store.get_run(train_id)
    assert record.status == "queued" and record.tags == (DEMO_TAG,)
    assert record.spec["options"]["time_limit_s"] == pytest.approx(60 * DEMO_MINUTES)
    assert window.demo.check() == []                                # not trained yet

    # Reopened mid-demo, another controller still knows the probe is pending.
    again = DemoController(window.store, window.launcher)
    assert again.pending() == [train_id]
    window.store.set_status(train_id, "done")
    window.hub.poll()
    qtbot.waitUntil(lambda: any(r.kind == "probe" for r in window.store.children(train_id)), timeout=5000)
    probe = window.store.children(train_id)[0]
    spec = window.store.get_run(probe.id).spec
    assert spec["options"]["timesteps"] == [1, 11, 51, 101] and spec["parent"]["run"] == train_id
    assert probe.status == "queued" and again.pending() == []




def test_drop_on_the_window_goes_to_classify(studio, tmp_path):
    window = studio(run_scheduler=False)
    dropped: list = []
    window.classify_view.load_files = dropped.extend       # the real view; only its file loading is watched
    image = tmp_path / "cat.png"
    image.write_bytes(b"not really a png")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(image))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    assert dropped == [str(image)]
    assert window.tabs.currentWidget() is window.classify_view


def test_workspace_settings_are_temporary_and_bad_folders_are_one_sentence(app_settings, tmp_path):
    assert workspaces.settings().fileName() == str(app_settings)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    workspaces.remember(a)
    workspaces.remember(b)
    assert workspaces.initial_workspace(None) == b.resolve()
    assert workspaces.initial_workspace(str(a)) == a
    assert workspaces.recent_workspaces()[:2] == [b.resolve(), a.resolve()]
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    with pytest.raises(workspaces.WorkspaceError, match="is a file, not a folder"):
        workspaces.open_store(afile)


def test_hub_shows_every_answer_in_read_order_even_when_a_poll_overtakes_the_reader(qtbot, tmp_path):
    from app.live import LiveHub

    ws = tmp_path / "ws"
    with Store.open(ws) as store:
        hub = LiveHub(store)
        shown: list[list[str]] = []
        hub.watch("queue", lambda changes: [q.run for q in store.queued_jobs()], shown.append)
        seen: list[tuple[str, ...]] = []
        hub.changed.connect(lambda changes: seen.append(tuple(r.id for r in changes.runs)))
        a = fake.write_run(ws, fake.run_id("train", 1), queue={"priority": 0})
        store.register_run(a)
        assert hub.cycle()                      # the reader read [a]; its signal is still on its way
        b = fake.write_run(ws, fake.run_id("train", 2), queue={"priority": 0})
        store.register_run(b)
        assert hub.poll()                       # the GUI polls: both answers show, the older first
        assert shown == [[a.name], [a.name, b.name]]
        assert seen == [(a.name,), (b.name,)]
        hub.delivered.emit()                    # the reader's late signal finds nothing left to show
        assert shown[-1] == [a.name, b.name] and len(shown) == 2
        hub.stop()


def test_hub_reads_a_requested_watcher_without_a_change_and_a_paused_one_once_on_resume(qtbot, tmp_path):
    """Compare and Classify read through the hub: a first load is asked for, and a hidden view reads nothing."""
    from app.live import LiveHub

    ws = tmp_path / "ws"
    with Store.open(ws) as store:
        hub = LiveHub(store)
        reads: list = []
        shown: list = []
        seen: list = []
        hub.changed.connect(seen.append)

        def read(changes):
            reads.append(changes)
            return len(store.list_runs())

        hub.watch("view", read, shown.append, request=True)
        assert hub.poll() and reads == [None] and shown == [0]      # asked for: read anew, no change needed
        assert seen == []                                           # ... and no change is announced
        assert not hub.poll() and reads == [None]                   # nothing changed, nothing owed
        hub.pause("view")
        for n in (1, 2):
            store.register_run(fake.write_run(ws, fake.run_id("train", n)))
            assert hub.poll()
        assert reads == [None] and len(seen) == 2                   # hidden: the changes pass it by
        hub.resume("view")
        assert hub.poll() and reads == [None, None] and shown == [0, 2]     # shown again: one read of it all
        assert not hub.poll()
        hub.stop()


def test_runs_table_shows_the_protocol_and_how_far_the_best_cell_stands_above_its_baselines(qtbot):
    from db import RunSummary

    def row(rid, **kw):
        base = dict(id=rid, name=rid, kind="train", status="done", data=None, created=1.0, started=None,
                    finished=None, best_accuracy=None, last_loss=None, tags=(), notes="", error=None, device=None,
                    parent_run=None, progress_done=None, progress_total=None, progress_stage=None, priority=None)
        return RunSummary(**{**base, **kw})

    model = RunTableModel()
    model.set_rows([row("a", best_accuracy=0.724, baseline_pixels=0.1, baseline_random=0.31,
                        best_protocol="standardized"),
                    row("b", best_accuracy=0.4, best_protocol="fast"), row("c")])
    best, gains = RunTableModel.COLUMNS.index("best_accuracy"), RunTableModel.COLUMNS.index("gains")
    assert model.data(model.index(0, best)) == "72.4% (std)"
    assert model.data(model.index(0, gains)) == "+62.4 / +41.4"
    tip = model.data(model.index(0, gains), Qt.ItemDataRole.ToolTipRole)
    assert "10.0% on raw pixels" in tip and "31.0%" in tip and "standardised" in tip
    assert model.data(model.index(1, best)) == "40.0% (fast)" and model.data(model.index(1, gains)) == "no baselines"
    assert "no baselines" in model.data(model.index(1, gains), Qt.ItemDataRole.ToolTipRole)
    assert model.data(model.index(2, best)) == "" and model.data(model.index(2, gains)) == ""


def test_runs_table_and_run_view_quote_each_train_runs_own_grid_never_another_models(studio, qtbot, tmp_path):
    """Two models in one workspace (as the shapes and CIFAR-10 examples): each train row's text and tooltip, and its
    Run view header, name its own best grid's protocol and baselines; a grid without baselines says so."""
    ws = tmp_path / "ws"
    pixels, random = "probe/baseline/pixels", "probe/baseline/random_init"
    shapes, cifar = fake.run_id("train", 1), fake.run_id("train", 2)
    for n, train in enumerate((shapes, cifar)):
        fake.write_run(ws, train, created=1000.0 + n, events=fake.training_events(5))
    fake.write_run(ws, fake.run_id("probe", 3), kind="probe", parent={"run": shapes}, created=1002.0,
                   options={"protocol": "standardized"},
                   events=[fake.grid_cell("out_7", 51, 0.909), fake.metric(pixels, 0, 0.101),
                           fake.metric(random, 0, 0.168)])
    cifar_grid = fake.run_id("probe", 4)
    fake.write_run(ws, cifar_grid, kind="probe", parent={"run": cifar}, created=1003.0,
                   options={"protocol": "standardized"},
                   events=[fake.grid_cell("out_5", 101, 0.4035), fake.metric(pixels, 0, 0.3225),
                           fake.metric(random, 0, 0.322)])
    fast = fake.run_id("probe", 5)
    fake.write_run(ws, fast, kind="probe", parent={"run": cifar}, created=1004.0, options={"protocol": "fast"},
                   events=[fake.grid_cell("out_5", 11, 0.11)])
    ingest(ws)
    window = studio(ws, run_scheduler=False)
    model = window.runs_view.model
    best, gains = RunTableModel.COLUMNS.index("best_accuracy"), RunTableModel.COLUMNS.index("gains")

    def shown(rid, column, role=Qt.ItemDataRole.DisplayRole):
        return model.data(model.index(model.row_of(rid), column), role)

    assert (shown(cifar, best), shown(cifar, gains)) == ("40.4% (std)", "+8.1 / +8.2")    # not +30.2 / +23.6
    tip = shown(cifar, gains, Qt.ItemDataRole.ToolTipRole)
    assert "32.3% on raw pixels" in tip and "10.1%" not in tip and cifar_grid in tip   # 0.3225 half up
    assert (shown(shapes, best), shown(shapes, gains)) == ("90.9% (std)", "+80.8 / +74.1")
    assert (shown(fast, best), shown(fast, gains)) == ("11.0% (fast)", "no baselines")
    assert "measured no baselines" in shown(fast, best, Qt.ItemDataRole.ToolTipRole)
    window.show_run(cifar)
    qtbot.waitUntil(lambda: "best probe cell" in window.run_view.header.details.text(), timeout=5000)
    assert "best probe cell 40.4% (std), +8.1 / +8.2 over raw pixels / random init" in \
        window.run_view.header.details.text()


def test_runs_keys_open_and_delete_with_a_named_question_and_undo(studio, qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from app.main_window import TAB_TITLES
    from app.runs.view import RunsView

    ws = tmp_path / "ws"
    for n in range(3):
        fake.write_run(ws, fake.run_id("train", n), name=f"run {n}", created=1000.0 + n,
                       events=fake.training_events(5))
    ingest(ws)
    window = studio(ws, run_scheduler=False)
    view = window.runs_view
    assert "double-click" in view.open_button.toolTip()

    # Double-click on the name opens the run (it used to start renaming it); F2 renames.
    name_col = RunTableModel.COLUMNS.index("name")
    rect = view.table.visualRect(view.model.index(0, name_col))
    qtbot.mouseClick(view.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    with qtbot.waitSignal(view.open_run, timeout=2000) as opened:
        qtbot.mouseDClick(view.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert opened.args == [view.model.run_at(0).id]
    assert view.table.state() != view.table.State.EditingState

    # Enter opens the selected run.
    view.select([view.model.run_at(1).id])
    with qtbot.waitSignal(view.open_run, timeout=2000) as opened:
        qtbot.keyClick(view.table, Qt.Key.Key_Return)
    assert opened.args == [view.model.run_at(1).id]

    # Delete asks a question that names the run, with No as the default.
    target = view.model.run_at(1)
    box = view.delete_question([target])
    assert "“run 1”" in box.text() and box.defaultButton() is box.button(QMessageBox.StandardButton.No)
    asked = []
    no = _Answer(QMessageBox.StandardButton.No)
    monkeypatch.setattr(RunsView, "delete_question", lambda self, runs: asked.append([r.name for r in runs]) or no)
    qtbot.keyClick(view.table, Qt.Key.Key_Delete)
    assert asked == [["run 1"]] and view.model.row_of(target.id) is not None

    monkeypatch.setattr(RunsView, "delete_question", lambda self, runs: _Answer(QMessageBox.StandardButton.Yes))
    qtbot.keyClick(view.table, Qt.Key.Key_Delete)
    assert view.model.row_of(target.id) is None and not view.undo_button.isHidden()
    assert "run 1" in view.message.text() and (ws / "runs" / target.id).is_dir()
    view.undo_button.click()
    assert view.model.row_of(target.id) is not None and window.store.get_run(target.id).name == "run 1"

    # Without Undo the run goes for good when the undo period ends.
    view.select([target.id])
    qtbot.keyClick(view.table, Qt.Key.Key_Delete)
    view._trash_timer.timeout.emit()
    assert not (ws / "runs" / target.id).exists() and window.store.count_runs() == 2

    # A queued run is not deleted; Delete says why.
    window.store.enqueue(view.model.run_at(0).id)
    window.hub.poll()
    view.reload()
    view.select([view.model.run_at(0).id])
    qtbot.keyClick(view.table, Qt.Key.Key_Delete)
    assert "cancel it in Queue first" in view.message.text() and window.store.count_runs() == 2

    # Ctrl+1 ... Ctrl+6 switch tabs.
    assert [a.shortcut().toString() for a in window.tab_actions] == [f"Ctrl+{n}" for n in range(1, 7)]
    window.tab_actions[TAB_TITLES.index("Queue")].trigger()
    assert window.tabs.currentWidget() is window.queue_view


class _Answer:
    def __init__(self, answer):
        self.answer = answer

    def exec(self):
        return self.answer


def test_a_queued_run_says_why_it_waits_instead_of_empty_axes(studio, qtbot, tmp_path):
    from types import SimpleNamespace

    from app.run.panels import grid_status

    ws = tmp_path / "ws"
    train = fake.write_run(ws, fake.run_id("train", 1), name="trained", events=fake.training_events(10))
    probe = fake.write_run(ws, fake.run_id("probe", 2), kind="probe", name="grid", queue={"priority": 0},
                           parent={"run": train.name, "checkpoint": "latest"})
    ingest(ws)
    with Store.open(ws) as store:
        store.enqueue(probe.name)
    window = studio(ws, run_scheduler=False)
    window.show_run(probe.name)
    view = window.run_view
    assert view.is_waiting() and "Queued, waiting for the scheduler." in view.waiting.text()
    view.set_tick(SimpleNamespace(waiting=[(probe.name, "waiting for a free CPU slot")]))
    assert "Queued, waiting for a free CPU slot." in view.waiting.text()
    assert view.header.progress.format() == "waiting for a free CPU slot"
    # A grid without rows yet says so, not "0 of 0 cells".
    assert "has not started yet" in grid_status(view.panel(GridPanel).heatmap, probe.name, probe.name, "fast")

    fake.append(probe, probe_events())                   # it starts: the heatmap takes the waiting page's place
    window.store.set_status(probe.name, "running")
    ingest(ws)
    qtbot.waitUntil(lambda: not view.is_waiting(), timeout=10_000)
    qtbot.waitUntil(lambda: len(view.panel(GridPanel).heatmap.cells()) == 4, timeout=10_000)
    assert view.panel(GridPanel).heatmap.status.text().startswith("4 of 6 cells")
