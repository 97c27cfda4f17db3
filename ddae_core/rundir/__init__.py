"""The run-directory contract shared by the engine, the job system, db and the app (torch- and Qt-free).

docs/run-directory.md describes the workspace and the run directory for people; this package is what
the code reads: the file names (layout), the statuses, job kinds, artifact kinds and event types
(vocab), what a device or queue field may hold (values), the one atomic write (atomic), the one reader of
files that grow by lines (jsonl), the workspace's one-holder locks (locks), the workspace and its runs:
resolving, creating and finding them (runs), what the index reads of a run folder (files), and the
errors a user can fix (errors). db imports this and nothing else of ddae_core; the engine and the job
system find, create and read runs through it.
"""

from .atomic import atomic_write, atomic_write_bytes, atomic_write_text, fsync_dir, remove_dead_temps
from .errors import RunDirError, UserError
from .files import RunFiles, json_safe, read_json_dict, read_meta, read_run, read_spec, write_meta
from .jsonl import NewLines, complete_lines, ends_torn, read_new_lines
from .layout import (
    CHECKPOINT_RE,
    CHECKPOINTS_DIR,
    CLUSTER_FILE,
    DAMAGED_SUFFIX,
    DATA_DIR,
    DB_NAME,
    EVENTS,
    FID_RESULTS,
    FIGURES_DIR,
    FINETUNE_RESULTS,
    GRID,
    INGEST_LOCK,
    KNN_GRID,
    LOG,
    META,
    META_LOCK,
    NOISY_HEAD,
    NOISY_RESULTS,
    PROBE_HEADS,
    RUNS_DIR,
    SAMPLES_DIR,
    SAMPLES_KEY,
    SCHEDULER_LOCK,
    SLURM,
    SLURM_DIR,
    SPEC,
    STOP,
    SWEEP_TAG_PREFIX,
    checkpoint_name,
    run_dir,
    sample_name,
)
from .locks import LockTimeout, ProcessLock, lock_holder, lock_role, waiting_lock
from .runs import (
    checkpoint_path,
    create_run,
    find_run,
    list_checkpoints,
    new_run_id,
    resolve_checkpoint,
    resolve_workspace,
)
from .values import DEVICE_REQUESTS, MAX_GPUS, PRIORITY_LIMIT, check_gpus, check_priority
from .vocab import ACTIVE_STATUSES, DDP_KINDS, FINAL_STATUSES, MODEL_KINDS, ArtifactKind, EventType, JobKind, RunStatus

__all__ = [
    "ACTIVE_STATUSES", "CHECKPOINTS_DIR", "CHECKPOINT_RE", "CLUSTER_FILE", "DAMAGED_SUFFIX", "DATA_DIR", "DB_NAME",
    "DDP_KINDS",
    "EVENTS", "FID_RESULTS", "FIGURES_DIR", "FINAL_STATUSES", "FINETUNE_RESULTS", "GRID", "INGEST_LOCK", "LOG",
    "KNN_GRID",
    "LockTimeout", "META", "META_LOCK",
    "MODEL_KINDS", "NOISY_HEAD", "NOISY_RESULTS", "PROBE_HEADS", "RUNS_DIR", "SAMPLES_DIR", "SAMPLES_KEY",
    "SCHEDULER_LOCK", "SLURM", "SLURM_DIR", "SPEC", "STOP", "SWEEP_TAG_PREFIX", "ArtifactKind", "EventType", "JobKind",
    "NewLines",
    "ProcessLock", "RunStatus", "atomic_write", "atomic_write_bytes", "atomic_write_text", "checkpoint_name",
    "complete_lines", "ends_torn", "fsync_dir", "lock_holder", "read_new_lines", "run_dir", "sample_name",
    "lock_role", "remove_dead_temps", "waiting_lock",
    # runs, files, values, errors
    "DEVICE_REQUESTS", "MAX_GPUS", "PRIORITY_LIMIT", "RunDirError", "RunFiles", "UserError", "check_gpus",
    "check_priority", "checkpoint_path", "create_run", "find_run", "json_safe", "list_checkpoints", "new_run_id",
    "read_json_dict", "read_meta", "read_run", "read_spec", "resolve_checkpoint", "resolve_workspace", "write_meta",
]
