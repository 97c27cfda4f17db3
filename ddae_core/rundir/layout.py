"""Where things live in a workspace and a run directory: every file and folder name, spelled once.

docs/run-directory.md describes what each holds; this module is what the code reads.
"""

from __future__ import annotations

import re
from pathlib import Path

# The workspace.
DB_NAME = "studio.sqlite"
RUNS_DIR = "runs"
DATA_DIR = "data"
INGEST_LOCK = "ingest.lock"         # held by the one ingester of the workspace
SCHEDULER_LOCK = "scheduler.lock"   # held by the one scheduler of the workspace
META_LOCK = "meta.lock"             # held briefly to merge a meta.json, and by a reindex until its swap
CLUSTER_FILE = "cluster.yaml"       # Slurm cluster profiles, optional

# Every run directory.
SPEC = "spec.yaml"                  # the resolved job spec, written once
META = "meta.json"                  # user-editable metadata mirrored from the database
EVENTS = "events.jsonl"             # append-only event lines
LOG = "log.txt"                     # the worker's stdout and stderr
STOP = "STOP"                       # present = a stop was requested
SLURM = "slurm.json"                # a run placed on a cluster profile: its Slurm jobs
SLURM_DIR = "slurm"                 # submitit's pickles and logs
SWEEP_TAG_PREFIX = "sweep:"         # the tag of a grid sweep's runs, sweep:NAME (jobs.grid_sweep)
CHECKPOINTS_DIR = "checkpoints"
SAMPLES_DIR = "samples"
FIGURES_DIR = "figures"

# Outputs of one job kind.
GRID = "grid.json"                  # a probe's grid of accuracies
PROBE_HEADS = "heads.pt"            # a probe's trained linear heads
KNN_GRID = "knn_grid.json"          # a fast grid's k-NN cells, written as soon as its features are cached
NOISY_RESULTS = "noisy.json"        # a noisy classifier's accuracy per noise level
NOISY_HEAD = "noisy_head.pt"        # a noisy classifier's head
FINETUNE_RESULTS = "finetune.json"
FID_RESULTS = "fid.json"

SAMPLES_KEY = "samples"             # the `image` events' key of sample grids
CHECKPOINT_RE = re.compile(r"step_(\d+)\.pt$")
DAMAGED_SUFFIX = ".damaged"         # a checkpoint a resume could not load


def checkpoint_name(step: int) -> str:
    """checkpoints/step_000300.pt, relative to the run directory."""
    return f"{CHECKPOINTS_DIR}/step_{step:06d}.pt"


def sample_name(step: int) -> str:
    """samples/step_000300.png, relative to the run directory."""
    return f"{SAMPLES_DIR}/step_{step:06d}.png"


def run_dir(workspace: str | Path, run_id: str) -> Path:
    """<workspace>/runs/<run id>."""
    return Path(workspace) / RUNS_DIR / run_id
