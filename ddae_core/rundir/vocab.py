"""The words of the contract: run statuses, job kinds, artifact kinds and event types.

StrEnum members compare equal to their values ("done" == RunStatus.DONE), so they go into SQL columns,
JSON and YAML unchanged, and a value read back from any of them is found with `in`.
"""

from __future__ import annotations

from enum import StrEnum

import yaml


class RunStatus(StrEnum):
    """A run's lifecycle. Workers write running/done/failed/cancelled/interrupted; only the index says queued."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"     # a Slurm job stopped and requeued, or a `running` run whose process is gone


FINAL_STATUSES = (RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.INTERRUPTED)
ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


class JobKind(StrEnum):
    """What a run does; spec.yaml's `kind` and the middle of its run id."""

    TRAIN = "train"
    PROBE = "probe"
    ALIGN_UNIFORM = "align-uniform"
    FINETUNE = "finetune"
    NOISY_CLASSIFIER = "noisy-classifier"
    SAMPLE = "sample"
    IMPORT = "import"
    FID = "fid"
    SIMILARITY = "similarity"
    SEGMENTATION = "segmentation"


MODEL_KINDS = (JobKind.TRAIN, JobKind.IMPORT)   # runs that hold a trained model's checkpoints
DDP_KINDS = (JobKind.TRAIN,)                    # kinds whose runner trains data-parallel (torchrun, one rank a GPU)


class ArtifactKind(StrEnum):
    """What a listed file is (`artifact` events, and `image` events as `image`)."""

    CHECKPOINT = "checkpoint"
    IMAGE = "image"
    FIGURE = "figure"
    FILE = "file"


class EventType(StrEnum):
    """The `type` of an events.jsonl line; readers skip types they do not know."""

    STATUS = "status"
    METRIC = "metric"
    PROGRESS = "progress"
    IMAGE = "image"
    ARTIFACT = "artifact"
    GRID = "grid"
    GRID_CELL = "grid_cell"


def _represent_str_enum(dumper: yaml.BaseDumper, value: StrEnum) -> yaml.Node:
    return dumper.represent_str(str(value))


# PyYAML refuses enum members ("cannot represent an object"); a spec holding one is written as its plain string.
for _dumper in (yaml.SafeDumper, yaml.Dumper):
    _dumper.add_multi_representer(StrEnum, _represent_str_enum)
