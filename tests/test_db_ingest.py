"""Ingest: idempotence, torn and bad lines, summaries, statuses, the lock, concurrent writers."""

from __future__ import annotations

import logging
import math
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from db import Ingester, IngestLockError
from db.testing import (
    append,
    artifact,
    grid,
    grid_cell,
    image,
    metric,
    progress,
    run_id,
    status,
    training_events,
    write_run,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def ingester(store):
    with Ingester(store) as ing:
        yield ing


def counts(store) -> dict[str, int]:
    with sqlite3.connect(store.db_path) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("runs", "metric_points", "metric_summary", "grid_cells", "artifacts", "queue")}


def test_reingesting_the_same_file_changes_nothing(store, ingester):
    rid = run_id()
    write_run(store.workspace, rid, events=training_events(200) + [grid([1], ["out_6"]), grid_cell("out_6", 1, 0.5)])
    stats = ingester.ingest_once()
    assert stats.runs_registered == 1 and stats.metric_points == 40 and stats.grid_cells == 1
    before, summaries = counts(store), store.summaries(rid)
    assert ingester.ingest_once().events == 0                   # nothing new: no write at all
    with sqlite3.connect(store.db_path) as conn:                # replay the whole file
        conn.execute("UPDATE runs SET events_offset = 0")
    assert ingester.ingest_once().metric_points == 40
    assert counts(store) == before and store.summaries(rid) == summaries
    assert store.get_run(rid).status == "done"


def test_torn_last_line_waits_for_the_next_pass(store, ingester):
    rid = run_id()
    run_dir = write_run(store.workspace, rid, events=[metric("loss/train", 1, 0.5)])
    line = '{"type":"metric","key":"loss/train","step":2,"value":0.25,"time":1.0}\n'
    append(run_dir, [], torn=line[:30])
    assert ingester.ingest_once().metric_points == 1
    offset = store.get_run(rid).events_offset
    assert offset == (run_dir / "events.jsonl").stat().st_size - 30      # stops before the torn line
    assert ingester.ingest_once().events == 0
    append(run_dir, [], torn=line[30:])
    assert ingester.ingest_once().metric_points == 1
    assert list(store.metric_history(rid, "loss/train").steps) == [1, 2]
    assert ingester.ingest_once().events == 0


def test_bad_lines_are_skipped_with_a_warning_and_later_lines_count(store, ingester, caplog):
    rid = run_id()
    run_dir = write_run(store.workspace, rid, events=[metric("loss/train", 1, 0.5)])
    bad_at = (run_dir / "events.jsonl").stat().st_size
    append(run_dir, ["not json at all", '{"type": "metric", "key": "loss/train"}',   # no step, no value
                     '{"type": "grid_cell", "layer": "out_6", "timestep": 1.5, "accuracy": 0.3}',
                     '{"type": "brand_new_type", "time": 1}',                        # unknown: silent
                     '{"type": "artifact", "kind": "tarball", "path": "x"}', "",
                     '["a list"]', metric("loss/train", 2, 0.25)])
    with caplog.at_level(logging.WARNING, logger="db"):
        stats = ingester.ingest_once()
    assert stats.skipped_lines == 5 and stats.metric_points == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 5 and all(rid in w for w in warnings)
    assert f"byte {bad_at} " in warnings[0] and "not valid JSON" in warnings[0]
    assert "'step'" in warnings[1] and "brand_new_type" not in " ".join(warnings)
    assert list(store.metric_history(rid, "loss/train").values) == [0.5, 0.25]


def test_a_run_the_index_cannot_hold_is_skipped_once_and_the_others_are_indexed(store, ingester, caplog):
    good, bad, worse = run_id(n=1), run_id(n=2), run_id(n=3)
    write_run(store.workspace, good, events=training_events(20))
    write_run(store.workspace, bad, queue={"priority": 2**70})            # read_run refuses it
    write_run(store.workspace, worse, gpus=1)
    insert = store._insert_run

    def insert_failing_for_worse(session, version, files):
        inserted = insert(session, version, files)
        if files.id == worse:          # half written when a value no check foresaw reaches SQLite
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return inserted

    store._insert_run = insert_failing_for_worse
    with caplog.at_level(logging.WARNING, logger="db"):
        assert ingester.ingest_once().runs_registered == 1
        assert ingester.ingest_once().runs_registered == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings                     # once per run, not once per pass
    assert warnings[0].startswith(f"Not indexing run {bad}: ") and "A queue priority must be" in warnings[0]
    assert warnings[1].startswith(f"Not indexing run {worse}: the index cannot hold a value of it (OverflowError")
    assert [r.id for r in store.list_runs()] == [good] and store.get_run(good).status == "done"


def test_summary_latest_and_best_incl_replaced_points(store, ingester):
    rid = run_id()
    run_dir = write_run(store.workspace, rid, events=[
        metric("loss/train", 0, 1.0), metric("loss/train", 10, 0.2), metric("loss/train", 20, 0.4),
        metric("probe/accuracy", 0, 0.5), metric("probe/accuracy", 1, 0.9), metric("probe/accuracy", 2, 0.9),
        metric("noisy/accuracy", 11, 0.3), metric("align/out_6", 0, 0.7)])
    ingester.ingest_once()
    s = {m.key: m for m in store.summaries(rid)}
    assert (s["loss/train"].best_value, s["loss/train"].best_step) == (0.2, 10)           # min
    assert (s["loss/train"].latest_step, s["loss/train"].latest_value, s["loss/train"].count) == (20, 0.4, 3)
    assert (s["probe/accuracy"].best_value, s["probe/accuracy"].best_step) == (0.9, 1)    # max, first on ties
    assert s["noisy/accuracy"].higher_is_better and not s["align/out_6"].higher_is_better
    assert store.metric_keys(rid) == ["align/out_6", "loss/train", "noisy/accuracy", "probe/accuracy"]
    # Appending: merged incrementally. A NaN point counts but is never best.
    append(run_dir, [metric("loss/train", 30, 0.1), metric("loss/train", 40, float("nan"))])
    ingester.ingest_once()
    loss = store.summaries(rid)[1]
    assert (loss.best_value, loss.best_step, loss.count, loss.latest_step, loss.latest_value) == (0.1, 30, 5, 40, None)
    assert math.isnan(store.metric_history(rid, "loss/train").values[-1])
    # A resumed run rewrites steps 10 and 30 (the best): the summary is recomputed, not left stale.
    append(run_dir, [metric("loss/train", 10, 0.6), metric("loss/train", 30, 0.5)])
    ingester.ingest_once()
    loss = store.summaries(rid)[1]
    assert (loss.best_value, loss.best_step, loss.count, loss.min, loss.max) == (0.4, 20, 5, 0.4, 1.0)
    assert list(store.metric_history(rid, "loss/train", since_step=10).steps) == [20, 30, 40]
    assert store.list_runs()[0].last_loss is None                        # latest point is the NaN


def test_event_types_update_run_grid_artifacts_and_queue(store, ingester):
    rid = run_id("probe")
    run_dir = write_run(store.workspace, rid, kind="probe", queue={"priority": 1})
    ingester.ingest_once()
    assert store.get_run(rid).status == "queued" and len(store.queued_jobs()) == 1
    append(run_dir, [status("running", 10.0, pid=77, host="gpu1", device="cuda:0"),
                     progress(3, 10, "extract t=11", 11.0), grid([11, 51], ["out_6", "out_7"]),
                     grid_cell("out_7", 51, 0.6), grid_cell("out_6", 11, 0.8), image(100), image(200),
                     image(50, key="denoised"), artifact("figure", "figures/grid.png"),
                     artifact("checkpoint", "checkpoints/step_000300.pt", 300),
                     status("failed", 20.0, error="Out of memory.")])
    ingester.ingest_once()
    rec = store.get_run(rid)
    assert (rec.status, rec.pid, rec.host, rec.device, rec.error) == ("failed", 77, "gpu1", "cuda:0", "Out of memory.")
    assert (rec.started, rec.finished, rec.progress_done, rec.progress_total, rec.progress_stage) == (
        10.0, 20.0, 3, 10, "extract t=11")
    assert store.queued_jobs() == []                                      # it left the queue
    axes = store.grid_axes(rid)
    assert axes.timesteps == (11, 51) and axes.layers == ("out_6", "out_7") and axes.labels["11"] == "t=11"
    assert [(c.timestep, c.layer, c.accuracy) for c in store.grid_cells(rid)] == [(11, "out_6", 0.8), (51, "out_7", 0.6)]
    assert store.images(rid) == [(100, "samples/step_000100.png"), (200, "samples/step_000200.png")]
    assert [a.kind for a in store.artifacts(rid)] == ["checkpoint", "figure", "image", "image", "image"]
    assert [a.path for a in store.artifacts(rid, kind="checkpoint")] == ["checkpoints/step_000300.pt"]
    # Resumed: running again clears finished and error, keeps the first start.
    append(run_dir, [status("running", 30.0, resumed_from=300)])
    ingester.ingest_once()
    rec = store.get_run(rid)
    assert (rec.status, rec.started, rec.finished, rec.error, rec.pid) == ("running", 10.0, None, None, 77)


def test_a_rewritten_shorter_file_is_read_again(store, ingester):
    rid = run_id()
    run_dir = write_run(store.workspace, rid, events=[metric("loss/train", s, 1.0) for s in range(50)])
    ingester.ingest_once()
    (run_dir / "events.jsonl").unlink()
    append(run_dir, [metric("loss/train", 3, 0.5)])
    assert ingester.ingest_once().metric_points == 1
    assert store.get_run(rid).events_offset == (run_dir / "events.jsonl").stat().st_size
    assert store.metric_history(rid, "loss/train").values[3] == 0.5


def test_byte_budgets_spread_a_backlog_over_passes(store, caplog):
    ids = [run_id("train", i) for i in range(3)]
    for rid in ids:
        write_run(store.workspace, rid, events=[metric("loss/train", s, 0.5) for s in range(30)])
    long_line = metric("loss/train", 999, 0.5) | {"padding": "x" * 5000}
    append(store.run_dir(ids[1]), [long_line, metric("loss/train", 30, 0.5)])
    with Ingester(store, max_bytes_per_run=2000, max_bytes_per_pass=3000) as ingester:
        passes = []
        with caplog.at_level(logging.WARNING, logger="db"):
            while (stats := ingester.ingest_once()).runs_read:
                passes.append(stats.events)
                assert stats.bytes_read <= 3000 + 2000
    assert len(passes) > 3 and sum(passes) == 91                  # every line once, the long one skipped
    assert any("no line ends within them" in r.getMessage() for r in caplog.records)
    assert [store.summaries(rid)[0].count for rid in ids] == [30, 31, 30]


def test_a_second_ingester_is_refused(store, ingester):
    other = Ingester(store)
    assert not other.acquire()
    with pytest.raises(IngestLockError, match=rf"pid {__import__('os').getpid()} on .*only one ingester"):
        other.ingest_once()
    code = f"""
        from db import Ingester, Store
        with Store.open({str(store.workspace)!r}) as s:
            print(Ingester(s).acquire())
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
    ingester.release()
    assert other.acquire()
    other.release()


WRITER = """
import json, sys, time
run_dir, n = sys.argv[1], int(sys.argv[2])
with open(run_dir + "/events.jsonl", "a") as fh:
    for step in range(n):
        line = json.dumps({"type": "metric", "key": "loss/train", "step": step, "value": 1 / (step + 1),
                           "time": time.time()}) + "\\n"
        if step % 97 == 0:            # now and then a line in two writes: the ingester may see half
            fh.write(line[:20]); fh.flush(); time.sleep(0.002); fh.write(line[20:])
        else:
            fh.write(line)
        fh.flush()
        if step % 50 == 0:
            time.sleep(0.001)
    fh.write(json.dumps({"type": "status", "status": "done", "time": time.time()}) + "\\n")
"""

EDITOR = """
import sys
from db import Store
with Store.open(sys.argv[1]) as store:
    for i in range(int(sys.argv[3])):
        store.set_tags(sys.argv[2], ["edit", str(i)])
        store.set_notes(sys.argv[2], f"note {i}")
        store.enqueue(sys.argv[2], priority=i)
        store.list_runs(limit=50)
"""


@pytest.mark.timeout(120)
def test_four_writer_processes_while_ingesting_and_editing(store, ingester):
    n = 2500
    ids = [run_id("train", i) for i in range(4)]
    dirs = [write_run(store.workspace, rid) for rid in ids]
    spare = run_id("probe", 9)
    write_run(store.workspace, spare, kind="probe")
    ingester.ingest_once()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(d), str(n)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for d in dirs]
    procs.append(subprocess.Popen([sys.executable, "-c", EDITOR, str(store.workspace), spare, "150"], cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    passes, deadline = 0, time.monotonic() + 100
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        ingester.ingest_once()
        passes += 1
        time.sleep(0.01)
    outputs = [p.communicate(timeout=30) for p in procs]
    for p, (_out, err) in zip(procs, outputs):
        assert p.returncode == 0 and "locked" not in err, err
    ingester.ingest_once()
    assert passes > 5
    for rid in ids:
        history = store.metric_history(rid, "loss/train")
        assert list(history.steps) == list(range(n))
        summary = store.summaries(rid)[0]
        assert (summary.count, summary.latest_step, summary.best_value) == (n, n - 1, 1 / n)
        assert store.get_run(rid).status == "done"
    assert counts(store)["metric_points"] == 4 * n
    assert store.get_run(spare).tags == ("edit", "149") and store.get_run(spare).notes == "note 149"
