"""Launch's feed: queue a validated spec (create its folder, index it, queue it) and the run names taken, Qt-free."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from db import RunSummary, Store
from ddae_core.jobs.cluster import check_placement, set_run_cluster
from ddae_core.jobs.queue_ops import queue_created
from ddae_core.jobs.specs import create_job


def run_named(store: Store, name: str | None, other_than: str | None = None) -> RunSummary | None:
    """The run (other than `other_than`) whose name is exactly `name`, or None."""
    name = (name or "").strip()
    if not name:
        return None
    return next((r for r in store.list_runs(search=name, limit=1000) if r.name == name and r.id != other_than),
                None)


def unique_name(store: Store, name: str) -> str:
    """`name`, or `name (2)`, `name (3)`, ... whichever no run has yet."""
    candidate, n = name, 1
    while run_named(store, candidate) is not None:
        n += 1
        candidate = f"{name} ({n})"
    return candidate


class Launcher:
    """Creates the run folder of a validated spec, indexes it and puts it in the queue (as `ddae --queue`)."""

    def __init__(self, store: Store, on_queued: Callable[[str], None] | None = None):
        self.store = store
        self.on_queued = on_queued

    def submit(self, spec: dict, priority: int = 0, cluster: str | None = None) -> str:
        """Queue `spec`; an automatic name another run already has gets a number, as in 'name (2)'.

        cluster: a profile of the workspace's cluster.yaml (Slurm), or None for this machine.
        """
        if spec.get("name"):
            spec = {**spec, "name": unique_name(self.store, spec["name"])}
        gpus = int(spec["device"].get("gpus") or 0)
        if cluster is not None:
            check_placement(self.store.workspace, cluster)      # the profile may have gone since the form listed it
        run_dir = create_job(self.store.workspace, spec, queue={"priority": priority, "gpus": gpus})
        try:
            if cluster is not None:
                set_run_cluster(run_dir, cluster)
            queue_created(self.store, run_dir, priority=priority, gpus=gpus, device_request=spec["device"]["request"])
        except Exception:
            # Only the folder made a moment ago goes; nothing stored before is touched.
            try:
                self.store.delete_run(run_dir.name)
            except LookupError:
                pass
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        if self.on_queued:
            self.on_queued(run_dir.name)
        return run_dir.name

    # What the forms read of the workspace.
    @property
    def workspace(self) -> Path:
        return self.store.workspace

    def run_dir(self, run_id: str) -> Path:
        return self.store.run_dir(run_id)

    def run_named(self, name: str | None) -> RunSummary | None:
        return run_named(self.store, name)

    def unique_name(self, name: str) -> str:
        return unique_name(self.store, name)
