"""Store: schema, pragmas, runs, filters, queue, edits mirrored to meta.json, deletes, changes."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from db import Ingester, SchemaError, Store
from db.models import Base
from db.testing import append, grid, grid_cell, image, metric, run_id, status, write_run

REPO = Path(__file__).resolve().parents[1]


def ingest(store):
    with Ingester(store) as ingester:
        return ingester.ingest_once()


def test_open_creates_workspace_and_pragmas_on_every_connection(tmp_path):
    ws = tmp_path / "ws"
    with Store.open(ws) as store:
        assert (ws / "runs").is_dir() and (ws / "data").is_dir() and (ws / "studio.sqlite").is_file()
        # Two connections checked out at once: the second is brand new, not a pooled one.
        with store._engine.connect() as first, store._engine.connect() as second:
            for conn in (first, second):
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1   # NORMAL
                assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -64 * 1024


def test_migrated_schema_matches_models(store):
    with store._engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        names = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"ix_runs_created", "ix_runs_status", "ix_queue_order"} <= names


def test_status_is_checked_by_a_constraint(store, tmp_path):
    write_run(store.workspace, run_id())
    ingest(store)
    with pytest.raises(sqlite3.IntegrityError, match="ck_runs_status"):
        with sqlite3.connect(store.db_path) as conn:
            conn.execute("UPDATE runs SET status = 'exploded'")
    with pytest.raises(ValueError, match="Unknown run status"):
        store.set_status(run_id(), "exploded")


def test_database_from_a_newer_schema_is_refused(tmp_path):
    ws = tmp_path / "ws"
    Store.open(ws).close()
    with sqlite3.connect(ws / "studio.sqlite") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    with pytest.raises(SchemaError) as info:
        Store.open(ws)
    message = str(info.value)
    assert message.startswith(f"studio.sqlite at {ws / 'studio.sqlite'} was written by a newer DDAE Studio")
    assert "9999_from_the_future" in message and message.endswith("open another workspace.")
    assert message.count(". ") == 0 and "\n" not in message        # one sentence


def test_opens_from_an_installed_copy_without_alembic_ini(tmp_path):
    """Migrations are found next to the package, wherever it lives, not through cwd or alembic.ini."""
    site = tmp_path / "site"
    shutil.copytree(REPO / "db", site / "db", ignore=shutil.ignore_patterns("__pycache__"))
    code = "import db, sys; from db import Store; Store.open(sys.argv[1]).close(); print(db.__file__)"
    out = subprocess.run([sys.executable, "-P", "-c", code, str(tmp_path / "ws")], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(site)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(site / "db" / "__init__.py")
    with Store.open(tmp_path / "ws") as store:
        assert store.count_runs() == 0


def test_one_engine_per_process_and_workspace(tmp_path):
    with Store.open(tmp_path / "ws") as a, Store.open(tmp_path / "ws") as b:
        assert a._engine is b._engine and a._sessions is b._sessions
        a.close()
        assert b.count_runs() == 0                   # still usable: the engine is shared, counted
    with Store.open(tmp_path / "ws") as c:
        assert c._engine is not a._engine            # the last close disposed of it


def test_file_that_is_not_a_database_is_refused(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "studio.sqlite").write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(SchemaError, match="ddae reindex"):
        Store.open(ws)


def test_register_run_is_idempotent_and_queues_a_queued_spec(store):
    run_dir = write_run(store.workspace, run_id("probe"), kind="probe", queue={"priority": 2}, gpus=1)
    first = store.register_run(run_dir)
    second = store.register_run(run_dir)
    assert first == second
    assert first.status == "queued" and first.kind == "probe" and first.gpus == 1
    assert first.spec["options"] == {"steps": 100}
    jobs = store.queued_jobs()
    assert [(j.run, j.priority, j.gpus, j.device_request) for j in jobs] == [(first.id, 2, 1, "cuda")]
    assert store.count_runs() == 1


def test_get_run_by_id_prefix_or_name(store):
    a = write_run(store.workspace, run_id("train", 1), name="baseline")
    b = write_run(store.workspace, run_id("probe", 2), name="wide", kind="probe")
    for d in (a, b):
        store.register_run(d)
    assert store.get_run(a.name).id == a.name
    assert store.get_run("20261126-130000-p").name == "wide"          # a unique prefix
    assert store.get_run("baseline").id == a.name                     # an exact name
    store.rename(b.name, "20261126-130000-train")                     # a name that is also a prefix
    with pytest.raises(LookupError, match="matches several runs"):
        store.get_run("20261126-130000-train")
    with pytest.raises(LookupError, match="matches several runs"):
        store.get_run("20261126")
    with pytest.raises(LookupError, match="No run 'nothing'"):
        store.get_run("nothing")


def _populate(store):
    ws = store.workspace
    t1 = write_run(ws, run_id("train", 1), name="alpha", created=100.0,
                   events=[status("running"), metric("loss/train", 1, 0.5), metric("loss/train", 2, 0.25),
                           status("done")])
    write_run(ws, run_id("train", 2), name="beta wide", created=200.0,
              events=[status("running"), metric("loss/train", 1, 0.9), status("failed", error="CUDA out of memory.")])
    write_run(ws, run_id("probe", 3), name="probe alpha", kind="probe", created=300.0,
              parent={"run": t1.name, "checkpoint": "latest"},
              events=[status("running"), grid([11, 51], ["out_6", "out_7"]), grid_cell("out_6", 11, 0.7),
                      grid_cell("out_7", 51, 0.8), status("done")])
    write_run(ws, run_id("align-uniform", 4), name="align", kind="align-uniform", created=400.0,
              events=[status("running"), metric("probe/accuracy", 0, 0.6), metric("probe/accuracy", 1, 0.65)])
    ingest(store)
    store.set_tags(run_id("train", 1), ["baseline", "paper"])
    store.set_tags(run_id("probe", 3), ["paper"])
    store.set_notes(run_id("train", 2), "lr too high")


def test_list_runs_summary_columns_filters_and_ordering(store):
    _populate(store)
    runs = store.list_runs()
    assert [r.name for r in runs] == ["align", "probe alpha", "beta wide", "alpha"]      # created, newest first
    by_name = {r.name: r for r in runs}
    assert by_name["alpha"].last_loss == 0.25 and by_name["alpha"].tags == ("baseline", "paper")
    assert by_name["probe alpha"].best_accuracy == 0.8                                  # max over grid cells
    assert by_name["align"].best_accuracy == 0.65                                       # probe/accuracy summary
    assert by_name["probe alpha"].parent_run == run_id("train", 1)
    assert by_name["beta wide"].error == "CUDA out of memory."
    assert [r.name for r in store.list_runs(kind="probe")] == ["probe alpha"]
    assert [r.name for r in store.list_runs(status=["done", "failed"], order_by="name", descending=False)] == [
        "alpha", "beta wide", "probe alpha"]
    assert [r.name for r in store.list_runs(tag="paper", order_by="created", descending=False)] == [
        "alpha", "probe alpha"]
    assert [r.name for r in store.list_runs(tag=["paper", "baseline"])] == ["alpha"]
    assert {r.name for r in store.list_runs(search="ALPHA")} == {"alpha", "probe alpha"}
    assert [r.name for r in store.list_runs(search="too high")] == ["beta wide"]          # notes
    assert [r.name for r in store.list_runs(search="100%")] == []                          # % is literal
    # The train run "alpha" shows the best cell of its probe run "probe alpha" (a tie, broken by id).
    assert [r.name for r in store.list_runs(order_by="best_accuracy")][:3] == ["alpha", "probe alpha", "align"]
    assert [r.name for r in store.list_runs(order_by="last_loss", descending=False)][:2] == ["alpha", "beta wide"]
    assert [r.name for r in store.list_runs(limit=2, offset=1)] == ["probe alpha", "beta wide"]
    assert store.count_runs(status="done") == 2 and store.count_runs(search="alpha", kind="train") == 1
    assert [c.name for c in store.children("alpha")] == ["probe alpha"]
    assert {r.id for r in store.runs_by_status(["running"])} == {run_id("align-uniform", 4)}
    with pytest.raises(ValueError, match="Cannot sort runs by"):
        store.list_runs(order_by="colour")


def test_queue_orders_by_priority_then_first_in(store):
    ids = [run_id("train", n) for n in range(5)]
    for rid in ids:
        store.register_run(write_run(store.workspace, rid))
    store.enqueue(ids[0], priority=0)
    store.enqueue(ids[1], priority=5, gpus=2, device_request="cuda")
    store.enqueue(ids[2], priority=0)
    store.enqueue(ids[3], priority=5)
    store.enqueue(ids[4], priority=-1, gpus=0, device_request="cpu")
    assert [j.run for j in store.queued_jobs()] == [ids[1], ids[3], ids[0], ids[2], ids[4]]
    assert store.get_run(ids[1]).status == "queued"
    store.set_priority(ids[4], 9)
    assert [j.run for j in store.queued_jobs()][0] == ids[4]
    assert json.loads((store.run_dir(ids[4]) / "meta.json").read_text())["priority"] == 9
    assert store.dequeue(ids[4]) and not store.dequeue(ids[4])
    store.set_status(ids[1], "running", pid=123, host="box")
    assert [j.run for j in store.queued_jobs()] == [ids[3], ids[0], ids[2]]
    with pytest.raises(LookupError, match="not in the queue"):
        store.set_priority(ids[1], 1)
    with pytest.raises(ValueError, match="device request"):
        store.enqueue(ids[0], device_request="tpu")
    with pytest.raises(ValueError, match="is running; cancel it"):
        store.enqueue(ids[1])


def test_set_status_and_mark_interrupted(store):
    rid = run_id()
    store.register_run(write_run(store.workspace, rid))
    rec = store.set_status(rid, "running", pid=99, host="box", device="cuda:0", when=10.0)
    assert (rec.status, rec.pid, rec.host, rec.device, rec.started, rec.finished) == ("running", 99, "box", "cuda:0", 10.0, None)
    assert store.mark_interrupted(rid, when=20.0)
    rec = store.get_run(rid)
    assert (rec.status, rec.finished) == ("interrupted", 20.0)
    assert not store.mark_interrupted(rid)            # only a running run can be interrupted
    rec = store.set_status(rid, "failed", error="Disk full.", when=30.0)
    assert (rec.status, rec.error, rec.started, rec.finished) == ("failed", "Disk full.", 10.0, 30.0)


def test_edits_are_mirrored_to_meta_json(store):
    rid = run_id()
    run_dir = write_run(store.workspace, rid, name="first")
    (run_dir / "meta.json").write_text(json.dumps({"colour": "#ff0000"}))   # unknown keys survive
    store.register_run(run_dir)
    store.set_tags(rid, ["a", " b ", "a", ""])
    assert store.add_tag(rid, "c") == ("a", "b", "c")
    assert json.loads((run_dir / "meta.json").read_text())["tags"] == ["a", "b", "c"]
    assert store.remove_tag(rid, "a") == ("b", "c")
    store.set_notes(rid, "good run")
    store.rename(rid, "second")
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta == {"colour": "#ff0000", "tags": ["b", "c"], "notes": "good run", "name": "second"}
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []     # no temp files left
    rec = store.get_run("second")
    assert (rec.tags, rec.notes) == (("b", "c"), "good run")
    with pytest.raises(ValueError, match="cannot be empty"):
        store.rename(rid, "  ")


def test_delete_cascades_and_removes_files(store):
    _populate(store)
    parent, child = run_id("train", 1), run_id("probe", 3)
    append(store.run_dir(parent), [image(5)])
    ingest(store)
    store.enqueue(parent)
    store.delete_run(parent, remove_files=True)
    assert not store.run_dir(parent).exists()
    with sqlite3.connect(store.db_path) as conn:
        for table in ("metric_points", "metric_summary", "artifacts", "queue", "grid_cells"):
            assert conn.execute(f"SELECT count(*) FROM {table} WHERE run = ?", (parent,)).fetchone() == (0,), table
    rec = store.get_run(child)
    assert rec.parent_run is None and rec.parent_ref == parent        # unlinked, the spec still says
    # Deleted from the index only: the folder stays, and the ingester does not bring it back.
    store.delete_run(child, remove_files=False)
    assert store.run_dir(child).is_dir()
    ingest(store)
    with pytest.raises(LookupError):
        store.get_run(child)
    with sqlite3.connect(store.db_path) as conn:
        assert conn.execute("SELECT count(*) FROM grid_cells").fetchone() == (0,)


def test_change_token_skips_unchanged_polls(store):
    rid = run_id()
    write_run(store.workspace, rid, events=[status("running")])
    first = store.changed_since(None)
    assert first.full and first.runs == ()
    ingest(store)
    token = store.data_version()
    assert token != first.token and store.data_version() == token          # reads do not change it
    changes = store.changed_since(first.token)
    assert not changes.full and [r.id for r in changes.runs] == [rid] and changes.token == token
    assert store.changed_since(token).runs == ()
    store.set_tags(rid, ["x"])
    assert [r.tags for r in store.changed_since(token).runs] == [("x",)]
    token = store.data_version()
    store.delete_run(rid)
    changes = store.changed_since(token)
    assert changes.deleted == (rid,) and changes.runs == ()
