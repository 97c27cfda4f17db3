"""Training throughput: our trainer against a plain eager fp32 loop of the same model, in one run.

    python -m bench.train_throughput [--steps 6] [--batch 32] [--big-batch 8] [--no-compile]

Each speed-up is measured, not assumed: channels_last, torch.compile and bf16 autocast are timed
as variants of the plain loop, then the trainer (augmentation, clipping, EMA and all, with the
settings it picks for this device) is timed the same way. Prints images/s and the ratio to the
plain loop per model. Last line: `train: N img/s tiny, N img/s 35.7M, speedup Rx vs eager`
(R for tiny-ddpm, the model that trains on a CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ddae_core import build_model
from ddae_core.engine.config import load_config
from ddae_core.engine.device import amp_dtype_for, grad_scaler_for, resolve_device
from ddae_core.engine.reporting import Reporter
from ddae_core.engine.training import Trainer
from ddae_core.jobs.specs import create_job, train_spec


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_steps(step_fn, device: torch.device, batch: int, steps: int, max_seconds: float | None = None) -> float:
    """images/s (median step) of `steps` calls of step_fn(step) after two warm-up calls (compiles, caches).

    max_seconds: stop earlier once the timed steps add up to this (after at least 3 of them).
    """
    times = []
    for step in range(steps + 2):
        _sync(device)
        start = time.perf_counter()
        step_fn(step)
        _sync(device)
        if step >= 2:
            times.append(time.perf_counter() - start)
            if max_seconds is not None and len(times) >= 3 and sum(times) > max_seconds:
                break
    return batch / statistics.median(times)


def plain_loop(config: dict, device: torch.device, batch: int, steps: int, *, channels_last: bool = False,
               compile_: bool = False, amp: torch.dtype | None = None, max_seconds: float | None = None,
               compile_backend: str = "inductor") -> float:
    """images/s of forward + backward + Adam on random images; the first two steps are warm-up.

    compile_backend: torch.compile's backend (`eager` traces with dynamo but builds no kernels: the plumbing,
    in seconds, where a C++ or Triton build would take minutes).
    """
    torch.manual_seed(0)
    model = build_model(config).to(device)
    if channels_last:
        model.net.to(memory_format=torch.channels_last)
    net = torch.compile(model.net, backend=compile_backend) if compile_ else model.net
    opt = torch.optim.Adam(model.net.parameters(), lr=1e-4)
    images = torch.rand(batch, 3, 32, 32, device=device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
    scaler = grad_scaler_for(device, amp)  # fp16 (the CUDA default) trains with loss scaling, as the Trainer

    def step_fn(step: int) -> None:
        with autocast:
            loss = model.loss(images, net=net)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        opt.zero_grad(set_to_none=True)

    return timed_steps(step_fn, device, batch, steps, max_seconds)


def trainer_loop(config: dict, device: torch.device, batch: int, steps: int, max_seconds: float | None = None) -> float:
    """images/s of our Trainer's own step (data, augmentation, clipping, EMA) with its default settings."""
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        (ws / "runs").mkdir()
        spec = train_spec(config=config, data="builtin:shapes?n_train=512&n_test=64", steps=steps + 2,
                          batch_size=batch, device=device.type)
        run_dir = create_job(ws, spec)
        reporter = Reporter(run_dir)
        trainer = Trainer(run_dir, reporter, ws)
        try:
            return timed_steps(trainer.train_step, device, batch, steps, max_seconds)
        finally:
            reporter.close()


def measure(name: str, config: dict, device: torch.device, batch: int, steps: int,
            compile_: bool) -> tuple[float, float]:
    print(f"\n{name} (batch {batch}, {device}):", flush=True)
    base = plain_loop(config, device, batch, steps)
    print(f"  plain eager fp32        {base:8.1f} img/s  1.00x", flush=True)
    variants = [("channels_last", dict(channels_last=True))]
    amp = amp_dtype_for(device) if device.type == "cuda" else torch.bfloat16
    variants.append((f"autocast {str(amp).split('.')[-1]}", dict(amp=amp)))
    if compile_:
        variants.append(("torch.compile", dict(compile_=True)))
    for label, kwargs in variants:
        try:
            rate = plain_loop(config, device, batch, steps, **kwargs)
            print(f"  {label:<23} {rate:8.1f} img/s  {rate / base:.2f}x", flush=True)
        except Exception as exc:  # noqa: BLE001 - a variant this platform cannot run is reported, not fatal
            print(f"  {label:<23} unavailable ({exc.__class__.__name__})", flush=True)
    ours = trainer_loop(config, device, batch, steps)
    print(f"  DDAE Studio trainer     {ours:8.1f} img/s  {ours / base:.2f}x  (with data, clipping, EMA)", flush=True)
    return ours, ours / base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=32, help="tiny-ddpm batch")
    parser.add_argument("--big-batch", type=int, default=None, help="35.7M batch (default 8 on CPU, 128 on CUDA)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant (slow to build)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    tiny, tiny_ratio = measure("tiny-ddpm", load_config("tiny-ddpm"), device, args.batch, args.steps,
                               not args.no_compile)
    big_batch = args.big_batch or (128 if device.type == "cuda" else 8)
    big, _ = measure("35.7M UNet (ddpm-cifar10)", load_config("ddpm-cifar10"), device, big_batch,
                     max(2, args.steps // 2), not args.no_compile)
    print(f"\ntrain: {tiny:.1f} img/s tiny, {big:.1f} img/s 35.7M, speedup {tiny_ratio:.2f}x vs eager")


if __name__ == "__main__":
    main()
