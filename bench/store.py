"""Benchmark of the database layer: ingest rate, history load, run list (python -m bench.store).

Each figure is printed with its target and against a naive way of doing the same measured in the
same run, since machines are noisy. The last line is the summary the CI log greps.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, select

from db import Ingester, Store
from db.models import GridCellRow, MetricPoint, MetricSummaryRow, Run
from db.testing import run_id, write_run

from .results import record

TARGET_EVENTS_S, TARGET_HISTORY_MS, TARGET_LIST_MS = 50_000, 100.0, 200.0


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _write_events(run_dir: Path, n: int, first_step: int = 0) -> None:
    """n events as a training worker writes them: mostly loss points, some lr and progress."""
    lines = []
    for i in range(first_step, first_step + n):
        t = 1_700_000_000.0 + i * 0.01
        if i % 10 == 9:
            lines.append(json.dumps({"type": "progress", "done": i, "total": 10**6, "stage": "train", "time": t}))
        elif i % 10 == 8:
            lines.append(json.dumps({"type": "metric", "key": "lr", "step": i, "value": 2e-4, "time": t}))
        else:
            lines.append(json.dumps({"type": "metric", "key": "loss/train", "step": i,
                                     "value": 1.0 / (1 + i) + random.random() * 1e-3, "time": t}))
    with open(run_dir / "events.jsonl", "a") as fh:
        fh.write("\n".join(lines) + "\n")


def bench_ingest(ws: Path, events: int) -> tuple[float, float]:
    """Events/s of one ingest pass over `events` lines in 4 runs, and of a per-event-commit baseline."""
    per_run = events // 4
    with Store.open(ws) as store:
        for i in range(4):
            _write_events(write_run(ws, run_id("train", i)), per_run)
        with Ingester(store) as ingester:
            ingester.ingest_once()                 # register the folders, read nothing twice below
            for i in range(4):
                _write_events(store.run_dir(run_id("train", i)), per_run, first_step=per_run)
            stats = ingester.ingest_once()
        rate = stats.events / stats.seconds
        # Naive: one ORM object and one commit per event, as a logger calling the DB directly would.
        sample, rid = 2_000, run_id("train", 0)
        t = time.perf_counter()
        for step in range(sample):
            with store._sessions() as session, session.begin():
                session.merge(MetricPoint(run=rid, key="naive/loss", step=step, value=0.5, time=0.0))
        naive = sample / (time.perf_counter() - t)
    return rate, naive


def bench_history(ws: Path, points: int, repeat: int) -> tuple[float, float, float]:
    """Median ms to load an ingested `points`-point curve; the same as rows, and as ORM objects."""
    rid = run_id("train", 99)
    run_dir = write_run(ws, rid)
    with open(run_dir / "events.jsonl", "w") as fh:
        fh.writelines(json.dumps({"type": "metric", "key": "loss/train", "step": s, "value": 1 / (s + 1),
                                  "time": 1.7e9 + s}) + "\n" for s in range(points))
    with Store.open(ws) as store:
        with Ingester(store) as ingester:
            ingester.ingest_once()
        assert len(store.metric_history(rid, "loss/train").steps) == points
        ms = _median_ms(lambda: store.metric_history(rid, "loss/train"), repeat)

        def rows():          # the plain query: the right columns and index, a tuple per point
            with store._sessions() as session:
                result = session.connection().exec_driver_sql(
                    "SELECT step, value, time FROM metric_points WHERE run = ? AND key = ? ORDER BY step",
                    (rid, "loss/train")).all()
                return [r[0] for r in result], [r[1] for r in result], [r[2] for r in result]

        def orm():
            with store._sessions() as session:
                found = session.scalars(select(MetricPoint).where(
                    MetricPoint.run == rid, MetricPoint.key == "loss/train").order_by(MetricPoint.step)).all()
                return [r.step for r in found], [r.value for r in found], [r.time for r in found]
        plain = _median_ms(rows, max(1, repeat // 2))
        naive = _median_ms(orm, max(1, repeat // 2))
    return ms, plain, naive


def bench_run_list(ws: Path, runs: int, repeat: int) -> tuple[float, float, float, int]:
    """Median ms to list `runs` runs (all of them, and a first page of 200), and an N+1 baseline."""
    rng = random.Random(1)
    kinds = ["train", "probe", "align-uniform", "finetune", "sample"]
    with Store.open(ws) as store:
        run_rows, summaries, cells = [], [], []
        for i in range(runs):
            kind = kinds[i % len(kinds)]
            rid = run_id(kind, i, stamp=f"20260101-{i // 60:04d}{i % 60:02d}")
            run_rows.append({"id": rid, "name": f"{kind} run {i}", "kind": kind, "spec": "{}",
                             "status": rng.choice(["done", "failed", "running", "queued"]),
                             "created": 1.7e9 + i, "tags": json.dumps(["paper"] if i % 7 == 0 else []),
                             "progress_done": 50, "progress_total": 100, "progress_stage": "train"})
            summaries.append({"run": rid, "key": "loss/train", "count": 1000, "latest_step": 999,
                              "latest_value": rng.random(), "latest_time": 0.0, "best_step": 10,
                              "best_value": 0.01, "min": 0.01, "max": 1.0})
            run_rows[-1]["last_loss"] = summaries[-1]["latest_value"]     # as the ingester copies them
            if kind == "probe":
                grid = [{"run": rid, "layer": f"out_{layer}", "timestep": t, "accuracy": rng.random(), "time": 0.0}
                        for layer in range(6) for t in (11, 51, 101, 201, 301)]
                run_rows[-1]["best_accuracy"] = max(c["accuracy"] for c in grid)
                cells += grid
        with store._write() as (session, version):
            session.execute(insert(Run), run_rows)
            session.execute(insert(MetricSummaryRow), summaries)
            session.execute(insert(GridCellRow), cells)
        assert len(store.list_runs()) >= runs
        full = _median_ms(lambda: store.list_runs(limit=None), repeat)
        page = _median_ms(lambda: store.list_runs(limit=200), repeat)

        def n_plus_one():
            with store._sessions() as session:
                out = []
                for run in session.scalars(select(Run).order_by(Run.created.desc())):
                    loss = session.scalars(select(MetricSummaryRow).where(
                        MetricSummaryRow.run == run.id, MetricSummaryRow.key == "loss/train")).first()
                    best = session.scalars(select(GridCellRow.accuracy).where(GridCellRow.run == run.id)).all()
                    out.append((run.id, loss.latest_value if loss else None, max(best, default=None)))
                return out
        naive = _median_ms(n_plus_one, 1)
    return full, page, naive, len(cells)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events in the ingest pass")
    parser.add_argument("--points", type=int, default=100_000, help="points of the history loaded")
    parser.add_argument("--runs", type=int, default=10_000, help="runs in the run list")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    random.seed(0)
    with tempfile.TemporaryDirectory(prefix="ddae-bench-store-") as tmp:
        rate, naive_rate = bench_ingest(Path(tmp) / "ingest", args.events)
        print(f"ingest:   {args.events:,} events in one pass: {rate:,.0f} events/s (target >= {TARGET_EVENTS_S:,}); "
              f"per-event ORM commit: {naive_rate:,.0f} events/s -> {rate / naive_rate:,.0f}x")
        hist, plain_hist, naive_hist = bench_history(Path(tmp) / "history", args.points, args.repeat)
        print(f"history:  {args.points:,} points: {hist:.1f} ms median of {args.repeat} (target < {TARGET_HISTORY_MS:.0f} ms); "
              f"rows of metric_points: {plain_hist:.1f} ms -> {plain_hist / hist:.1f}x; "
              f"ORM object per row: {naive_hist:.1f} ms -> {naive_hist / hist:.1f}x")
        full, page, naive_list, cells = bench_run_list(Path(tmp) / "list", args.runs, args.repeat)
        print(f"run list: {args.runs:,} runs ({cells:,} grid cells): all {full:.1f} ms, first page of 200 {page:.1f} ms, "
              f"median of {args.repeat} (target < {TARGET_LIST_MS:.0f} ms); "
              f"N+1 queries: {naive_list:.0f} ms -> {naive_list / full:.1f}x")
    record("store", f"store: ingest: {rate:.0f} events/s, history: {hist:.1f} ms, run list: {full:.1f} ms")


if __name__ == "__main__":
    main()
