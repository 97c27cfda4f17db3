"""Time left of a running job's current stage: one estimate, shown the same in Queue and the Run header.

The rate is an exponential moving average of the progress seen (units per second of wall time, with a
half-life in seconds), measured between reports this app has seen and updated only when the count
moves: a job that reports in bursts is not read as stalled between them, and the time before its first
step (data loading, building the network) never counts as slow progress, which made an estimate taken
since the job's start fall from 31:22 to 3:00 within minutes. Between reports the time left counts
down with the clock. Both views feed one
RemainingTime, so they agree. No Qt here: the estimate is tested on plain numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from ddae_core.rundir.figures import clock as clock  # re-exported: the app's modules import it from here

HALF_LIFE_S = 60.0      # how fast the rate follows a change of speed


def left_text(seconds: float | None) -> str:
    """`12:34 left` (a duration, never a time of day); '' when unknown."""
    return f"{clock(seconds)} left" if seconds is not None else ""


@dataclass
class _Track:
    stage: str | None
    total: int
    done: int
    at: float                   # wall time (s) when `done` was first seen
    rate: float | None          # smoothed units per second


class RemainingTime:
    """Seconds left of each running job's stage, from the progress it has been seen to make."""

    def __init__(self, half_life_s: float = HALF_LIFE_S):
        self.half_life_s = half_life_s
        self._tracks: dict[str, _Track] = {}

    def observe(self, run: str, stage: str | None, done: int | None, total: int | None, now: float) -> None:
        """The run's progress as read at `now` (wall-clock seconds)."""
        if not total or done is None:
            self._tracks.pop(run, None)
            return
        track = self._tracks.get(run)
        if track is None or track.stage != stage or track.total != total or done < track.done:
            self._tracks[run] = _Track(stage, total, done, now, None)
            return
        if done == track.done or now <= track.at:
            return
        dt = now - track.at
        rate = (done - track.done) / dt
        weight = 1.0 - 0.5 ** (dt / self.half_life_s)
        track.rate = rate if track.rate is None else track.rate + weight * (rate - track.rate)
        track.done, track.at = done, now

    def seconds_left(self, run: str, now: float) -> float | None:
        """Seconds left of the run's stage at `now`, or None before a rate is known."""
        track = self._tracks.get(run)
        if track is None or not track.rate or track.rate <= 0:
            return None
        return max(0.0, (track.total - track.done) / track.rate - (now - track.at))

    def forget(self, run: str) -> None:
        """The run ended: its estimate goes."""
        self._tracks.pop(run, None)
