"""The Checkpoints tab (every saved checkpoint with its loss, probe, FID and size, the best marked; evaluations and
Classify from a row) and a probe grid's cell opening Classify on that layer's head at that noise level."""

from __future__ import annotations

import shutil

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from app.run.checkpoint_list import CheckpointsPanel
from app.run.checkpoints import CheckpointPoint, CheckpointResults, checkpoint_rows
from app.run.panels import GridPanel
from tests.app_support import app_settings, no_leftovers, studio  # noqa: F401


def test_rows_take_the_loss_logged_at_their_step_and_mark_the_best_by_each(tmp_path):
    files = [(step, tmp_path / f"ckpt_{step}.pt", 1000.0 + step, 2**20 * step) for step in (100, 200, 300)]
    results = CheckpointResults("r", (CheckpointPoint(100, fid=40.0, accuracy=0.5, probe_run="p1"),
                                      CheckpointPoint(200, fid=30.0, accuracy=0.7, probe_run="p2"),
                                      CheckpointPoint(300, fid=35.0)))
    rows = checkpoint_rows(files, results, [50, 100, 150, 250, 300], np.array([0.9, 0.5, 0.45, 0.2, np.nan]))
    assert [(r.step, r.loss, r.accuracy, r.fid, r.size_bytes) for r in rows] == \
        [(100, 0.5, 0.5, 40.0, 2**20 * 100), (200, 0.45, 0.7, 30.0, 2**20 * 200), (300, None, None, 35.0, 2**20 * 300)]
    assert [r.best for r in rows] == [(), ("loss", "probe", "FID"), ()]
    assert checkpoint_rows(files, None, [], np.array([]))[0].best == ()


def _window(studio, gui_workspace, tmp_path):
    """The main window on a copy of the shared GUI workspace (two micro runs, probed), on train_a."""
    ws = tmp_path / "ws"
    shutil.copytree(gui_workspace.path, ws)
    window = studio(ws, run_scheduler=False)
    window.show_run(gui_workspace.train_a)
    window.tabs.setCurrentWidget(window.run_view)
    return window


def test_the_checkpoint_list_shows_each_checkpoint_and_acts_on_a_row(studio, qtbot, gui_workspace, tmp_path):
    window = _window(studio, gui_workspace, tmp_path)
    panel = window.run_view.panel(CheckpointsPanel)
    assert isinstance(panel, CheckpointsPanel)
    window.run_view.show_tab(CheckpointsPanel)
    qtbot.waitUntil(lambda: [r.step for r in panel.rows] == [4, 8], timeout=10_000)
    last = panel.rows[1]
    assert last.probe_run == gui_workspace.probe_a and 0 <= last.accuracy <= 1     # probe_a read the latest
    assert "probe" in last.best and panel.rows[0].accuracy is None
    assert all(r.size_bytes > 0 and r.saved is not None for r in panel.rows)
    assert panel.rows[0].loss is None and last.loss is not None       # the loss is logged every 5 steps
    assert panel.model.rows()[1][7].startswith(", ".join(n for n in ("loss", "probe") if n in last.best))
    assert not panel.buttons["probe"].isEnabled()                 # nothing selected yet

    # A probe of the first checkpoint: the probe form, on this run at step 4 (queued from there, as any).
    panel.select_step(4)
    assert not panel.classify_button.isEnabled()                  # step 4 has no probe heads
    panel.buttons["probe"].click()
    assert window.tabs.currentWidget() is window.launch_view
    form = window.launch_view.form("probe")
    assert form.rows["parent"].editor.currentData() == gui_workspace.train_a
    assert form.rows["checkpoint"].value() == 4

    # Classify with the last checkpoint: its probe's heads, the best cell's.
    window.tabs.setCurrentWidget(window.run_view)
    panel.select_step(8)
    panel.classify_button.click()
    classify = window.classify_view
    assert window.tabs.currentWidget() is classify
    qtbot.waitUntil(lambda: classify.run_combo.currentData() == gui_workspace.probe_a, timeout=10_000)
    assert classify.current_head().layer is None
    classify.wait_idle()


def _click_cell(heatmap, timestep: int, layer: str) -> None:
    """A left click on the centre of the cell, as the mouse gives it."""
    timesteps, layers = heatmap.axes()
    centre = heatmap.plot.getViewBox().mapViewToScene(QPointF(layers.index(layer) + 0.5, timesteps.index(timestep) + 0.5))
    pos = heatmap.layout_widget.mapFromScene(centre)
    QTest.mouseClick(heatmap.layout_widget.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)


def test_a_probe_grid_cell_opens_classify_with_that_layers_head_at_that_noise_level(studio, qtbot, gui_workspace,
                                                                                     tmp_path):
    window = _window(studio, gui_workspace, tmp_path)
    window.run_view.show_tab(GridPanel)
    grid = window.run_view.panel(GridPanel)
    qtbot.waitUntil(lambda: len(grid.heatmap.cells()) > 0, timeout=10_000)
    assert grid.source == gui_workspace.probe_a
    (timestep, layer), _ = min(grid.heatmap.cells().items(), key=lambda kv: (kv[0][0] != 51, kv[1]))
    clicked = []
    grid.heatmap.cellClicked.connect(lambda t, name: clicked.append((t, name)))
    _click_cell(grid.heatmap, timestep, layer)
    qtbot.waitUntil(lambda: clicked == [(timestep, layer)], timeout=5_000)

    classify = window.classify_view
    assert window.tabs.currentWidget() is classify
    qtbot.waitUntil(lambda: classify.run_combo.currentData() == gui_workspace.probe_a, timeout=10_000)
    assert classify.current_head().layer == layer
    assert classify.wait_idle()
    qtbot.waitUntil(lambda: classify.noise.isEnabled() and classify.noise.timestep() == timestep, timeout=10_000)
    # A cell not measured (outside the grid) opens nothing.
    assert grid.heatmap.measured_cell_at(-1.0, 0.5) is None
