"""Job specs (validated before any work) and the one way every job runs: `execute(run_dir)`.

The CLI, the GUI's launch forms and the worker process all go through here, so a bad value is
refused with the same sentence everywhere and a job behaves the same in the foreground or queued.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from ..engine import data as datasets
from ..engine.config import load_config, parse_hyperparameters, parse_model_config, studio_block
from ..engine.cpu_threads import apply_threads, job_threads
from ..engine.distributed import DistContext
from ..engine.errors import ConfigError, UserError
from ..engine.evaluation.alignment import align_run
from ..engine.evaluation.dit_probe import dit_probe_run
from ..engine.evaluation.fid import fid_run
from ..engine.evaluation.finetune import finetune_run
from ..engine.evaluation.importing import import_run
from ..engine.evaluation.noisy import noisy_run
from ..engine.evaluation.probe_job import probe_run
from ..engine.evaluation.sampling import sample_run
from ..engine.evaluation.segmentation import segmentation_run
from ..engine.evaluation.similarity import similarity_run
from ..engine.nets.unet import tap_names
from ..engine.reporting import Reporter
from ..engine.spec.fields import (
    MAX_COUNT,
    MAX_SEED,
    check_device,
    check_seed,
    parse_options,
    positive_number,
    spec_options,
    whole_in,
)
from ..engine.spec.options import MODELS
from ..engine.spec.run_spec import TrainSpec, load_spec, with_preset
from ..engine.training import train_run
from ..rundir import JobKind, RunStatus
from .submit import create_job  # its home is the one door (submit.py); kept here for callers of the old name
from .worklog import job_logging

__all__ = ["MAX_COUNT", "MAX_SEED", "check_device", "check_seed", "create_job", "execute", "train_spec"]


def _probe(spec, run_dir, reporter, workspace) -> str:
    """A probe grid: the latent-cache grid for protocol dit-official, the image grid for the others."""
    runner = dit_probe_run if spec.options.protocol == "dit-official" else probe_run
    return runner(spec, run_dir, reporter, workspace)


# kind -> its runner(spec, run_dir, reporter, workspace) -> status. Imported with this module: they add 0.12 s to
# the 3 s of torch it imports anyway (measured with `python -c "import ddae_core.jobs.specs"`).
RUNNERS: dict[str, Callable[..., str]] = {
    "train": train_run, "probe": _probe, "align-uniform": align_run, "noisy-classifier": noisy_run,
    "finetune": finetune_run, "sample": sample_run, "import": import_run, "fid": fid_run,
    "similarity": similarity_run, "segmentation": segmentation_run,
}


def _positive_int(field: str, value, allow_none: bool = True, minimum: int = 1,
                  maximum: int = MAX_COUNT) -> int | None:
    """A whole number from minimum to maximum (None passes where allowed); ConfigError naming `field`."""
    if value is None and allow_none:
        return None
    return whole_in(field, value, minimum, maximum)


def _positive_float(field: str, value) -> float | None:
    return None if value is None else positive_number(field, value)


def train_spec(*, config: str | Path | dict, **values) -> dict:
    """A validated train job spec; raises ConfigError/UserError naming the bad field.

    `values` are TrainOptions' fields (options.py); any other keyword is a `studio:` key of the config.
    `minutes` is a time budget: training ends at the step the remaining time allows (and a linear
    lr decay ends at that step), or at `steps`/`epochs` if that comes first.
    """
    model = MODELS["train"]
    studio_overrides = {k: values.pop(k) for k in list(values) if k not in model.model_fields}
    cfg = load_config(config)
    studio = studio_block(cfg)
    opts = parse_options(model, values)
    studio_overrides.update(checkpoint_every_steps=opts.checkpoint_every_steps,
                            sample_every_steps=opts.sample_every_steps)
    if any(v is not None for v in studio_overrides.values()):
        studio.update({k: v for k, v in studio_overrides.items() if v is not None})
        cfg["studio"] = studio
    model_cfg = parse_model_config(cfg)
    if model_cfg.framework == "dit":
        raise ConfigError("config", "Studio does not pre-train DiT; import a trained one (ddae import --format dit)")
    train = parse_hyperparameters(cfg)
    if opts.steps is not None and opts.epochs is not None:
        raise ConfigError("steps", "give either steps or epochs, not both")
    data = opts.data or train.dataset
    try:
        datasets.check_data_spec(data)
    except UserError as exc:
        raise ConfigError("data", str(exc)) from None
    bad = [layer for layer in opts.monitor_layers or [] if layer not in tap_names(model_cfg.network)]
    if bad:
        raise ConfigError("monitor_layers", f"{', '.join(bad)} is not a layer of this network")
    # The form's values, and the config's hyper-parameters (the preset's) where they are blank.
    options = with_preset(cfg, {**spec_options(opts), "monitor_layers": list(opts.monitor_layers or [])})
    if opts.minutes is not None:
        options["time_limit_s"] = opts.minutes * 60
    return {
        "kind": JobKind.TRAIN,
        "name": opts.name,
        "data": data,
        "device": {"request": opts.device, "gpus": opts.gpus},
        "config": cfg,
        "options": options,
    }




def execute(run_dir: Path, workspace: Path, echo: Callable[[dict], None] | None = None,
            handle_signals: bool = True) -> str:
    """Run the job in `run_dir` to a final status (done, failed or cancelled), reporting into events.jsonl."""
    run_dir = Path(run_dir)
    dist = DistContext.from_env()
    reporter = Reporter(run_dir, echo=echo, enabled=dist.is_main)
    if handle_signals:
        reporter.install_signal_handlers()
    for name in ("ddae_core.engine", "ddae_core.jobs.sweep"):
        job_logging(name)                # the job's lines reach stdout also when it runs in-process
    try:
        spec = load_spec(run_dir)
        apply_threads(job_threads(spec.raw()))     # before the job's first op: jobs sharing the CPU split it
        if isinstance(spec, TrainSpec) and spec.options.sweep and dist.is_main:
            from .sweep import checkpoint_hook  # FID and probe jobs queued for each new checkpoint

            hooks = [checkpoint_hook(run_dir, spec.options.sweep)]
            return RUNNERS["train"](spec, run_dir, reporter, workspace, hooks)
        return RUNNERS[spec.kind](spec, run_dir, reporter, workspace)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        reporter.status(RunStatus.FAILED, error=str(exc))
        return RunStatus.FAILED
    except Exception as exc:  # noqa: BLE001 - the log keeps the traceback, the status one sentence
        traceback.print_exc()
        reporter.status(RunStatus.FAILED, error=f"{exc.__class__.__name__}: {exc}".strip()[:500])
        return RunStatus.FAILED
    finally:
        reporter.close()
        sys.stdout.flush()
