"""The one time-left estimate of Queue and the Run header (app/eta.py, Qt-free)."""

from __future__ import annotations

import sys

from app.eta import RemainingTime, clock, left_text


def test_time_left_is_a_duration_and_counts_down_between_reports():
    eta = RemainingTime()
    eta.observe("r", "train", 100, 1100, now=100.0)
    eta.observe("r", "train", 110, 1100, now=110.0)                    # 1 step/s
    assert eta.seconds_left("r", 110.0) == 990.0
    assert eta.seconds_left("r", 140.0) == 960.0                       # no report yet: the clock runs
    assert left_text(eta.seconds_left("r", 110.0)) == "16:30 left"
    assert left_text(None) == "" and clock(3725) == "1:02:05"


def test_a_slow_start_never_counts_and_bursts_stay_smooth():
    """Ten minutes of setup, then 10 steps/s reported in bursts: the estimate is right from the second
    report and stays within 15% of the truth, never jumping like 31:22 -> 3:00."""
    eta = RemainingTime(half_life_s=60)
    done, now, total = 10, 600.0, 20_010          # 10 steps in the first 10 minutes (setup)
    eta.observe("r", "train", done, total, now)
    errors = []
    for i in range(60):                            # a report every 2 s, but steps land in bursts of 4 s
        now += 2.0
        done += 40 if i % 2 else 0
        eta.observe("r", "train", done, total, now)
        left = eta.seconds_left("r", now)
        if left is not None:
            truth = (total - done) / 10.0 - (2.0 if i % 2 == 0 else 0.0)
            errors.append(abs(left - truth) / truth)
    assert len(errors) >= 59 and max(errors) < 0.15, max(errors)


def test_same_count_reports_do_not_read_as_stalled_and_a_new_stage_starts_over():
    eta = RemainingTime()
    eta.observe("r", "train", 0, 100, now=0.0)
    assert eta.seconds_left("r", 0.0) is None                          # no rate yet
    eta.observe("r", "train", 10, 100, now=10.0)
    assert eta.seconds_left("r", 10.0) == 90.0
    for t in (11.0, 12.0, 13.0):                                       # polled faster than it reports
        eta.observe("r", "train", 10, 100, now=t)
    eta.observe("r", "train", 20, 100, now=20.0)
    assert eta.seconds_left("r", 20.0) == 80.0                         # still 1 step/s
    eta.observe("r", "probe", 1, 8, now=30.0)                         # another stage: its own count
    assert eta.seconds_left("r", 30.0) is None
    eta.forget("r")
    assert eta.seconds_left("r", 30.0) is None


def test_the_estimate_needs_no_qt():
    assert not any(name.startswith("PySide6") for name in sys.modules if name.startswith("app.eta"))
    import ast
    import inspect

    import app.eta

    tree = ast.parse(inspect.getsource(app.eta))
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | \
        {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m.startswith(("PySide6", "pyqtgraph")) for m in imported)
