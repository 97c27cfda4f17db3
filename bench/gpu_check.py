"""GPU check: the trainer, feature extraction, a fast probe grid and the queue on a CUDA machine, under 6 minutes.

    python -m bench.gpu_check [--workspace DIR] [--only train-tiny,queue,...]

Five stages, each in a process of its own with its own time limit (335 s in all):
  train-tiny   tiny-ddpm (batch 128), up to 300 steps per variant: eager fp32, fp16 + GradScaler, bf16,
               channels_last (fp16), and the project's Trainer with its defaults (bench.train_throughput)
  train-35.7M  the 35.7M UNet (ddpm-cifar10, batch 128), the same, up to 200 steps per variant
  compile      torch.compile (fp16) of both: build time and img/s
  features     the 35.7M UNet trained 30 steps: every tap at t=11 for 5000 images (the probes' own
               extraction), then a fast probe grid through the real job path (bench.probe_grid)
  queue        two queued 35.7M trainings through the project's scheduler on one GPU (one after the
               other), then on two GPUs (side by side) when there are two
Ratios are to eager fp32 of the same model, or to the one-GPU queue. A stage past its limit is
stopped and reported; the others still run. Without CUDA it says so in one sentence and exits 0.
Last line: `gpu check: trainer tiny N img/s, 35.7M N img/s; 35.7M fp16 Rx, bf16 Rx, channels_last Rx,
compile Rx; features N img/s; fast grid N s; queue on 2 GPUs Rx` (n/a for what did not run).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (stage, time limit in seconds): 335 s together, and a stage past its limit gets 3 s to leave before it
# is killed, so the whole check stays under 6 minutes.
STAGES = [("train-tiny", 40), ("train-35.7M", 70), ("compile", 65), ("features", 65), ("queue", 95)]
TINY, BIG = "tiny-ddpm", "ddpm-cifar10"
BATCH = 128                     # the official per-GPU batch, for both models
QUEUE_TRAIN_S = 10              # training time of each queued job
DATA = "builtin:shapes"
QUEUE_DATA = "builtin:shapes?n_train=2560&n_test=256"     # each queued worker generates it at its start
FEATURE_IMAGES, GRID_TEST = 5000, 1000     # images the features and the fast grid's heads train on; its test images
DEVICE = "cuda"                 # a smoke test of this script's plumbing sets "cpu" (and small sizes)


class Results(dict):
    """A stage's numbers, written to its JSON file at every change, so a stage stopped at its limit keeps
    what it had measured."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self))
        tmp.replace(self.path)


# Stages (each runs in its own process).
def stage_train(preset: str, steps: int, per_variant_s: float, results: Results, args) -> None:
    import torch

    from ddae_core.engine.config import load_config

    from .train_throughput import plain_loop, trainer_loop

    device = torch.device(DEVICE)
    cfg = load_config(preset)
    variants = [("eager fp32", {}), ("fp16 + GradScaler", {"amp": torch.float16}), ("bf16", {"amp": torch.bfloat16}),
                ("channels_last fp16", {"channels_last": True, "amp": torch.float16})]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{preset} on {where} (batch {BATCH}, up to {steps} steps or {per_variant_s:g} s per variant):", flush=True)
    for label, kwargs in variants:
        try:
            rate = plain_loop(cfg, device, BATCH, steps, max_seconds=per_variant_s, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a variant this GPU cannot run is reported, not fatal
            print(f"  {label:<22} unavailable ({exc.__class__.__name__}: {str(exc)[:120]})", flush=True)
            continue
        results[label] = rate
        print(f"  {label:<22} {rate:9.1f} img/s  {_ratio(rate, results.get('eager fp32'))}", flush=True)
    rate = trainer_loop(cfg, device, BATCH, steps, max_seconds=per_variant_s)
    results["trainer"] = rate
    print(f"  {'Trainer (defaults)':<22} {rate:9.1f} img/s  {_ratio(rate, results.get('eager fp32'))}  "
          "(with data, clipping, EMA)", flush=True)


def stage_compile(results: Results, args) -> None:
    import torch

    from ddae_core.engine.config import load_config

    from .train_throughput import plain_loop

    device = torch.device(DEVICE)
    for key, preset, steps in (("tiny", TINY, 200), ("35.7M", BIG, 100)):
        started = time.perf_counter()
        try:
            rate = plain_loop(load_config(preset), device, BATCH, steps, compile_=True, amp=torch.float16,
                              max_seconds=6)
        except Exception as exc:  # noqa: BLE001 - no compiler here is a result too
            print(f"{preset}: torch.compile unavailable ({exc.__class__.__name__}: {str(exc)[:160]})", flush=True)
            continue
        results[key] = rate
        results[f"{key} wall_s"] = time.perf_counter() - started
        print(f"{preset}: compiled fp16 {rate:.1f} img/s ({results[f'{key} wall_s']:.0f} s with the build)",
              flush=True)


def stage_features(results: Results, args) -> None:
    import torch

    from ddae_core.engine import data as datasets
    from ddae_core.engine.checkpoint import load_model
    from ddae_core.engine.device import amp_dtype_for
    from ddae_core.engine.evaluation.sources import NetworkSource
    from ddae_core.rundir import list_checkpoints

    from .common import train_tiny
    from .probe_grid import timed_probe

    ws = Path(args.workspace)
    device = torch.device(DEVICE)
    parent = train_tiny(ws, DATA, steps=30, preset=BIG, name="gpu check parent", sample_steps=2)
    model = load_model(max(list_checkpoints(parent))[1], device=device)
    model.amp_dtype = amp_dtype_for(device)
    images = datasets.load_split(DATA, "train", limit=FEATURE_IMAGES, data_root=ws / "data").images
    source = NetworkSource(model, list(model.net.tap_channels))
    source.extract(images[:512], 11)                   # warm-up: kernels, allocator
    _sync(device)
    started = time.perf_counter()
    source.extract(images, 11, batch_size=256)
    _sync(device)
    results["features img/s"] = len(images) / (time.perf_counter() - started)
    print(f"features: {results['features img/s']:.0f} img/s ({len(source.layers)} taps of {BIG} at t=11, "
          f"{len(images)} images)", flush=True)
    grid_args = argparse.Namespace(timesteps="11", data=DATA, epochs=15, views=1, train_limit=FEATURE_IMAGES,
                                   test_limit=GRID_TEST, device=DEVICE)
    elapsed, grid = timed_probe(ws, parent, "fast", grid_args)
    results["grid s"] = elapsed
    best = grid["best"]
    print(f"fast probe grid: {elapsed:.1f} s (t=11 x {len(grid['layers'])} layers, 15 epochs, "
          f"{FEATURE_IMAGES}/{GRID_TEST} images, with its baselines); best {100 * best['accuracy']:.1f}% at "
          f"{best['layer']}", flush=True)


def stage_queue(results: Results, args) -> None:
    from db import Store
    from ddae_core.engine.config import load_config
    from ddae_core.jobs.gpu_slots import detect_gpus
    from ddae_core.jobs.specs import train_spec

    from .queued import TrainTrace, group_rates, queue_spec, serve

    ws = Path(args.workspace)
    tokens = detect_gpus() if DEVICE == "cuda" else ["cpu0", "cpu1"]    # as the scheduler gives them to workers
    cfg = load_config(BIG)
    cfg.setdefault("studio", {}).update(sample_every_steps=10**9, checkpoint_every_steps=10**9, sample_steps=2,
                                        log_every_steps=5)
    cfg["n_sample"] = 4
    deadline = time.monotonic() + args.limit_s - 15
    groups = [(1, tokens[:1])] + ([(2, tokens[:2])] if len(tokens) >= 2 else [])
    with Store.open(ws) as store:
        for n_gpu, gpus in groups:
            where = f"{n_gpu} GPU{'s' if n_gpu > 1 else ''}"
            spec = train_spec(config=cfg, data=QUEUE_DATA, steps=10**6, batch_size=BATCH, device=DEVICE,
                              gpus=int(DEVICE == "cuda"), minutes=QUEUE_TRAIN_S / 60, name=f"gpu check queue {n_gpu}")
            runs = [queue_spec(store, spec) for _ in range(2)]
            left = deadline - time.monotonic()
            slots = dict(gpus=gpus) if DEVICE == "cuda" else dict(cpu_slots=n_gpu)
            serve(store, runs, timeout_s=left * (0.68 if n_gpu == 1 and len(groups) == 2 else 1.0),
                  kill_timeout_s=5, **slots)
            traces = [TrainTrace.read(store.run_dir(run)) for run in runs]
            if any(len(t.points) < 2 for t in traces):
                print(f"queue on {where}: a job trained too briefly to measure", flush=True)
                continue
            # The queue's throughput: every image trained over the time from the first step to the last.
            images = sum((t.points[-1][1] - t.points[0][1]) * t.batch for t in traces)
            span = max(t.end for t in traces) - min(t.start for t in traces)
            each = [group_rates([t])[0][0] for t in traces]
            results[f"{n_gpu} throughput"] = images / span
            print(f"queue, 2 jobs on {where}: {images / span:.1f} img/s over {span:.0f} s; "
                  f"each {', '.join(f'{r:.1f}' if r else 'n/a' for r in each)} img/s on "
                  f"{', '.join(t.device for t in traces)}", flush=True)
    if len(tokens) < 2:
        print(f"queue on two GPUs: skipped, {len(tokens)} GPU visible", flush=True)
    elif "1 throughput" in results and "2 throughput" in results:
        results["2 vs 1"] = results["2 throughput"] / results["1 throughput"]
        print(f"queue: two GPUs {results['2 vs 1']:.2f}x the throughput of one", flush=True)


def run_stage(args) -> None:
    """One stage, in its own process (the parent enforces its time limit)."""
    # The parent stops a stage past its limit with SIGTERM: leave through `finally`, so the queue
    # stage cancels its workers.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(124))
    results = Results(Path(args.result))
    name = args.stage
    if name == "train-tiny":
        stage_train(TINY, 300, 5.0, results, args)
    elif name == "train-35.7M":
        stage_train(BIG, 200, 8.0, results, args)
    elif name == "compile":
        stage_compile(results, args)
    elif name == "features":
        stage_features(results, args)
    elif name == "queue":
        stage_queue(results, args)
    else:
        raise SystemExit(f"gpu check: no stage {name!r}; stages: {', '.join(s for s, _ in STAGES)}")


# The parent: each stage in a process of its own, stopped at its limit.
def run_limited(stage: str, limit_s: float, ws: Path, result: Path) -> str:
    """Run one stage with a time limit; 'ok', 'failed (code N)' or 'stopped at its N s limit'."""
    cmd = [sys.executable, "-m", "bench.gpu_check", "--stage", stage, "--workspace", str(ws),
           "--result", str(result), "--limit-s", str(limit_s)]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
    try:
        code = proc.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        for sig, grace in ((signal.SIGTERM, 3), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        return f"stopped at its {limit_s:g} s limit"
    return "ok" if code == 0 else f"failed (code {code})"


def _sync(device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value and base else "n/a"


def _get(results: dict, stage: str, key: str):
    return results.get(stage, {}).get(key)


def summary(results: dict) -> str:
    def rate(stage, key):
        value = _get(results, stage, key)
        return f"{value:.0f} img/s" if value else "n/a"

    eager = _get(results, "train-35.7M", "eager fp32")
    big = results.get("train-35.7M", {})
    grid = _get(results, "features", "grid s")
    queue = _get(results, "queue", "2 vs 1")
    return (f"gpu check: trainer tiny {rate('train-tiny', 'trainer')}, 35.7M {rate('train-35.7M', 'trainer')}; "
            f"35.7M fp16 {_ratio(big.get('fp16 + GradScaler'), eager)}, bf16 {_ratio(big.get('bf16'), eager)}, "
            f"channels_last {_ratio(big.get('channels_last fp16'), eager)}, "
            f"compile {_ratio(_get(results, 'compile', '35.7M'), eager)}; "
            f"features {rate('features', 'features img/s')}; fast grid {f'{grid:.1f} s' if grid else 'n/a'}; "
            f"queue on 2 GPUs {f'{queue:.2f}x' if queue else 'n/a'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--only", help="comma-separated stages to run (default: all)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--limit-s", type=float, default=60.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        run_stage(args)
        return
    unknown = set(args.only.split(",")) - {s for s, _ in STAGES} if args.only else set()
    if unknown:
        raise SystemExit(f"gpu check: no stage {', '.join(sorted(unknown))}; "
                         f"stages: {', '.join(s for s, _ in STAGES)}.")
    import torch

    if not torch.cuda.is_available():
        print("gpu check: no CUDA device is visible to PyTorch on this machine, so there is nothing to check; "
              "run it where a GPU is.")
        return
    stages = [(s, limit) for s, limit in STAGES if not args.only or s in args.only.split(",")]
    # No CUDA context in this process (it would hold GPU memory through every stage): the stages name the GPU.
    print(f"{torch.cuda.device_count()} GPU(s); torch {torch.__version__}; stages: {', '.join(s for s, _ in stages)} "
          f"(at most {sum(limit for _, limit in stages)} s)", flush=True)
    started = time.monotonic()
    results, outcomes = {}, {}
    with tempfile.TemporaryDirectory(prefix="ddae-gpu-check-") as tmp:
        ws = Path(args.workspace or tmp).expanduser().resolve()
        for sub in ("runs", "data", "gpu-check"):
            (ws / sub).mkdir(parents=True, exist_ok=True)
        for stage, limit in stages:
            print(f"\n== {stage} (limit {limit} s)", flush=True)
            result = ws / "gpu-check" / f"{stage}.json"
            t0 = time.monotonic()
            outcomes[stage] = run_limited(stage, limit, ws, result)
            results[stage] = json.loads(result.read_text()) if result.exists() else {}
            print(f"== {stage}: {outcomes[stage]} in {time.monotonic() - t0:.0f} s", flush=True)
    print(f"\n{len(stages)} stages in {time.monotonic() - started:.0f} s: "
          + ", ".join(f"{s} {o}" for s, o in outcomes.items()))
    print(summary(results))


if __name__ == "__main__":
    main()
