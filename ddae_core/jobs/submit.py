"""The one door: a validated spec becomes a run folder and, through the workspace's index, a queued run.

The CLI (`--queue`), the app's Launch forms and first-run demo, `ddae sweep` and a training run's own
sweep all submit here, so the rules hold everywhere or nowhere: inputs that would fail the job at once are
refused before any folder exists (check_inputs); run names are unique in the index (db/names.py: a name
someone chose is refused when taken, a name the program made up is numbered); a folder whose queueing
fails is removed, and nothing stored before is touched.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine import data as datasets
from ..engine.errors import ConfigError, UserError
from ..rundir import DATA_DIR, JobKind, RunStatus, create_run, write_meta
from .cluster import check_placement, set_run_cluster

if TYPE_CHECKING:      # a worker writes run folders without loading the database layer
    from db import Store

__all__ = ["check_inputs", "create_job", "default_train_name", "name_run", "submit"]

# The splits of its data each kind reads; an evaluation without data of its own reads its parent's.
SPLITS_READ = {"train": ("train",), "align-uniform": ("train",), "probe": ("train", "test"),
               "noisy-classifier": ("train", "test"), "finetune": ("train", "test"), "fid": ("train",),
               "similarity": ("test",), "segmentation": ("train", "test")}


def default_train_name(preset: str | None, data: str) -> str:
    """The name of a train run nobody named: 'tiny-ddpm on builtin:shapes' ('config on ...' for a config file)."""
    return f"{preset or 'config'} on {data}"


def check_inputs(spec: dict) -> None:
    """Refuse what would fail the job in its first seconds (an empty data folder, a checkpoint that cannot
    be imported) before its run folder exists, so a refused input leaves no failed run behind."""
    data = spec.get("data")
    if isinstance(data, str):
        for split in SPLITS_READ.get(spec["kind"], ()):
            try:
                datasets.check_data_files(data, split)
            except UserError as exc:
                raise ConfigError("data", str(exc)) from None
    if spec["kind"] == JobKind.IMPORT:
        from ..engine.evaluation.importing import load_import

        load_import(Path(spec["options"]["source"]), spec["config"], spec["options"].get("format", "official"))


def create_job(workspace: Path, spec: dict, queue: dict | None = None) -> Path:
    """Write the run directory for a validated spec (check_inputs first); `queue` ({priority, gpus}) marks
    it as enqueued, and the index enqueues it when it registers it."""
    check_inputs(spec)
    data = spec.get("data")
    if isinstance(data, str):
        data = datasets.stored_spec(data, Path(workspace) / DATA_DIR)
    return create_run(workspace, spec["kind"], name=spec.get("name"), data=data,
                      parent=spec.get("parent"), device=spec.get("device"), queue=queue,
                      config=spec.get("config"), options=spec.get("options"))


def name_run(store: Store, spec: dict, name_chosen: bool) -> dict:
    """`spec` with the index's name rule applied: a chosen name another run has is refused (NameTaken, offering
    a free one); a name the program made up gets a number, as in 'name (2)'. No name: the run id, unique."""
    name = (spec.get("name") or "").strip()
    if not name:
        return spec
    if name_chosen:
        store.check_name(name)
        return {**spec, "name": name}
    return {**spec, "name": store.free_name(name)}


def submit(workspace: Path, spec: dict, priority: int = 0, gpus: int | None = None, cluster: str | None = None,
           *, name_chosen: bool = True, store: Store | None = None, tags: tuple[str, ...] = ()) -> str:
    """Queue a validated spec; returns the new run's id.

    gpus: how many it takes (the spec's device.gpus when None). cluster: a profile of the workspace's
    cluster.yaml (Slurm), or None for this machine. name_chosen: False for a name the program made up
    (numbered when taken) rather than refused. store: the workspace's open index; without one the folder
    is written with its queue block and the index enqueues it when its ingester registers it (a training
    worker's sweep on a cluster node, where SQLite must not be opened), and names are not checked.
    tags: the run's first tags (a grid sweep's `sweep:NAME`), in its meta.json before the index reads it.
    """
    workspace = Path(workspace)
    gpus = int(spec["device"].get("gpus") or 0) if gpus is None else int(gpus)
    spec = {**spec, "device": {**spec["device"], "gpus": gpus}}
    if cluster is not None:
        check_placement(workspace, cluster)      # the profile may have gone since it was chosen
    if store is not None:
        spec = name_run(store, spec, name_chosen)
    run_dir = create_job(workspace, spec, queue={"priority": priority, "gpus": gpus})
    try:
        if tags:
            write_meta(run_dir, {"tags": list(tags)})
        if cluster is not None:
            set_run_cluster(run_dir, cluster)        # before it is queued: the scheduler reads it at once
        if store is not None:
            queue_created(store, run_dir, priority=priority, gpus=gpus, device_request=spec["device"]["request"])
    except BaseException:
        withdraw(store, run_dir)
        raise
    return run_dir.name


def queue_created(store: Store, run_dir: Path, *, priority: int, gpus: int, device_request: str) -> None:
    """Index and enqueue a run create_job has just made. Its spec says it is queued, so a scheduler's
    ingester may index it first and even start it before this enqueue: then it already is where it
    should be, and the job must not be taken for a failed submission (and its folder removed)."""
    store.register_run(run_dir)
    try:
        store.enqueue(run_dir.name, priority=priority, gpus=gpus, device_request=device_request)
    except ValueError:
        if store.get_run(run_dir.name).status != RunStatus.RUNNING:
            raise


def withdraw(store: Store | None, run_dir: Path) -> None:
    """Remove a run folder made a moment ago, and its row if it has one; nothing stored before is touched."""
    if store is not None:
        try:
            store.delete_run(run_dir.name)
        except Exception:  # noqa: BLE001 - the index may be what failed; the folder goes either way
            pass
    shutil.rmtree(run_dir, ignore_errors=True)
