"""A train run's row shows the best accuracy its probe runs reached, whatever order they are indexed in."""

from __future__ import annotations

from db import Ingester, Store
from db.reindex import reindex
from db.testing import append, grid_cell, metric, run_id, status, write_run


def test_train_row_shows_its_best_probe_cell_and_survives_reindex(tmp_path):
    ws = tmp_path
    train = run_id("train", 1)
    write_run(ws, train, events=[status("running"), metric("loss/train", 1, 0.5), status("done")])
    probe_a, probe_b = run_id("probe", 2), run_id("probe", 3)
    parent = {"run": train, "checkpoint": "latest"}
    write_run(ws, probe_a, kind="probe", parent=parent, events=[grid_cell("out_6", 11, 0.41)])
    write_run(ws, probe_b, kind="probe", parent=parent, events=[grid_cell("out_7", 11, 0.37)])
    standardized = run_id("probe", 5)     # a diagnostic, not the official protocol: not the train run's number
    write_run(ws, standardized, kind="probe", parent=parent, options={"standardize": True},
              events=[grid_cell("out_7", 11, 0.60)])
    other = run_id("finetune", 4)
    write_run(ws, other, kind="finetune", parent=parent, events=[metric("finetune/test_accuracy", 1, 0.9)])
    with Store.open(ws) as store:
        ingester = Ingester(store, ws)
        ingester.ingest_once()
        rows = {r.id: r for r in store.list_runs()}
        assert rows[train].best_accuracy == 0.41          # the better probe, not the fine-tune
        assert rows[probe_b].best_accuracy == 0.37
        assert rows[standardized].best_accuracy == 0.60
        append(ws / "runs" / probe_b, [grid_cell("out_8", 21, 0.52)])
        ingester.ingest_once()
        assert {r.id: r for r in store.list_runs()}[train].best_accuracy == 0.52
        ingester.release()
    reindex(ws)
    with Store.open(ws) as store:
        assert {r.id: r for r in store.list_runs()}[train].best_accuracy == 0.52
