"""Curves: sealed blocks and summaries always agree with the points, whatever order points arrive in."""

from __future__ import annotations

import math
import random
import sqlite3

import pytest

from db import Ingester, Store, blocks
from db.testing import append, metric, run_id, write_run


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _points(db_path, rid, key):
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT step, value, time FROM metric_points WHERE run = ? AND key = ? ORDER BY step",
                            (rid, key)).fetchall()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_blocks_and_summaries_match_the_points_through_appends_and_rewrites(tmp_path, monkeypatch, seed):
    monkeypatch.setattr(blocks, "BLOCK_POINTS", 8)             # many blocks from few points
    rng = random.Random(seed)
    rid, key = run_id(), "probe/accuracy"
    with Store.open(tmp_path / "ws") as store, Ingester(store) as ingester:
        run_dir = write_run(store.workspace, rid)
        next_step = 0
        for _ in range(40):
            events = []
            if next_step and rng.random() < 0.3:               # a resumed run rewrites some old steps
                for step in rng.sample(range(next_step), min(next_step, rng.randint(1, 5))):
                    events.append(metric(key, step, rng.random(), t=2000.0 + step))
            for _ in range(rng.randint(0, 20)):                # then appends, with gaps now and then
                value = float("nan") if rng.random() < 0.05 else rng.random()
                events.append(metric(key, next_step, value, t=1000.0 + next_step))
                next_step += rng.choice((1, 1, 1, 5))
            append(run_dir, events)
            ingester.ingest_once()

            points = _points(store.db_path, rid, key)
            if not points:
                continue
            since = rng.choice([None, -1, points[len(points) // 2][0], points[-1][0]])
            history = store.metric_history(rid, key, since_step=since)
            expected = [p for p in points if since is None or p[0] > since]
            assert list(history.steps) == [p[0] for p in expected]
            assert all(_same(v, math.nan if p[1] is None else p[1]) for v, p in zip(history.values, expected))
            assert list(history.times) == [p[2] for p in expected]

            summary = store.summaries(rid)[0]
            valued = [(s, v) for s, v, _ in points if v is not None]
            best = max(valued, key=lambda p: (p[1], -p[0]))      # highest accuracy, earliest step
            assert (summary.count, summary.latest_step) == (len(points), points[-1][0])
            assert (summary.best_value, summary.best_step) == (best[1], best[0])
            assert (summary.min, summary.max) == (min(v for _, v in valued), max(v for _, v in valued))
    with sqlite3.connect(tmp_path / "ws" / "studio.sqlite") as conn:
        sealed = conn.execute("SELECT count(*), sum(count) FROM metric_blocks").fetchone()
    assert sealed[0] > 3 and sealed[1] == sealed[0] * 8


def test_a_long_curve_loads_from_blocks(tmp_path):
    rid = run_id()
    n = 5 * blocks.BLOCK_POINTS + 17
    with Store.open(tmp_path / "ws") as store, Ingester(store) as ingester:
        write_run(store.workspace, rid, events=[metric("loss/train", s, 1 / (s + 1), t=float(s)) for s in range(n)])
        ingester.ingest_once()
        history = store.metric_history(rid, "loss/train")
        assert history.steps.typecode == "q" and history.values.typecode == "d"
        assert list(history.steps) == list(range(n)) and history.values[-1] == 1 / n
        tail = store.metric_history(rid, "loss/train", since_step=n - 3)
        assert list(tail.steps) == [n - 2, n - 1]
        both = store.metric_histories([rid, rid[:-1]], "loss/train")
        assert list(both) == [rid] and len(both[rid].steps) == n
        assert store.metric_histories([rid], "missing/key") == {}
        store.delete_run(rid)
    with sqlite3.connect(tmp_path / "ws" / "studio.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM metric_blocks").fetchone() == (0,)
