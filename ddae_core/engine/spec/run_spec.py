"""The run spec a runner receives: spec.yaml validated into one typed model per job kind.

spec.yaml is written once by `runs.create_run` from a spec function's dict (jobs/specs.py,
jobs/eval_specs.py); `load_spec` reads it back as `TrainSpec`, `ProbeSpec`, ... whose `options`
is the kind's model, so that the engine reads `spec.options.lr`, never a key with a default of its
own. A default lives once: on the kind's options model (options.py), in the preset (`config.
parse_hyperparameters`, merged by `with_preset`) or, for the keys only the engine reads, here.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from ...rundir import JobKind, read_spec
from ..config import LR_DECAYS, parse_hyperparameters
from ..errors import ConfigError, UserError
from .fields import Flag, OneOf, Passed, Positive, Whole
from .options import (
    AlignOptions,
    FidOptions,
    FinetuneOptions,
    NoisyOptions,
    ProbeOptions,
    SampleOptions,
    SegmentationOptions,
    SimilarityOptions,
    TrainOptions,
)

Steps = Annotated[int, Whole()]
Rate = Annotated[float, Positive()]
Switch = Annotated[bool, Flag()]


class TrainSettings(TrainOptions):
    """A train run's `options`: the train form's fields (TrainOptions: a field added there is one here too)
    over the preset's hyper-parameters (config.Hyperparameters, filled in by `with_preset`), and the
    engine's own keys, set by the CLI (`--init-from`, `--sweep-...`) or by hand.

    The form's fields placed elsewhere (spec=False: name, device, data, minutes, gpus) are read from the
    run spec (TrainSpec), not here."""

    # Without a default here: the form's value, else the preset's (with_preset).
    steps: Annotated[int | None, Whole()]        # overrides epochs when given
    epochs: Steps
    batch_size: Steps
    lr: float                      # checked by the form's field; a hand-written spec keeps its own
    warmup_steps: Annotated[int | None, Whole(0)]   # None: the official per-epoch warm-up
    warm_epoch: Annotated[int, Whole(0)]
    lr_decay: Annotated[str, OneOf(LR_DECAYS)]
    ema_decay: float
    ema_warmup: Switch
    flip: Switch
    grad_clip: Rate
    checkpoint_every_steps: Steps
    sample_every_steps: Steps
    sample_steps: Annotated[int | None, Whole()]
    n_sample: Steps
    log_every_steps: Steps
    amp: Annotated[str, Passed()]
    monitor_layers: list[str] = []
    time_limit_s: Annotated[float | None, Positive()] = None      # the form's `minutes`
    # The engine's own: not on the form.
    init_from: Switch = False          # warm start from the parent's checkpoint
    sweep: dict | None = None          # FID and probe jobs per new checkpoint (jobs.sweep)
    monitor_images: Steps = 512
    monitor_timestep: Annotated[int | None, Whole(0)] = None     # None: the config's feature timestep
    channels_last: Annotated[bool | None, Flag()] = None          # None: on CUDA
    compile: Switch = False


class ImportOptions(BaseModel):
    """An import run's `options`: where the weights came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    format: str = "official"
    sha256: str | None = None
    licence: Any = None


class Parent(BaseModel):
    model_config = ConfigDict(frozen=True)

    run: str
    checkpoint: str | int = "latest"


class DeviceRequest(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    request: str = "auto"
    gpus: int = 1
    threads: int | None = None        # CPU threads (cpu_threads.job_threads); None: DDAE_CPU_THREADS or torch's


class RunSpec(BaseModel):
    """What every run's spec.yaml holds; the keys the store adds (created, host, queue, ...) pass through."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = ""
    kind: str
    name: str | None = None
    data: str | None = None          # a data spec (data.stored_spec); an evaluation without one reads its parent's
    parent: Parent | None = None
    device: DeviceRequest = DeviceRequest()
    config: dict | None = None
    options: Any = None

    def raw(self) -> dict:
        """The spec as the dict spec.yaml holds (for the readers that take one: sweeps, the store)."""
        return self.model_dump(mode="json", exclude_none=False)


class TrainSpec(RunSpec):
    kind: Literal["train"]
    config: dict
    options: TrainSettings

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, values: Any) -> Any:
        if not isinstance(values, dict) or not isinstance(values.get("config"), dict):
            return values
        return {**values, "options": with_preset(values["config"], values.get("options") or {})}


def with_preset(config: dict, options: dict) -> dict:
    """`options` with the config's hyper-parameters (config.Hyperparameters) where they are blank: the
    preset's steps only where neither steps nor epochs are given."""
    preset = asdict(parse_hyperparameters(config))
    filled = {k: v for k, v in preset.items() if k in TrainSettings.model_fields and options.get(k) is None}
    if options.get("epochs") is not None:
        filled.pop("steps", None)
    return {**options, **filled}


class ImportSpec(RunSpec):
    kind: Literal["import"]
    config: dict
    options: ImportOptions


class ProbeSpec(RunSpec):
    kind: Literal["probe"]
    options: ProbeOptions


class AlignSpec(RunSpec):
    kind: Literal["align-uniform"]
    options: AlignOptions


class NoisySpec(RunSpec):
    kind: Literal["noisy-classifier"]
    options: NoisyOptions


class FinetuneSpec(RunSpec):
    kind: Literal["finetune"]
    options: FinetuneOptions


class SampleSpec(RunSpec):
    kind: Literal["sample"]
    options: SampleOptions


class FidSpec(RunSpec):
    kind: Literal["fid"]
    options: FidOptions


class SimilaritySettings(SimilarityOptions):
    """A similarity run's options: the form's, with what similarity_spec resolved (the timestep, the layers,
    the second run's id) and A's best probe cell (None when A has no grid)."""

    timestep: Annotated[int, Whole()]
    layers: list[str]
    best_cell: dict | None = None


class SimilaritySpec(RunSpec):
    kind: Literal["similarity"]
    options: SimilaritySettings


class SegmentationSettings(SegmentationOptions):
    """A segmentation run's options, its axes resolved by segmentation_spec."""

    timesteps: list[int]
    layers: list[str]


class SegmentationSpec(RunSpec):
    kind: Literal["segmentation"]
    options: SegmentationSettings


SPECS: dict[str, type[RunSpec]] = {
    JobKind.TRAIN: TrainSpec, "probe": ProbeSpec, "align-uniform": AlignSpec, "noisy-classifier": NoisySpec,
    "finetune": FinetuneSpec, "sample": SampleSpec, "fid": FidSpec, JobKind.IMPORT: ImportSpec,
    JobKind.SIMILARITY: SimilaritySpec, JobKind.SEGMENTATION: SegmentationSpec,
}


def parse_spec(raw: dict) -> RunSpec:
    """`raw` (a spec.yaml's mapping) as its kind's typed spec; UserError in one sentence when it does not fit."""
    model = SPECS.get(str(raw.get("kind")))
    if model is None:
        raise UserError(f"Run kind {raw.get('kind')!r} cannot be executed by this version of DDAE Studio.")
    try:
        return model.model_validate(raw)
    except ConfigError as exc:
        raise ConfigError(f"options.{exc.field}", str(exc).partition(": ")[2]) from None
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise UserError(f"spec.yaml of run {raw.get('id') or '?'}: {where} {error['msg'].lower()}; the run's spec "
                        "does not fit this version of DDAE Studio.") from None


def load_spec(run_dir: Path) -> RunSpec:
    """The run's spec.yaml, typed by its kind."""
    return parse_spec(read_spec(run_dir))
