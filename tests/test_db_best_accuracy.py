"""A train run's row shows the best accuracy its probe runs reached, with that grid's protocol and baselines,
whatever order they are indexed in, and forgets a deleted probe's."""

from __future__ import annotations

from db import Ingester, Store
from db.reindex import reindex
from db.testing import append, grid_cell, metric, run_id, status, write_run

PIXELS, RANDOM = "probe/baseline/pixels", "probe/baseline/random_init"


def test_train_row_shows_its_best_probe_cell_and_survives_reindex(tmp_path):
    ws = tmp_path
    train = run_id("train", 1)
    write_run(ws, train, events=[status("running"), metric("loss/train", 1, 0.5), status("done")])
    probe_a, probe_b = run_id("probe", 2), run_id("probe", 3)
    parent = {"run": train, "checkpoint": "latest"}
    write_run(ws, probe_a, kind="probe", parent=parent, options={"protocol": "official"},
              events=[grid_cell("out_6", 11, 0.41), metric(PIXELS, 0, 0.12), metric(RANDOM, 0, 0.2)])
    write_run(ws, probe_b, kind="probe", parent=parent, events=[grid_cell("out_7", 11, 0.37)])
    other = run_id("finetune", 4)
    write_run(ws, other, kind="finetune", parent=parent, events=[metric("finetune/test_accuracy", 1, 0.9)])
    with Store.open(ws) as store:
        ingester = Ingester(store, ws)
        ingester.ingest_once()
        rows = {r.id: r for r in store.list_runs()}
        assert rows[train].best_accuracy == 0.41          # the better probe, not the fine-tune
        assert (rows[train].best_protocol, rows[train].baseline_pixels, rows[train].baseline_random) == \
            ("official", 0.12, 0.2)                        # and the baselines of that same grid
        assert rows[probe_b].best_accuracy == 0.37 and rows[probe_b].best_protocol == "fast"
        assert rows[probe_b].baseline_pixels is None       # a grid without baselines says nothing
        append(ws / "runs" / probe_b, [grid_cell("out_8", 21, 0.52)])
        ingester.ingest_once()
        row = {r.id: r for r in store.list_runs()}[train]
        assert (row.best_accuracy, row.best_protocol, row.baseline_pixels) == (0.52, "fast", None)
        ingester.release()
    reindex(ws)
    with Store.open(ws) as store:
        assert {r.id: r for r in store.list_runs()}[train].best_accuracy == 0.52


def test_a_standardized_grid_counts_labelled_and_a_deleted_probe_stops_counting(tmp_path):
    ws = tmp_path
    train = run_id("train", 1)
    write_run(ws, train, events=[status("running"), metric("loss/train", 1, 0.5), status("done")])
    parent = {"run": train, "checkpoint": "latest"}
    plain, standardized = run_id("probe", 2), run_id("probe", 3)
    write_run(ws, plain, kind="probe", parent=parent, events=[grid_cell("out_7", 11, 0.40)])
    # Written as older runs wrote it: protocol fast, standardize true.
    write_run(ws, standardized, kind="probe", parent=parent, options={"protocol": "fast", "standardize": True},
              events=[grid_cell("out_7", 11, 0.60), metric(PIXELS, 0, 0.1), metric(RANDOM, 0, 0.3)])
    with Store.open(ws) as store:
        ingester = Ingester(store, ws)
        ingester.ingest_once()
        row = {r.id: r for r in store.list_runs()}[train]
        assert (row.best_accuracy, row.best_protocol, row.baseline_random) == (0.60, "standardized", 0.3)
        store.delete_run(standardized)
        row = {r.id: r for r in store.list_runs()}[train]
        assert (row.best_accuracy, row.best_protocol, row.baseline_random) == (0.40, "fast", None)
        ingester.release()


def test_a_probe_cell_marks_its_train_run_changed_so_views_redraw_its_row(tmp_path):
    ws = tmp_path
    train, probe = run_id("train", 1), run_id("probe", 2)
    write_run(ws, train, events=[status("running"), metric("loss/train", 1, 0.5), status("done")])
    write_run(ws, probe, kind="probe", parent={"run": train, "checkpoint": "latest"}, events=[status("running")])
    with Store.open(ws) as store:
        ingester = Ingester(store, ws)
        ingester.ingest_once()
        token = store.data_version()
        append(ws / "runs" / probe, [grid_cell("out_6", 11, 0.7), status("done")])
        ingester.ingest_once()
        changed = {r.id: r for r in store.changed_since(token).runs}
        assert changed[train].best_accuracy == 0.7       # the train run's row comes with the change
        ingester.release()
