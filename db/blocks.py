"""Sealed blocks of metric points: how a 100k-point curve loads in milliseconds.

metric_points (one row per point) stays the source of truth. Reading it costs a Python tuple and
three objects per point, about 1 us each, too slow for long curves. So once a key has BLOCK_POINTS
points beyond its last block, the ingester packs them, in step order, into one metric_blocks row
of three little-endian arrays (steps int64, values float64, times float64, NaN for null). A curve
is its blocks (bytes copied into array.array) plus the short unsealed tail read from
metric_points. A pass that replaces or back-fills a step drops the blocks from that step on; they
are packed again from metric_points in the same transaction.
"""

from __future__ import annotations

import math
import sys
from array import array
from bisect import bisect_right

from sqlalchemy import Connection

from .records import History

BLOCK_POINTS = 1024
_NAN = math.nan
_SWAP = sys.byteorder != "little"       # blocks are little-endian on disk, whatever the machine


def _pack(rows: list[tuple]) -> tuple[bytes, bytes, bytes]:
    steps = array("q", [r[0] for r in rows])
    values = array("d", [_NAN if r[1] is None else r[1] for r in rows])
    times = array("d", [_NAN if r[2] is None else r[2] for r in rows])
    if _SWAP:
        for a in (steps, values, times):
            a.byteswap()
    return steps.tobytes(), values.tobytes(), times.tobytes()


def reseal(conn: Connection, run: str, key: str, point_count: int, changed_from: int | None = None,
           appended: list[tuple] | None = None, old_latest: int | None = None) -> None:
    """Update the key's blocks after the pass wrote its points to metric_points.

    point_count: the key's points now. changed_from: the lowest step the pass replaced or
    back-filled, whose blocks are dropped. appended: when the pass only appended, its points
    (sorted, all after old_latest), which saves reading them back.
    """
    if changed_from is not None:
        conn.exec_driver_sql("DELETE FROM metric_blocks WHERE run = ? AND key = ? AND last_step >= ?",
                             (run, key, changed_from))
    sealed_step, sealed_count = conn.exec_driver_sql(
        "SELECT max(last_step), coalesce(sum(count), 0) FROM metric_blocks WHERE run = ? AND key = ?",
        (run, key)).one()
    if point_count - sealed_count < BLOCK_POINTS:
        return
    rows: list[tuple] = []
    if appended is None or old_latest is not None:     # else the key is new: all its points are `appended`
        sql = "SELECT step, value, time FROM metric_points WHERE run = ? AND key = ?"
        params: tuple = (run, key)
        if sealed_step is not None:
            sql, params = sql + " AND step > ?", params + (sealed_step,)
        if appended is not None:
            sql, params = sql + " AND step <= ?", params + (old_latest,)
        cursor = conn.connection.cursor()  # plain tuples: this can be many rows
        try:
            rows = cursor.execute(sql + " ORDER BY step", params).fetchall()
        finally:
            cursor.close()
    rows += appended or []
    blocks = []
    for start in range(0, len(rows) - BLOCK_POINTS + 1, BLOCK_POINTS):
        chunk = rows[start:start + BLOCK_POINTS]
        blocks.append((run, key, chunk[0][0], chunk[-1][0], len(chunk), *_pack(chunk)))
    conn.exec_driver_sql(
        "INSERT INTO metric_blocks (run, key, first_step, last_step, count, step_bytes, value_bytes, time_bytes) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", blocks)


def load(cursor, run: str, key: str, since_step: int | None = None) -> History:
    """The curve from a DB-API cursor: blocks, then the unsealed tail; only steps > since_step if given."""
    steps, values, times = array("q"), array("d"), array("d")
    sql = "SELECT step_bytes, value_bytes, time_bytes, last_step FROM metric_blocks WHERE run = ? AND key = ?"
    params: tuple = (run, key)
    if since_step is not None:
        sql, params = sql + " AND last_step > ?", params + (since_step,)
    last = None
    # `last` is read after the loop: the last sealed block's last step.
    for step_bytes, value_bytes, time_bytes, last in cursor.execute(sql + " ORDER BY first_step", params):  # noqa: B007
        steps.frombytes(step_bytes)
        values.frombytes(value_bytes)
        times.frombytes(time_bytes)
    if _SWAP:
        for a in (steps, values, times):
            a.byteswap()
    if since_step is not None and steps and steps[0] <= since_step:
        cut = bisect_right(steps, since_step)
        del steps[:cut], values[:cut], times[:cut]
    after = last if last is not None else since_step
    sql = "SELECT step, value, time FROM metric_points WHERE run = ? AND key = ?"
    params = (run, key)
    if after is not None:
        sql, params = sql + " AND step > ?", params + (after,)
    for step, value, t in cursor.execute(sql + " ORDER BY step", params):
        steps.append(step)
        values.append(_NAN if value is None else value)
        times.append(_NAN if t is None else t)
    return History(steps, values, times)
