"""Diffusion pre-training (ddae-spec 9.1): Adam, warm-up, clipping at 1.0, EMA, mixed precision on CUDA.

One run directory, resumable: a checkpoint holds model, EMA, optimizer, scaler, step and RNG states,
and a resumed run continues its curve from the saved step (points after it are re-reported with the
same steps, which the index treats as replacements, so there is no gap and no repeat).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from ..rundir import (
    CHECKPOINTS_DIR,
    SAMPLES_KEY,
    ArtifactKind,
    RunStatus,
    checkpoint_path,
    list_checkpoints,
    remove_dead_temps,
    resolve_checkpoint,
    sample_name,
)
from . import data as datasets
from .checkpoint import FORMAT, FORMAT_VERSION, atomic_torch_save, read_checkpoint
from .config import parse_model_config
from .device import amp_dtype_for, describe, grad_scaler_for, resolve_device
from .distributed import DistContext
from .ema import EMA
from .errors import CheckpointError, UserError
from .grids import save_grid
from .model import DDAEModel
from .reporting import Reporter
from .spec.run_spec import TrainSettings, TrainSpec

log = logging.getLogger(__name__)

# Called after each checkpoint with (step, EMA model): the label-free layer monitor hooks in here.
CheckpointHook = Callable[[int, DDAEModel], None]


# A time budget's schedule is fixed after this share of it (within these bounds), and a run this share (or at
# least these seconds) behind its budget stops early.
BUDGET_CALIBRATION, BUDGET_CALIBRATION_S = 0.05, (10.0, 120.0)
BUDGET_GRACE, BUDGET_GRACE_S = 0.10, 30.0


def budget_calibration_s(budget_s: float) -> float:
    """Seconds of a time budget spent measuring the step rate before the schedule is fixed."""
    low, high = BUDGET_CALIBRATION_S
    return min(max(BUDGET_CALIBRATION * budget_s, low), high, budget_s / 2)


class TrainingDiverged(UserError):
    """The loss or the weights became NaN or infinite; the run fails, its last good checkpoint kept."""


def lr_at(step: int, epoch: int, opts: TrainSettings, total_steps: int | None = None) -> float:
    """Warm-up: linear per step (`warmup_steps`, ours) or the official per-epoch step function.

    With `lr_decay: linear` the lr then falls linearly to 0 at `total_steps` (under a time budget,
    the step the budget is estimated to end at): a short run ends at a minimum, not mid-stride.
    """
    lr = opts.lr
    if opts.lr_decay == "linear" and total_steps:
        start = opts.warmup_steps or 0
        if step >= start:
            lr *= max(total_steps - step, 0) / max(total_steps - start, 1)
    if opts.warmup_steps:
        return lr * min((step + 1) / opts.warmup_steps, 1.0)
    if opts.warm_epoch:
        return lr * min((epoch + 1) / opts.warm_epoch, 1.0)
    return lr


class Trainer:
    def __init__(self, spec: TrainSpec, run_dir: Path, reporter: Reporter, workspace: Path,
                 hooks: list[CheckpointHook] | None = None):
        self.run_dir = Path(run_dir)
        self.reporter = reporter
        self.spec = spec
        self.opts = spec.options
        self.hooks = hooks or []
        self.dist = DistContext.from_env()
        self.device = resolve_device(spec.device.request)
        if self.dist.enabled and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", self.dist.local_rank)   # `auto` under torchrun: one GPU per rank
        self.dist.init(self.device)
        self.model_config = parse_model_config(spec.config)

        # Data.
        self.data = datasets.load_split(spec.data, "train", resolution=self.model_config.resolution,
                                        data_root=workspace / "data", seed=0, limit=self.opts.data_limit)
        per_rank = self.opts.batch_size
        self.sampler = datasets.BatchSampler(len(self.data), per_rank * self.dist.world_size, self.opts.seed)
        self.total_steps = self.opts.steps or self.opts.epochs * self.sampler.steps_per_epoch
        self.images = self.data.images.to(self.device) if self.device.type == "cuda" else self.data.images

        # Model, EMA, optimizer. The official scripts scale the lr by the number of GPUs.
        torch.manual_seed(self.opts.seed + self.dist.rank)
        self.model = DDAEModel(self.model_config).to(self.device)
        self.model.amp_dtype = amp_dtype_for(self.device, self.opts.amp)
        self.channels_last = self.device.type == "cuda" if self.opts.channels_last is None else self.opts.channels_last
        if self.channels_last:
            self.model.net.to(memory_format=torch.channels_last)
        self.ema = EMA(self.model, self.opts.ema_decay, warmup=self.opts.ema_warmup)
        self.lr_scale = self.dist.world_size
        self.optimizer = torch.optim.Adam(self.model.net.parameters(), lr=self.opts.lr * self.lr_scale)
        self.scaler = grad_scaler_for(self.device, self.model.amp_dtype)
        self.train_net = self.model.net
        if self.opts.compile:
            self.train_net = torch.compile(self.model.net)
        if self.dist.enabled:
            self.train_net = DistributedDataParallel(
                self.train_net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.step = 0
        self.schedule_steps: int | None = None     # under a time budget: the schedule's end, once fixed
        self.unchecked_losses: list[torch.Tensor] = []    # this rank's per-step losses since the last check
        if self.opts.monitor_layers and self.dist.is_main:
            self.hooks.append(self._layer_monitor())

    def _layer_monitor(self) -> CheckpointHook:
        """Alignment/uniformity of the chosen layers on a fixed, seeded subset of training images."""
        from .evaluation.alignment import make_monitor

        gen = torch.Generator().manual_seed(self.opts.seed)
        subset = torch.randperm(len(self.data), generator=gen)[: self.opts.monitor_images]
        timestep = self.opts.monitor_timestep or self.model_config.feature_timestep
        return make_monitor(self.reporter, self.data.images[subset], self.opts.monitor_layers, timestep,
                            seed=self.opts.seed)

    # The time budget.
    def follow_time_budget(self, budget_s: float, elapsed_s: float, first_step: int, step_limit: int) -> None:
        """Under `--minutes`: the schedule's last step is estimated once, then fixed.

        Until `budget_calibration_s` has passed, the end is estimated from the rate so far (the lr decay
        follows it); then it is fixed and reported as `schedule/total_steps`, so a stall of the machine later
        cannot cut the lr (re-estimating every step once cut it by 36% at one step), and `--steps N` trains the
        same schedule. A run that falls more than BUDGET_GRACE (or BUDGET_GRACE_S) behind its budget stops where
        it is.
        """
        if self.schedule_steps is None:
            rate = (self.step - first_step) / max(elapsed_s, 1e-9)
            self.total_steps = min(step_limit, max(self.step, self.step + int((budget_s - elapsed_s) * rate)))
            if elapsed_s >= budget_calibration_s(budget_s):
                self.schedule_steps = self.total_steps
                if self.dist.is_main:
                    self.reporter.report("schedule/total_steps", self.schedule_steps, self.step)
                log.info(f"time budget: the schedule ends at step {self.schedule_steps} (measured over "
                         f"{elapsed_s:.0f} s); `--steps {self.schedule_steps}` trains the same schedule")
        elif elapsed_s > budget_s + max(BUDGET_GRACE * budget_s, BUDGET_GRACE_S) and self.step < self.total_steps:
            log.info(f"time budget: {elapsed_s / 60:.1f} minutes of a {budget_s / 60:.1f}-minute budget have passed "
                     f"at step {self.step} of {self.total_steps}; stopping here, before the lr reaches its end")
            self.total_steps = self.step

    # Checkpoints.
    def restore(self) -> int | None:
        """Resume from the newest checkpoint that loads; None when there is none.

        A newer one that does not load (a torn or damaged file) is set aside as step_N.pt.damaged, with a
        line in the log, so that neither this run nor an evaluation of `latest` trips on it again. When
        none loads (a config that no longer fits them, say) nothing is set aside and the newest one's
        error stops the run.
        """
        if self.dist.is_main:           # the half-written checkpoint of a worker killed while saving
            remove_dead_temps(self.run_dir / CHECKPOINTS_DIR)
        damaged: list[tuple[Path, str]] = []
        for step, path in reversed(list_checkpoints(self.run_dir)):
            try:
                self._load_state(read_checkpoint(path, map_location=self.device))
            except (UserError, KeyError, TypeError, ValueError, RuntimeError) as exc:
                damaged.append((path, str(exc) if isinstance(exc, UserError) else f"{exc.__class__.__name__}"))
                continue
            for bad, why in damaged:
                log.info(f"checkpoint {bad.name} cannot be loaded ({why.rstrip('.')}); resuming from step {step} "
                      f"instead and keeping it as {bad.name}.damaged")
                if self.dist.is_main:
                    bad.replace(bad.with_name(bad.name + ".damaged"))
            return step
        if damaged:
            path, why = damaged[0]
            raise CheckpointError(f"Run {self.run_dir.name} cannot resume: no checkpoint of it loads (the newest, "
                                  f"{path.name}: {why.rstrip('.')}); move the checkpoints aside to train from the "
                                  "start.")
        return None

    def warm_start(self) -> int | None:
        """A run started `--init-from` another: that checkpoint's weights and EMA, a fresh optimizer and
        schedule from step 0 (the source's own warm-up and decay do not carry over). None without one."""
        parent = self.spec.parent
        if not self.opts.init_from or parent is None:
            return None
        source = self.run_dir.parent / parent.run
        step, path = resolve_checkpoint(source, parent.checkpoint)
        state = read_checkpoint(path, map_location=self.device)
        try:
            self.model.net.load_state_dict(state["model"])
            self.ema.load_state_dict(state["ema"], state["ema_updates"])
        except (KeyError, RuntimeError):
            raise CheckpointError(f"Checkpoint {path.name} of run {source.name} does not fit this network; "
                                  "start from a run with the same config.") from None
        return step

    def _load_state(self, state: dict) -> None:
        """Model, EMA, optimizer, scaler, RNG and step from one checkpoint's state."""
        self.model.net.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"], state["ema_updates"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        rng = state.get("rng") or {}
        if "torch" in rng:
            torch.set_rng_state(rng["torch"].cpu())
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"].cpu(), self.device)
        self.step = int(state["step"])
        if state.get("schedule_steps") and self.opts.time_limit_s:
            self.schedule_steps = self.total_steps = int(state["schedule_steps"])

    def save_checkpoint(self) -> Path | None:
        if not self.dist.is_main:
            return None
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        state = {
            "format": FORMAT, "version": FORMAT_VERSION, "config": self.spec.config,
            "step": self.step, "epoch": self.sampler.epoch_of(max(self.step - 1, 0)),
            "model": self.model.net.state_dict(), "ema": self.ema.state_dict(), "ema_updates": self.ema.updates,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None, "rng": rng,
            "schedule_steps": self.schedule_steps,
        }
        path = checkpoint_path(self.run_dir, self.step)
        try:
            atomic_torch_save(state, path)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise UserError(f"The disk is full while saving {path.name}; the previous checkpoint is intact, "
                                "so free some space and resume the run.") from None
            earlier = [s for s, _ in list_checkpoints(self.run_dir) if s != self.step]
            kept = f"the checkpoint of step {earlier[-1]} is intact" if earlier else "there is no earlier checkpoint"
            raise UserError(f"Could not write the checkpoint {path.name}: the disk is full or not writable "
                            f"({exc.strerror or exc}); {kept}, so make room or fix the folder's permissions and "
                            "resume the run.") from None
        self.reporter.sync()
        self.reporter.artifact(ArtifactKind.CHECKPOINT, path, step=self.step)
        for hook in self.hooks:
            hook(self.step, self.ema.model)
        return path

    def save_samples(self) -> None:
        if not self.dist.is_main:
            return
        gen = torch.Generator(device=self.device).manual_seed(self.opts.seed)
        images = self.ema.model.sample(self.opts.n_sample, steps=self.opts.sample_steps, generator=gen)
        path = save_grid(images, self.run_dir / sample_name(self.step))
        self.reporter.image(SAMPLES_KEY, self.step, path)

    # Divergence.
    def stop_if_diverged(self, weights: bool = True) -> None:
        """Fail the run at its first non-finite loss since the last check (and, with `weights`, non-finite
        weights: the last update can break them after a finite loss), before a checkpoint keeps them.

        Called at log and checkpoint steps only (reading the losses waits for the GPU); every rank calls
        it at the same steps so that all stop together. Raises TrainingDiverged, one sentence.
        """
        losses = torch.stack(self.unchecked_losses).float().cpu() if self.unchecked_losses else torch.zeros(0)
        first = self.step - len(losses) + 1            # the step of losses[0], as loss/train counts steps
        self.unchecked_losses = []
        bad = (~torch.isfinite(losses)).nonzero()
        where = f"the loss became {float(losses[int(bad[0])])} at step {first + int(bad[0])}" if len(bad) else None
        if where is None and weights and not bool(torch.stack(
                [torch.isfinite(p).all() for p in self.model.net.parameters()]).all()):
            where = f"the weights became non-finite by step {self.step}"
        if not self.dist.any_true(where is not None, self.device):
            return
        kept = list_checkpoints(self.run_dir)
        kept = f"its last good checkpoint (step {kept[-1][0]}) is kept" if kept else "no checkpoint had been saved"
        raise TrainingDiverged(f"Training diverged: {where or 'on another GPU'}, so the run stopped and {kept}; "
                               "lower the learning rate (--lr) or raise the warm-up and train again.")

    # The loop.
    def train_step(self, step: int) -> torch.Tensor:
        epoch = self.sampler.epoch_of(step)
        lr = lr_at(step, epoch, self.opts, self.total_steps) * self.lr_scale
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        index = self.sampler.batch(step)[self.dist.rank::self.dist.world_size]
        gen = torch.Generator(device=self.device).manual_seed(hash((self.opts.seed, step)) & 0x7FFFFFFF)
        batch = datasets.augment_batch(self.images[index.to(self.images.device)].to(self.device, non_blocking=True),
                                       flip=self.opts.flip, generator=gen)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        loss = self.model.loss(batch, net=self.train_net)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.net.parameters(), self.opts.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(self.model)
        return loss.detach()

    def run(self) -> str:
        resumed = self.restore()
        initialised = self.warm_start() if resumed is None else None
        r = self.reporter
        r.status(RunStatus.RUNNING, pid=os.getpid(), host=socket.gethostname(), device=describe(self.device),
                 **({"resumed_from": resumed} if resumed is not None else {}),
                 **({"initialised_from": initialised} if initialised is not None else {}))
        if self.data.note:
            log.info(f"data: {self.data.note}")
        log_every = self.opts.log_every_steps
        ckpt_every, sample_every = self.opts.checkpoint_every_steps, self.opts.sample_every_steps
        loss_sum, loss_n, busy, images_done = torch.zeros((), device=self.device), 0, 0.0, 0
        time_limit = self.opts.time_limit_s
        started_at, first_step, step_limit = time.monotonic(), self.step, self.total_steps
        r.progress(self.step, self.total_steps, "train")
        while self.step < self.total_steps:
            if self.dist.any_true(r.should_stop(), self.device):
                self.stop_if_diverged()
                self.save_checkpoint()
                r.status(RunStatus.CANCELLED)
                return RunStatus.CANCELLED
            started = time.perf_counter()
            loss = self.train_step(self.step)
            self.unchecked_losses.append(loss)
            loss_sum += loss
            loss_n += 1
            self.step += 1
            images_done += self.opts.batch_size * self.dist.world_size
            if self.device.type == "cuda" and self.step % log_every == 0:
                torch.cuda.synchronize(self.device)
            busy += time.perf_counter() - started
            if time_limit:
                self.follow_time_budget(time_limit, time.monotonic() - started_at, first_step, step_limit)

            ends = self.step == self.total_steps
            saves = self.step % ckpt_every == 0 or ends
            samples = self.step % sample_every == 0 or ends
            if self.step % log_every == 0 or saves or samples:
                self.stop_if_diverged(weights=saves or samples)   # no NaN checkpoint, no black sample grid
            if self.step % log_every == 0 or ends:
                mean_loss = float(loss_sum) / loss_n
                if self.dist.is_main:
                    r.report("loss/train", mean_loss, self.step)
                    r.report("lr", self.optimizer.param_groups[0]["lr"], self.step)
                    r.report("images_per_s", images_done / max(busy, 1e-9), self.step)
                    r.report("ema/decay", self.ema.current_decay(), self.step)
                    # Lets views put curves on an epoch axis without knowing the dataset size.
                    r.report("epoch", self.step / self.sampler.steps_per_epoch, self.step)
                    r.progress(self.step, self.total_steps, "train")
                loss_sum.zero_()
                loss_n, busy, images_done = 0, 0.0, 0
            if saves:
                self.save_checkpoint()
            if samples:
                self.save_samples()
        r.status(RunStatus.DONE)
        return RunStatus.DONE


def train_run(spec: TrainSpec, run_dir: Path, reporter: Reporter, workspace: Path,
              hooks: list[CheckpointHook] | None = None) -> str:
    """Train (or resume) the run in `run_dir` to its end or a stop request; returns the final status."""
    trainer = Trainer(spec, run_dir, reporter, workspace, hooks)
    try:
        status = trainer.run()
        trainer.dist.barrier()
        return status
    finally:
        trainer.dist.shutdown()
