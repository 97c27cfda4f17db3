"""GUI responsiveness (python -m bench.gui): stalls of the GUI thread while two jobs stream, and a 1M-point redraw.

Two writer processes append events as a training worker does (a status line, then per step
loss/train, lr, images_per_s, ema/decay and progress), at `--steps-per-s` steps a second each.
The app's scheduler thread ingests them; two run views (the window's and a second one) follow
one run each on the window's refresh timer. Meanwhile a 10 ms QTimer on the GUI thread records
when it fires: the gaps beyond 10 ms are how long the GUI could not respond, from right after the
two runs are opened (their first layout and paints included). Opening them (show_run: reading
each run and building its panels) happens before the timer starts; it is reported on its own line.
Then a CurvePlot of 1,000,000 points (smoothing on, so two curves) is redrawn: the view range
changes and a synchronous repaint redoes the peak-preserving decimation of all points and paints them. Loading new data
(set_series: copy, smoothing, decimation, paint) is reported beside it.

A stall is reported as the whole gap between two ticks (so 10 ms means none). Targets: p99 stall < 30 ms,
max stall < 100 ms, 1M-point redraw < 30 ms. The last line is the summary:
`gui: p99 stall: T ms, max stall: T ms, 1M-point redraw: T ms`.

`--runs 12` streams a sweep instead: 12 writer processes (a grid of n_T x seeds, each run with its settings)
into one workspace while the window shows the Runs view as a lab uses it (setting and metric columns, grouped
by n_T with mean +- std) and a second window one Run view; the same stall figures, recorded as `gui_sweep`:
`gui, 12-run sweep: p99 stall: T ms, max stall: T ms (Runs view grouped, with setting columns, and a Run view)`.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from .results import record

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TARGET_P99_MS, TARGET_MAX_MS, TARGET_REDRAW_MS = 30.0, 100.0, 30.0
ROOT = Path(__file__).resolve().parents[1]

WRITER = """
import json, os, socket, sys, time
run_dir, seconds, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
fh = open(os.path.join(run_dir, "events.jsonl"), "a")
def put(**ev):
    ev["time"] = round(time.time(), 3)
    fh.write(json.dumps(ev, separators=(",", ":")) + "\\n")
put(type="status", status="running", pid=os.getpid(), host=socket.gethostname(), device="cpu")
fh.flush()
start, step, total = time.time(), 0, int(seconds * rate)
while step < total:
    step += 1
    loss = 0.05 + 1.0 / (1 + step / 200)
    put(type="metric", key="loss/train", step=step, value=loss)
    put(type="metric", key="lr", step=step, value=2e-4)
    put(type="metric", key="images_per_s", step=step, value=rate * 128)
    put(type="metric", key="ema/decay", step=step, value=0.999)
    put(type="progress", done=step, total=total, stage="train")
    fh.flush()
    delay = start + step / rate - time.time()
    if delay > 0:
        time.sleep(delay)
put(type="status", status="done")
fh.close()
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def measure_stalls(app, seconds: float) -> list[float]:
    """Gaps (ms) between ticks of a 10 ms timer on the GUI thread, while the event loop runs."""
    from PySide6.QtCore import QEventLoop, QTimer

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    timer.start()
    loop.exec()
    timer.stop()
    return [(b - a) * 1000 for a, b in zip(ticks, ticks[1:])]


def measure_redraw(app, n: int, repeat: int = 5) -> tuple[float, float]:
    """(median ms of set_series + repaint, median ms of a repaint after a zoom) for an n-point curve."""
    import numpy as np

    from app.widgets.curves import CurvePlot

    plot = CurvePlot("1M points", "loss")
    plot.resize(1200, 600)
    plot.set_smoothing(0.6)
    plot.show()
    app.processEvents()
    rng = np.random.default_rng(0)
    steps = np.arange(n, dtype=np.float64)
    values = 0.05 + 1.0 / (1 + steps / 2000) + 0.02 * rng.standard_normal(n).cumsum() / np.sqrt(n)
    full, zoom = [], []
    for i in range(repeat + 1):
        t = time.perf_counter()
        plot.set_series("loss/train", steps, values + i * 1e-3)
        plot.plot_widget.viewport().repaint()
        if i:
            full.append((time.perf_counter() - t) * 1000)   # the first includes one-off allocations
        t = time.perf_counter()
        plot.plot.setXRange(0, n * (0.5 + 0.1 * i), padding=0)
        plot.plot_widget.viewport().repaint()
        zoom.append((time.perf_counter() - t) * 1000)
        app.processEvents()
    plot.close()
    return statistics.median(full), statistics.median(zoom)


def stream(app, window, runs: list[Path], seconds: float, steps_per_s: float, open_views,
           profile: bool = False) -> tuple[float, list]:
    """Start one writer per run, wait for the index to list them, open the views (open_views(), timed: ms),
    then measure the GUI thread's stalls while they stream; returns (open ms, gaps). profile: print what the
    GUI thread spent the time on (cProfile; it slows every call, so the stalls then read high)."""
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(d), str(seconds), str(steps_per_s)], cwd=ROOT)
               for d in runs]
    try:
        deadline = time.monotonic() + 15
        while window.store.count_runs() < len(runs) and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.01)
        started = time.perf_counter()
        open_views()
        show_ms = (time.perf_counter() - started) * 1000
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()
        gaps = measure_stalls(app, seconds * 0.9)
        if profiler is not None:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        return show_ms, gaps
    finally:
        for w in writers:
            w.wait(seconds + 30)


def settle(app, window, last_run: str) -> None:
    """Let the last events arrive, to report how much the views received."""
    deadline = time.monotonic() + 10
    while window.store.get_run(last_run).status != "done" and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)
    for _ in range(30):
        app.processEvents()
        time.sleep(0.02)


def loss_points(view) -> int:
    from app.run.panels import TrainingPanel

    loss = view.panel(TrainingPanel).loss
    return len(loss.series_data("loss/train")[0]) if "loss/train" in loss.series_names() else 0


def stall_line(gaps: list[float]) -> tuple[float, float]:
    """Prints the timer's gaps; returns (p99, max). A gap is the whole time between ticks (10 ms: no stall)."""
    p99, worst = percentile(gaps, 99), max(gaps)
    print(f"10 ms timer: {len(gaps) + 1} ticks, gap p50 {statistics.median(gaps):.1f} ms, p99 {p99:.1f} ms, "
          f"max {worst:.1f} ms (targets p99 < {TARGET_P99_MS:g} ms, max < {TARGET_MAX_MS:g} ms)")
    return p99, worst


SWEEP_COLUMNS = ["diffusion.n_T", "seed", "lrate", "best", "loss"]
SWEEP_GROUP_BY, SWEEP_METRICS = ["diffusion.n_T"], ["best", "loss"]


def sweep(app, tmp: Path, args) -> int:
    """12 (--runs) writers stream a grid of n_T x seeds while the Runs view, grouped, and a Run view are open."""
    from app.main_window import MainWindow, settle_heap
    from app.run.feed import RunFeed
    from app.run.view import RunView
    from db import testing as fake

    ws = tmp / "ws"
    n_Ts = (1000, 512, 256, 64)
    runs = [fake.write_run(ws, fake.run_id("train", i), name=f"T{n_Ts[i % 4]} seed {i // 4}",
                           config={"diffusion": {"n_T": n_Ts[i % 4], "betas": [1e-4, 0.02]}, "network": {"ch": 32},
                                   "lrate": 2e-4},
                           options={"seed": i // 4, "steps": int(args.seconds * args.steps_per_s)})
            for i in range(args.runs)]
    window = MainWindow(ws)
    window.resize(1400, 900)
    window.show()
    lab = window.runs_view.lab
    lab.set_columns(SWEEP_COLUMNS)
    lab.groups.set_grouping(SWEEP_GROUP_BY, SWEEP_METRICS)
    lab.group_button.setChecked(True)
    window.tabs.setCurrentWidget(window.runs_view)
    run_view = RunView(partial(RunFeed, window.store), window.hub)
    run_view.resize(1200, 800)
    run_view.show()
    window.hub.second.connect(run_view.tick)
    settle_heap()

    def open_views() -> None:
        window.runs_view.reload()
        run_view.show_run(runs[0].name)

    show_ms, gaps = stream(app, window, runs, args.seconds, args.steps_per_s, open_views, args.profile)
    settle(app, window, runs[-1].name)
    shown, groups = loss_points(run_view), [(g.values, g.n) for g in lab.groups.groups]
    rows = window.runs_view.model.rowCount()
    run_view.close()
    window.close()
    events = int(args.seconds * args.steps_per_s) * 5 * args.runs
    print(f"streamed {events:,} events from {args.runs} writers in {args.seconds:g} s; loss points shown in the "
          f"Run view: {shown}; Runs view: {rows} rows, groups (n_T, n) {groups}")
    print(f"opening the Runs page and the Run view (before the timer starts): {show_ms:.0f} ms")
    p99, worst = stall_line(gaps)
    load = os.getloadavg()[0]
    print(f"machine load after measuring: {load:.1f} on {os.cpu_count()} cores")
    record("gui_sweep", f"gui, {args.runs}-run sweep: p99 stall: {p99:.1f} ms, max stall: {worst:.1f} ms "
                        f"(Runs view grouped, with setting columns, and a Run view)",
           note=f"load average {load:.1f} on {os.cpu_count()} cores while measuring")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="how long the jobs stream (default 12)")
    parser.add_argument("--steps-per-s", type=float, default=200.0,
                        help="training steps each writer reports per second, 5 events each (default 200)")
    parser.add_argument("--points", type=int, default=1_000_000, help="points of the redrawn curve")
    parser.add_argument("--runs", type=int, default=0,
                        help="stream a sweep of this many runs into the Runs view instead (e.g. 12)")
    parser.add_argument("--profile", action="store_true", help="with --runs: print the GUI thread's profile")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="ddae-bench-gui-"))
    os.environ["DDAE_STUDIO_SETTINGS"] = str(tmp / "settings.ini")     # never the user's settings
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow, settle_heap
    from app.run.feed import RunFeed
    from app.run.view import RunView
    from db import testing as fake

    app = QApplication.instance() or QApplication([])
    if args.runs:
        return sweep(app, tmp, args)
    ws = tmp / "ws"
    runs = [fake.write_run(ws, fake.run_id("train", i), name=f"stream {i}") for i in (1, 2)]
    window = MainWindow(ws)
    window.resize(1400, 900)
    window.show()
    second = RunView(partial(RunFeed, window.store), window.hub)
    second.resize(1200, 800)
    second.show()
    window.hub.second.connect(second.tick)
    settle_heap()                       # as main.py does once the window is up

    def open_views() -> None:
        window.show_run(runs[0].name)
        second.show_run(runs[1].name)
        window.tabs.setCurrentWidget(window.run_view)

    show_ms, gaps = stream(app, window, runs, args.seconds, args.steps_per_s, open_views)
    settle(app, window, runs[1].name)
    shown = [loss_points(v) for v in (window.run_view, second)]
    events = int(args.seconds * args.steps_per_s) * 5 * 2
    second.close()
    window.close()

    full_ms, zoom_ms = measure_redraw(app, args.points)
    print(f"streamed {events:,} events from 2 writers in {args.seconds:g} s; loss points shown per view: {shown}")
    print(f"opening the two runs (show_run, before the timer starts): {show_ms:.0f} ms")
    p99, worst = stall_line(gaps)
    print(f"{args.points:,}-point curve: redraw (zoom + repaint) {zoom_ms:.1f} ms (target < {TARGET_REDRAW_MS:g} ms); "
          f"new data (set_series + repaint) {full_ms:.1f} ms")
    record("gui", f"gui: p99 stall: {p99:.1f} ms, max stall: {worst:.1f} ms, 1M-point redraw: {zoom_ms:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
