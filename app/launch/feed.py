"""Launch's feed: queue a validated spec through the one door (ddae_core.jobs.submit), Qt-free."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from db import NameTaken, RunSummary, Store
from ddae_core.engine.spec.grid import Axis
from ddae_core.jobs.grid_sweep import default_sweep_name, submit_sweep, sweep_tag
from ddae_core.jobs.submit import submit

__all__ = ["Launcher", "NameTaken", "RunSummary"]


class Launcher:
    """Creates the run folder of a validated spec, indexes it and puts it in the queue (as `ddae --queue`)."""

    def __init__(self, store: Store, on_queued: Callable[[str], None] | None = None):
        self.store = store
        self.on_queued = on_queued

    def submit(self, spec: dict, priority: int = 0, cluster: str | None = None, name_chosen: bool = False) -> str:
        """Queue `spec` through the one door (ddae_core.jobs.submit); its run id.

        cluster: a profile of the workspace's cluster.yaml (Slurm), or None for this machine. name_chosen: the
        user typed the name (refused, NameTaken, when another run has it); else it is numbered, as 'name (2)'.
        """
        run_id = submit(self.store.workspace, spec, priority, cluster=cluster, name_chosen=name_chosen,
                        store=self.store)
        if self.on_queued:
            self.on_queued(run_id)
        return run_id

    def submit_sweep(self, specs: list[dict], name: str | None, axes: list[Axis], seeds: int | None,
                     priority: int = 0, cluster: str | None = None) -> tuple[str, list[str]]:
        """Queue a grid's specs as one sweep through the one door, as `ddae train --grid` does; (its tag, the run
        ids). name: the sweep's (None: the keys it varies and the time)."""
        name = name or default_sweep_name(axes, seeds)
        tag = sweep_tag(name)
        run_ids = submit_sweep(self.store.workspace, specs, name, priority, cluster=cluster, store=self.store)
        if self.on_queued:
            for run_id in run_ids:
                self.on_queued(run_id)
        return tag, run_ids

    # What the forms read of the workspace.
    @property
    def workspace(self) -> Path:
        return self.store.workspace

    def run_dir(self, run_id: str) -> Path:
        return self.store.run_dir(run_id)

