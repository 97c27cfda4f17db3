"""Keeping each curve's summary (latest, best, min, max, count) and sealed blocks up to date on ingest.

Summaries are merged incrementally when a pass only appends steps after the key's latest one, the
usual case. A pass that replaces or back-fills a step (a resumed run, a replayed file) may have
removed the best point, so that key is recomputed from metric_points: rare, and one indexed scan.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from . import blocks
from .records import higher_is_better

_COLUMNS = ("count", "latest_step", "latest_value", "latest_time", "best_step", "best_value", "min", "max")
_UPSERT = (f"INSERT OR REPLACE INTO metric_summary (run, key, {', '.join(_COLUMNS)}) "
           f"VALUES (?, ?, {', '.join('?' * len(_COLUMNS))})")


def summarize(points: list[tuple[int, float | None, float | None]], higher: bool,
              old: dict[str, Any] | None = None) -> dict[str, Any]:
    """Summary of `points` (step, value, time) sorted by step, all after `old`'s latest step.

    A None value (NaN) counts but is never min, max or best. Ties for best keep the earliest
    step, as recompute() does.
    """
    s: dict[str, Any] = dict(old) if old else dict.fromkeys(_COLUMNS, None) | {"count": 0}
    best, best_step, lo, hi = s["best_value"], s["best_step"], s["min"], s["max"]
    for step, value, _ in points:
        if value is None:
            continue
        if lo is None or value < lo:
            lo = value
        if hi is None or value > hi:
            hi = value
        if best is None or (value > best if higher else value < best):
            best, best_step = value, step
    last = points[-1]
    s.update(count=s["count"] + len(points), latest_step=last[0], latest_value=last[1], latest_time=last[2],
             best_step=best_step, best_value=best, min=lo, max=hi)
    return s


def recompute(conn: Connection, run: str, key: str, higher: bool) -> dict[str, Any]:
    """The key's summary from all its points."""
    where = "FROM metric_points WHERE run = ? AND key = ?"
    count, lo, hi = conn.exec_driver_sql(f"SELECT count(*), min(value), max(value) {where}", (run, key)).one()
    latest = conn.exec_driver_sql(f"SELECT step, value, time {where} ORDER BY step DESC LIMIT 1", (run, key)).one()
    best = conn.exec_driver_sql(
        f"SELECT step, value {where} AND value IS NOT NULL ORDER BY value {'DESC' if higher else 'ASC'}, step "
        "LIMIT 1", (run, key)).first()
    return {"count": count, "latest_step": latest[0], "latest_value": latest[1], "latest_time": latest[2],
            "best_step": best[0] if best else None, "best_value": best[1] if best else None, "min": lo, "max": hi}


def update_curves(conn: Connection, new_points: dict[str, dict[tuple[str, int], tuple]]) -> None:
    """After `new_points` (run -> {(key, step): (value, time)}) were upserted: summaries and blocks."""
    for run, points in new_points.items():
        by_key: dict[str, list] = {}
        for (key, step), (value, t) in points.items():
            by_key.setdefault(key, []).append((step, value, t))
        if not by_key:
            continue
        marks = ", ".join("?" * len(by_key))
        rows = conn.exec_driver_sql(
            f"SELECT key, {', '.join(_COLUMNS)} FROM metric_summary WHERE run = ? AND key IN ({marks})",
            (run, *by_key)).all()
        old = {r[0]: dict(zip(_COLUMNS, r[1:])) for r in rows}
        summaries = []
        for key, key_points in by_key.items():
            key_points.sort()
            prev = old.get(key)
            appended = prev is None or key_points[0][0] > prev["latest_step"]
            higher = higher_is_better(key)
            summary = summarize(key_points, higher, prev) if appended else recompute(conn, run, key, higher)
            summaries.append((run, key, *(summary[c] for c in _COLUMNS)))
            if appended:
                blocks.reseal(conn, run, key, summary["count"], appended=key_points,
                              old_latest=prev["latest_step"] if prev else None)
            else:
                blocks.reseal(conn, run, key, summary["count"], changed_from=key_points[0][0])
        conn.exec_driver_sql(_UPSERT, summaries)
