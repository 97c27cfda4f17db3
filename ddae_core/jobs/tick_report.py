"""What one scheduler tick did, for the console (`ddae queue serve`) and the GUI's status line."""

from __future__ import annotations

from dataclasses import dataclass, field

from db import IngestStats


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one tick did; empty tuples when nothing happened."""

    started: tuple[tuple[str, str], ...] = ()       # (run id, slots, e.g. 'cpu0' or 'gpu0,gpu1')
    finished: tuple[tuple[str, str], ...] = ()      # (run id, status) of workers that exited
    interrupted: tuple[str, ...] = ()               # running runs whose process was gone
    killed: tuple[str, ...] = ()                    # cancelled runs killed after the timeout
    refused: tuple[tuple[str, str], ...] = ()       # (run id, sentence): jobs that can never run here, failed
    waiting: tuple[tuple[str, str], ...] = ()       # (run id, reason) of queued jobs held back
    ingest: IngestStats | None = None               # None when another process holds the ingest lock
    errors: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """One line per start, finish, interruption, kill and refusal, for a console."""
        out = [f"started {run} on {slots}" for run, slots in self.started]
        out += [f"finished {run}: {status}" for run, status in self.finished]
        out += [f"interrupted {run}: its process is gone; `ddae queue resume {run}` continues it"
                for run in self.interrupted]
        out += [f"killed {run}: it did not stop in time after the cancel request" for run in self.killed]
        out += [f"failed {run}: {sentence}" for run, sentence in self.refused]
        out += [f"warning: {error}" for error in self.errors]
        return out


@dataclass
class TickBuilder:
    """A TickReport being filled in during a tick."""

    started: list = field(default_factory=list)
    finished: list = field(default_factory=list)
    interrupted: list = field(default_factory=list)
    killed: list = field(default_factory=list)
    refused: list = field(default_factory=list)
    waiting: list = field(default_factory=list)
    ingest: IngestStats | None = None
    errors: list = field(default_factory=list)

    def add(self, stats: IngestStats) -> None:
        if self.ingest is None:
            self.ingest = stats
        else:
            self.ingest = IngestStats(**{name: getattr(self.ingest, name) + getattr(stats, name)
                                         for name in IngestStats.__dataclass_fields__})

    def build(self) -> TickReport:
        return TickReport(tuple(self.started), tuple(self.finished), tuple(self.interrupted), tuple(self.killed),
                          tuple(self.refused), tuple(self.waiting), self.ingest, tuple(self.errors))
