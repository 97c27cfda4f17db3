"""Job specs (validated before any work) and the one way every job runs: `execute(run_dir)`.

The CLI, the GUI's launch forms and the worker process all go through here, so a bad value is
refused with the same sentence everywhere and a job behaves the same in the foreground or queued.
"""

from __future__ import annotations

import importlib
import math
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from ..engine import data as datasets
from ..engine.config import load_config, parse_model_config, parse_train_options, studio_block
from ..engine.cpu_threads import apply_threads, job_threads
from ..engine.distributed import DistContext
from ..engine.errors import ConfigError, UserError
from ..engine.nets.unet import tap_names
from ..engine.reporting import Reporter
from ..engine.runs import create_run, read_spec

# kind -> "module:function(run_dir, reporter, workspace) -> status"; imported when a job of that kind runs.
RUNNERS = {
    "train": "ddae_core.engine.training:train_run",
    "probe": "ddae_core.engine.evaluation.probe:probe_run",
    "align-uniform": "ddae_core.engine.evaluation.alignment:align_run",
    "noisy-classifier": "ddae_core.engine.evaluation.noisy:noisy_run",
    "finetune": "ddae_core.engine.evaluation.finetune:finetune_run",
    "sample": "ddae_core.engine.evaluation.sampling:sample_run",
    "import": "ddae_core.engine.evaluation.importing:import_run",
    "fid": "ddae_core.engine.evaluation.fid:fid_run",
}


# Counts (steps, epochs, images) beyond this are typos; it keeps every count an int64 in events and the index.
MAX_COUNT = 10**12
MAX_SEED = 2**32 - 1                # numpy's and the data sampler's seeds are 32-bit


def _positive_int(field: str, value, allow_none: bool = True, minimum: int = 1,
                  maximum: int = MAX_COUNT) -> int | None:
    if value is None and allow_none:
        return None
    try:
        number = _whole(value)
    except (TypeError, ValueError):
        raise ConfigError(field, f"must be a whole number (got {value!r})") from None
    if number < minimum:
        raise ConfigError(field, f"must be at least {minimum} (got {value!r})")
    if number > maximum:
        raise ConfigError(field, f"must be at most {maximum} (got {value!r})")
    return number


def _whole(value) -> int:
    """3, 3.0, "3" and "1e23" as ints; ValueError for 2.5, inf, nan or "x", TypeError for None or a list."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            value = float(value)    # "1e23" is a whole number, only a large one
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return int(value)


def _positive_float(field: str, value) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(field, f"must be a number (got {value!r})") from None
    if not math.isfinite(number):   # an inf learning rate trains to NaN weights without an error
        raise ConfigError(field, f"must be a finite number (got {value!r})")
    if not number > 0:
        raise ConfigError(field, f"must be greater than 0 (got {value!r})")
    return number


def check_seed(seed) -> int:
    """A random seed from 0 to MAX_SEED; ConfigError naming `seed` otherwise."""
    return _positive_int("seed", seed, allow_none=False, minimum=0, maximum=MAX_SEED)


def check_device(request: str | None) -> str:
    request = (request or "auto").lower()
    if request not in ("auto", "cpu", "cuda") and not request.startswith("cuda:"):
        raise ConfigError("device", f"must be auto, cpu or cuda (got {request!r})")
    return request


def train_spec(*, config: str | Path | dict, data: str | None = None, steps=None, epochs=None, batch_size=None,
               lr=None, device: str = "auto", name: str | None = None, seed: int = 0, gpus: int = 1,
               data_limit=None, monitor_layers: list[str] | None = None, minutes=None, **studio_overrides) -> dict:
    """A validated train job spec; raises ConfigError/UserError naming the bad field.

    `minutes` is a time budget: training ends at the step the remaining time allows (and a linear
    lr decay ends at that step), or at `steps`/`epochs` if that comes first.
    """
    cfg = load_config(config)
    studio = studio_block(cfg)
    if studio_overrides:
        studio.update({k: v for k, v in studio_overrides.items() if v is not None})
        cfg["studio"] = studio
    model_cfg = parse_model_config(cfg)
    train = parse_train_options(cfg)
    steps = _positive_int("steps", steps)
    epochs = _positive_int("epochs", epochs)
    if steps is not None and epochs is not None:
        raise ConfigError("steps", "give either steps or epochs, not both")
    data = data or train.dataset
    try:
        datasets.check_data_spec(data)
    except UserError as exc:
        raise ConfigError("data", str(exc)) from None
    if monitor_layers:
        bad = [layer for layer in monitor_layers if layer not in tap_names(model_cfg.network)]
        if bad:
            raise ConfigError("monitor_layers", f"{', '.join(bad)} is not a layer of this network")
    options = {
        "steps": steps if steps is not None else (None if epochs is not None else train.steps),
        "epochs": epochs or train.epochs,
        "batch_size": _positive_int("batch_size", batch_size) or train.batch_size,
        "lr": _positive_float("lr", lr) or train.lr,
        "warmup_steps": train.warmup_steps,
        "warm_epoch": train.warm_epoch,
        "lr_decay": train.lr_decay,
        "ema_decay": train.ema_decay,
        "ema_warmup": train.ema_warmup,
        "flip": train.flip,
        "grad_clip": train.grad_clip,
        "checkpoint_every_steps": train.checkpoint_every_steps,
        "sample_every_steps": train.sample_every_steps,
        "sample_steps": _positive_int("studio.sample_steps", studio.get("sample_steps")),
        "n_sample": train.n_sample,
        "log_every_steps": _positive_int("studio.log_every_steps", studio.get("log_every_steps", 10)),
        "seed": check_seed(seed),
        "amp": studio.get("amp", "auto"),
        "data_limit": _positive_int("data_limit", data_limit),
        "monitor_layers": list(monitor_layers or []),
    }
    minutes = _positive_float("minutes", minutes)
    if minutes is not None:
        options["time_limit_s"] = minutes * 60
    return {
        "kind": "train",
        "name": name,
        "data": data,
        "device": {"request": check_device(device), "gpus": _positive_int("gpus", gpus) if gpus else 0},
        "config": cfg,
        "options": options,
    }


# The splits of its data each kind reads; an evaluation without data of its own reads its parent's.
SPLITS_READ = {"train": ("train",), "align-uniform": ("train",), "probe": ("train", "test"),
               "noisy-classifier": ("train", "test"), "finetune": ("train", "test"), "fid": ("train",)}


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
    if spec["kind"] == "import":
        from ..engine.evaluation.importing import load_import

        load_import(Path(spec["options"]["source"]), spec["config"])


def create_job(workspace: Path, spec: dict, queue: dict | None = None) -> Path:
    """Write the run directory for a validated spec (check_inputs first); `queue` ({priority, gpus}) marks
    it as enqueued."""
    check_inputs(spec)
    return create_run(workspace, spec["kind"], name=spec.get("name"), data=spec.get("data"),
                      parent=spec.get("parent"), device=spec.get("device"), queue=queue,
                      config=spec.get("config"), options=spec.get("options"))


def _runner(kind: str) -> Callable:
    target = RUNNERS.get(kind)
    if target is None:
        raise UserError(f"Run kind {kind!r} cannot be executed by this version of DDAE Studio.")
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)


def execute(run_dir: Path, workspace: Path, echo: Callable[[dict], None] | None = None,
            handle_signals: bool = True) -> str:
    """Run the job in `run_dir` to a final status (done, failed or cancelled), reporting into events.jsonl."""
    run_dir = Path(run_dir)
    dist = DistContext.from_env()
    reporter = Reporter(run_dir, echo=echo, enabled=dist.is_main)
    if handle_signals:
        reporter.install_signal_handlers()
    try:
        spec = read_spec(run_dir)
        apply_threads(job_threads(spec))     # before the job's first op: jobs sharing the CPU split it
        if spec["kind"] == "train" and (spec.get("options") or {}).get("sweep") and dist.is_main:
            from .sweep import checkpoint_hook     # FID and probe jobs queued for each new checkpoint

            return _runner("train")(run_dir, reporter, workspace, [checkpoint_hook(run_dir, spec["options"]["sweep"])])
        return _runner(spec["kind"])(run_dir, reporter, workspace)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        reporter.status("failed", error=str(exc))
        return "failed"
    except Exception as exc:  # noqa: BLE001 - the log keeps the traceback, the status one sentence
        traceback.print_exc()
        reporter.status("failed", error=f"{exc.__class__.__name__}: {exc}".strip()[:500])
        return "failed"
    finally:
        reporter.close()
        sys.stdout.flush()
