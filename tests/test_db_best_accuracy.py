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


def test_each_train_row_shows_its_own_grid_protocol_and_baselines_never_another_models(tmp_path):
    """Two models side by side, as the shapes and CIFAR-10 examples are: each train row's baselines and protocol are
    those of its own best grid. Before, a train row took them from the best probe of the whole workspace."""
    ws = tmp_path
    shapes, cifar = run_id("train", 1), run_id("train", 2)
    shapes_grid, cifar_std, cifar_fast = run_id("probe", 3), run_id("probe", 4), run_id("probe", 5)
    for train in (shapes, cifar):
        write_run(ws, train, events=[status("running"), metric("loss/train", 1, 0.5), status("done")])
    write_run(ws, shapes_grid, kind="probe", parent={"run": shapes}, options={"protocol": "standardized"},
              events=[grid_cell("out_7", 51, 0.909), metric(PIXELS, 0, 0.101), metric(RANDOM, 0, 0.168)])
    write_run(ws, cifar_std, kind="probe", parent={"run": cifar}, options={"protocol": "standardized"},
              events=[grid_cell("out_5", 101, 0.4035), metric(PIXELS, 0, 0.3225), metric(RANDOM, 0, 0.322)])
    # A later fast grid of the same model, without baselines, and weaker.
    write_run(ws, cifar_fast, kind="probe", parent={"run": cifar}, options={"protocol": "fast", "baselines": False},
              events=[grid_cell("out_5", 11, 0.11)])
    with Store.open(ws) as store:
        ingester = Ingester(store, ws)
        ingester.ingest_once()
        rows = {r.id: r for r in store.list_runs()}
        headline = {rid: (rows[rid].best_grid, rows[rid].best_accuracy, rows[rid].best_protocol,
                          rows[rid].baseline_pixels, rows[rid].baseline_random) for rid in rows}
        assert headline[cifar] == (cifar_std, 0.4035, "standardized", 0.3225, 0.322)
        assert headline[shapes] == (shapes_grid, 0.909, "standardized", 0.101, 0.168)
        # The fast grid speaks for itself: its own protocol, no baselines (not its sibling's, nor its parent's).
        assert headline[cifar_fast] == (cifar_fast, 0.11, "fast", None, None)
        assert store.get_run(cifar).best_grid == cifar_std       # the Run view and Compare read the same grid
        # The fast grid becomes the best: the row takes its protocol and its lack of baselines, all together.
        append(ws / "runs" / cifar_fast, [grid_cell("out_6", 11, 0.45)])
        ingester.ingest_once()
        row = {r.id: r for r in store.list_runs()}[cifar]
        assert (row.best_grid, row.best_accuracy, row.best_protocol, row.baseline_pixels, row.baseline_random) == \
            (cifar_fast, 0.45, "fast", None, None)
        assert {r.id: r for r in store.list_runs()}[shapes].baseline_pixels == 0.101
        ingester.release()
    reindex(ws)            # the same rule however the rows were filled
    with Store.open(ws) as store:
        rows = {r.id: r for r in store.list_runs()}
        assert (rows[cifar].best_grid, rows[cifar].baseline_pixels) == (cifar_fast, None)
        assert (rows[shapes].best_grid, rows[shapes].baseline_random) == (shapes_grid, 0.168)


def test_the_headline_texts_name_that_grids_protocol_and_say_when_it_has_no_baselines():
    from ddae_core.engine.evaluation.protocols import accuracy_text, gains_text, headline_line, headline_tooltip

    assert accuracy_text(0.4035, "standardized") == "40.4% (std)"
    assert accuracy_text(0.11, "fast") == "11.0% (fast)" and accuracy_text(None, "fast") == ""
    assert gains_text(0.4035, 0.3225, 0.322) == "+8.1 / +8.2"
    assert gains_text(0.11, None, None) == "no baselines"
    assert headline_line(0.11, "fast", None, None) == "best probe cell 11.0% (fast), no baselines"
    assert "measured no baselines" in headline_tooltip(0.11, "fast", None, None, "g")
    assert "32.3% on raw pixels" in headline_tooltip(0.4035, "standardized", 0.3225, 0.322)   # 0.3225 half up


def test_an_index_from_before_the_rule_is_mended_when_opened(tmp_path):
    """A database of schema 0002 holding a train row with a foreign grid's baselines is filled again on upgrade."""
    import sqlite3

    from alembic import command
    from sqlalchemy import create_engine

    from db.engine import alembic_config

    ws = tmp_path
    train, probe = run_id("train", 1), run_id("probe", 2)
    write_run(ws, train, events=[status("done")])
    write_run(ws, probe, kind="probe", parent={"run": train}, options={"protocol": "official"},
              events=[grid_cell("out_5", 11, 0.4), metric(PIXELS, 0, 0.3), metric(RANDOM, 0, 0.25)])
    with Store.open(ws) as store, Ingester(store, ws) as ingester:
        ingester.ingest_once()
    engine = create_engine(f"sqlite:///{ws / 'studio.sqlite'}")
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0002")
    engine.dispose()
    with sqlite3.connect(ws / "studio.sqlite") as conn:     # what the old rule wrote: another model's
        conn.execute("UPDATE runs SET baseline_pixels = 0.101, best_protocol = 'standardized' WHERE id = ?", (train,))
    with Store.open(ws) as store:
        row = {r.id: r for r in store.list_runs()}[train]
        assert (row.best_grid, row.best_accuracy, row.best_protocol, row.baseline_pixels, row.baseline_random) == \
            (probe, 0.4, "official", 0.3, 0.25)


def test_a_finished_grid_speaks_with_the_headline_it_reported_not_its_highest_cell(tmp_path):
    """A grid that chose its best cell on held-out training images reports that cell's test accuracy as
    probe/accuracy; the row quotes it once reported (its highest test cell only while the grid fills in)."""
    ws = tmp_path
    train, probe = run_id("train", 1), run_id("probe", 2)
    write_run(ws, train, events=[status("running"), metric("loss/train", 1, 0.5), status("done")])
    write_run(ws, probe, kind="probe", parent={"run": train, "checkpoint": "latest"},
              events=[grid_cell("out_6", 11, 0.62), grid_cell("out_7", 11, 0.66)])
    with Store.open(ws) as store:
        ingester = Ingester(store, ws)
        ingester.ingest_once()
        assert {r.id: r for r in store.list_runs()}[probe].best_accuracy == 0.66     # filling in: the best so far
        append(ws / "runs" / probe, [metric("probe/accuracy", 0, 0.62), status("done")])
        ingester.ingest_once()
        rows = {r.id: r for r in store.list_runs()}
        assert rows[probe].best_accuracy == 0.62 and rows[train].best_accuracy == 0.62
        ingester.release()


def test_a_segmentation_grids_miou_is_never_a_best_accuracy(tmp_path):
    ws = tmp_path
    train = run_id("train", 1)
    write_run(ws, train, events=[status("done")])
    parent = {"run": train, "checkpoint": "latest"}
    probe, segmentation = run_id("probe", 2), run_id("segmentation", 3)
    write_run(ws, probe, kind="probe", parent=parent, events=[grid_cell("out_6", 11, 0.41)])
    write_run(ws, segmentation, kind="segmentation", parent=parent,
              events=[grid_cell("out_6", 11, 0.83), metric("segmentation/miou", 0, 0.83), status("done")])
    with Store.open(ws) as store:
        Ingester(store, ws).ingest_once()
        rows = {r.id: r for r in store.list_runs()}
        assert rows[segmentation].best_accuracy is None and rows[segmentation].best_grid is None
        assert rows[train].best_accuracy == 0.41 and rows[probe].best_accuracy == 0.41
        assert [r.id for r in store.list_runs(where="best > 0.5")] == []
        assert store.grid_cells(segmentation)[0].accuracy == 0.83      # its cells stay, as mIoU
