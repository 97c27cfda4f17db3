"""Jobs run as the queue runs them, for the benchmarks: queue train specs, serve them on chosen slots, read rates.

The jobs go through the project's own Scheduler, so each worker starts exactly as `ddae queue serve`
starts it (its own process, CUDA_VISIBLE_DEVICES, the CPU thread budget). Rates are read from the
runs' own `loss/train` events (time, step), over a window in which every job of a group trains.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from db import Store
from ddae_core.jobs import queue_ops
from ddae_core.jobs.scheduler import Scheduler
from ddae_core.jobs.submit import submit

FINAL = ("done", "failed", "cancelled", "interrupted")


def queue_spec(store: Store, spec: dict, priority: int = 0) -> str:
    """Queue the spec through the one door, as `ddae train ... --queue` does (a taken name numbered); its run id."""
    return submit(store.workspace, spec, priority, name_chosen=False, store=store)


def serve(store: Store, runs: list[str], *, cpu_slots: int = 0, gpus: list[int] | None = None,
          timeout_s: float = 600.0, kill_timeout_s: float = 10.0) -> Scheduler:
    """Run the scheduler until every run in `runs` has ended, at most timeout_s.

    Past the timeout the runs still going are cancelled (and killed kill_timeout_s later), so a
    benchmark never leaves a worker behind. Returns the scheduler, already closed, for its cpu_threads.
    """
    scheduler = Scheduler(store.workspace, store, cpu_slots=cpu_slots, gpus=list(gpus or []),
                          kill_timeout_s=kill_timeout_s)
    scheduler.require()
    deadline = time.monotonic() + timeout_s

    def pending() -> list[str]:
        return [run for run in runs if store.get_run(run).status not in FINAL]

    try:
        while pending() and time.monotonic() < deadline:
            scheduler.tick()
            time.sleep(0.2)
    finally:
        left = pending()
        for run in left:
            queue_ops.cancel(store, store.workspace, run)
        end = time.monotonic() + kill_timeout_s + 20
        while pending() and time.monotonic() < end:
            scheduler.tick()
            time.sleep(0.2)
        scheduler.close()
    if left:
        print(f"  timed out after {timeout_s:.0f} s: cancelled {', '.join(left)}", flush=True)
    return scheduler


@dataclass
class TrainTrace:
    """A train run's progress as its events tell it: (time, step) of every loss/train point."""

    run: str
    device: str
    batch: int
    points: list[tuple[float, int]]

    @classmethod
    def read(cls, run_dir: Path) -> TrainTrace:
        from ddae_core.rundir import read_spec

        points, device = [], ""
        for line in (Path(run_dir) / "events.jsonl").read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("type") == "metric" and event.get("key") == "loss/train":
                points.append((float(event["time"]), int(event["step"])))
            elif event.get("type") == "status" and event.get("device"):
                device = event["device"]
        batch = int(read_spec(run_dir)["options"]["batch_size"])
        return cls(Path(run_dir).name, device, batch, points)

    @property
    def start(self) -> float | None:
        return self.points[0][0] if self.points else None

    @property
    def end(self) -> float | None:
        return self.points[-1][0] if self.points else None

    def warm_start(self, fraction: float = 0.15, min_s: float = 2.0) -> float | None:
        """The start of steady training: past the first `fraction` of the run (and min_s), the slow first steps."""
        if len(self.points) < 2:
            return None
        return self.start + max(min_s, fraction * (self.end - self.start))

    def images_per_s(self, t0: float, t1: float) -> float | None:
        """Images a second between the first and the last point inside [t0, t1]; None with fewer than 2."""
        inside = [(t, s) for t, s in self.points if t0 <= t <= t1]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return None
        (ta, sa), (tb, sb) = inside[0], inside[-1]
        return (sb - sa) * self.batch / (tb - ta)


def common_window(traces: list[TrainTrace]) -> tuple[float, float] | None:
    """The span in which every trace trains, past its warm-up; None when they never overlap."""
    starts = [t.warm_start() for t in traces]
    if any(s is None for s in starts):
        return None
    t0, t1 = max(starts), min(t.end for t in traces)
    return (t0, t1) if t1 > t0 else None


def group_rates(traces: list[TrainTrace]) -> tuple[list[float | None], float]:
    """Each trace's images/s over the common window, and the window's length in seconds (0 if none)."""
    window = common_window(traces)
    if window is None:
        return [None] * len(traces), 0.0
    return [t.images_per_s(*window) for t in traces], window[1] - window[0]
