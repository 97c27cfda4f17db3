"""The Run view's probe grid with its k-NN stand-ins, the k-NN grid beside it, and an aggregate's weights."""

from __future__ import annotations

import json

import pytest

from app.run.grid_beside import KNN, NOTHING, WEIGHTS
from app.run.panels import GridPanel, heatmap_title
from db import testing as fake
from tests.app_support import MICRO_DATA, app_settings, micro_overrides, no_leftovers, studio  # noqa: F401
from tests.fixtures import ingest

TIMESTEPS, LAYERS = [1, 11], ["out_5", "out_6", "out_7"]
KNN_CELLS = {"1": {"out_5": 0.81, "out_6": 0.9, "out_7": 0.6}, "11": {"out_5": 0.82, "out_6": 0.91, "out_7": 0.61}}
LINEAR = {(1, "out_5"): 0.7, (1, "out_6"): 0.75, (1, "out_7"): 0.5}
WEIGHT_CELLS = {"1": {"out_5": 0.1, "out_6": 0.3, "out_7": 0.05}, "11": {"out_5": 0.15, "out_6": 0.35, "out_7": 0.05}}


def test_knn_cells_stand_in_until_the_linear_ones_come_and_the_weights_show_beside(studio, qtbot, tmp_path):
    ws = tmp_path / "ws"
    probe = fake.write_run(ws, fake.run_id("probe", 1), kind="probe", name="grid", options={"protocol": "aggregate"},
                           events=[fake.status("running"), fake.grid(TIMESTEPS, LAYERS),
                                   *(fake.grid_cell(layer, t, v) for (t, layer), v in LINEAR.items())])
    knn = {"label": "k-NN", "timesteps": TIMESTEPS, "layers": LAYERS, "accuracy": KNN_CELLS,
           "best": {"timestep": 11, "layer": "out_6", "accuracy": 0.91}}
    (probe / "knn_grid.json").write_text(json.dumps(knn))
    ingest(ws)
    window = studio(ws, run_scheduler=False)
    window.show_run(probe.name)
    panel = window.run_view.panel(GridPanel)
    heatmap = panel.heatmap
    qtbot.waitUntil(lambda: len(heatmap.cells()) == 6, timeout=10_000)
    # The whole grid at once: the row of linear cells, and k-NN (italic, "k") where no head is trained yet.
    assert heatmap.stand_ins() == {(11, layer) for layer in LAYERS}
    assert heatmap.plot.titleLabel.text.startswith("Linear probe accuracy")      # the aggregate grid's cells
    assert heatmap_title("attentive").startswith("Attentive probe") and heatmap_title("knn").startswith("k-NN")
    assert heatmap.cells()[(1, "out_6")] == pytest.approx(0.75) and heatmap.cells()[(11, "out_6")] == pytest.approx(0.91)
    assert heatmap.text_of(11, "out_6") == "91.0 k" and heatmap.text_of(1, "out_6") == "75.0"
    assert "k-NN, until its head is trained" in heatmap.readout_at(1.5, 1.5)
    assert heatmap.best_cell()[:2] == (1, "out_6")                  # a stand-in is never the grid's best cell
    assert heatmap.status.text().startswith("3 of 6 cells") and "other 3 show k-NN" in heatmap.status.text()
    # Side by side: the k-NN grid beside the linear one.
    beside = panel.beside
    assert beside.choice.isVisibleTo(panel) and not beside.choice.model().item(2).isEnabled()    # no aggregate yet
    beside.show_beside(KNN)
    assert beside.heatmap.isVisibleTo(panel) and beside.heatmap.cells()[(1, "out_5")] == pytest.approx(0.81)
    assert beside.width() > panel.heatmap.width() / 2                # the two share the width
    assert len(beside.heatmap.cells()) == 6

    # The heads of t=11 finish, then the grid with its aggregate: the stand-ins give way, the weights can be shown.
    fake.append(probe, [fake.grid_cell(layer, 11, 0.4 + 0.1 * i) for i, layer in enumerate(LAYERS)])
    grid = {"timesteps": TIMESTEPS, "layers": LAYERS, "complete": True, "knn": knn,
            "best": {"timestep": 1, "layer": "out_6", "accuracy": 0.75},
            "aggregate": {"accuracy": 0.8, "gain": 0.05, "weights": WEIGHT_CELLS,
                          "best_cell": {"timestep": 1, "layer": "out_6", "accuracy": 0.75}}}
    (probe / "grid.json").write_text(json.dumps(grid))
    fake.append(probe, [fake.status("done")])
    ingest(ws)
    qtbot.waitUntil(lambda: not heatmap.stand_ins() and beside.choice.model().item(2).isEnabled(), timeout=10_000)
    assert heatmap.cells()[(11, "out_6")] == pytest.approx(0.5) and heatmap.text_of(11, "out_6") == "50.0"
    beside.show_beside(WEIGHTS)
    weights = beside.heatmap.cells()
    assert sum(weights.values()) == pytest.approx(1.0) and weights[(11, "out_6")] == pytest.approx(0.35)
    assert "+5.0 points over the best single cell (out_6 at t=1, 75.0%)" in beside.note.text()
    beside.show_beside(NOTHING)
    assert not beside.heatmap.isVisibleTo(panel)


def test_the_probe_form_offers_the_attentive_and_aggregate_protocols_and_queues_them(studio):
    window = studio(run_scheduler=False)
    train = window.launch_view.form("train")
    train.set_values(data=MICRO_DATA, steps="4", batch_size="16", device="cpu", overrides=micro_overrides())
    parent = train.submit()
    window.hub.poll()
    probe = window.launch_view.show_kind("probe", parent)
    combo = probe.rows["protocol"].editor
    offered = [combo.itemData(i) for i in range(combo.count())]
    assert {"knn", "attentive", "aggregate"} <= set(offered)
    assert "attention pooling" in combo.itemText(offered.index("attentive"))
    probe.set_values(timesteps="1,11", layers="all", protocol="aggregate", device="cpu")
    run = probe.submit()
    assert run is not None and window.store.get_run(run).spec["options"]["protocol"] == "aggregate"


def test_preview_cells_say_so_until_the_full_knn_grid_replaces_them(studio, qtbot, tmp_path):
    ws = tmp_path / "ws"
    probe = fake.write_run(ws, fake.run_id("probe", 1), kind="probe", name="grid", options={"protocol": "fast"},
                           events=[fake.status("running"), fake.grid(TIMESTEPS, LAYERS),
                                   *(fake.grid_cell(layer, t, v) for (t, layer), v in LINEAR.items())])
    knn = {"label": "k-NN", "timesteps": TIMESTEPS, "layers": LAYERS, "accuracy": KNN_CELLS,
           "best": {"timestep": 11, "layer": "out_6", "accuracy": 0.91},
           "preview": {"train_images": 416, "test_images": 448}}
    (probe / "knn_grid.json").write_text(json.dumps(knn))
    ingest(ws)
    window = studio(ws, run_scheduler=False)
    window.show_run(probe.name)
    heatmap = window.run_view.panel(GridPanel).heatmap
    qtbot.waitUntil(lambda: len(heatmap.cells()) == 6, timeout=10_000)
    preview = "k-NN preview (416 train / 448 test images)"
    assert f"other 3 show {preview} (marked k)" in heatmap.status.text()
    assert f"{preview}, until its head is trained" in heatmap.readout_at(1.5, 1.5)
    # The full k-NN grid replaces the preview: its cells, and plain k-NN in the words.
    full = {**knn, "accuracy": {t: {layer: v - 0.1 for layer, v in row.items()} for t, row in KNN_CELLS.items()}}
    del full["preview"]
    (probe / "knn_grid.json").write_text(json.dumps(full))
    fake.append(probe, [fake.artifact("file", str(probe / "knn_grid.json"))])
    ingest(ws)
    qtbot.waitUntil(lambda: "other 3 show k-NN (marked k)" in heatmap.status.text(), timeout=10_000)
    assert heatmap.cells()[(11, "out_6")] == pytest.approx(0.81)
    assert "(k-NN, until its head is trained)" in heatmap.readout_at(1.5, 1.5)
