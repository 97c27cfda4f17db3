"""GPU check: the trainer, feature extraction, a fast probe grid and the queue on a CUDA machine, under 6 minutes.

    python -m bench.gpu_check [--workspace DIR] [--only train-tiny,queue,...]
    python -m bench.gpu_check --device cpu --quick      (every stage at toy size, on any machine: CI runs it)

Six stages, each in a process of its own with its own time limit (370 s in all):
  train-tiny   tiny-ddpm (batch 128), up to 300 steps per variant: eager fp32, fp16 + GradScaler, bf16,
               channels_last (fp16), and the project's Trainer with its defaults (bench.train_throughput)
  train-35.7M  the 35.7M UNet (ddpm-cifar10, batch 128), the same, up to 200 steps per variant
  compile      torch.compile (fp16) of both: build time and img/s
  features     the 35.7M UNet trained 30 steps: every decoder tap at t=11 for 5000 images as the fast probe
               protocol extracts a training view (its precision, taps, batch size and streams, through the
               engine's own NetworkSource), peak GPU memory, then a fast probe grid through the real job path
               (bench.probe_grid, without baselines)
  queue        two queued 35.7M trainings through the project's scheduler on one GPU (one after the
               other), then on two GPUs (side by side) when there are two
  dit          DiT-XL/2 at random initialisation on random 4x32x32 latents, batch 64: every block's pooled
               tokens at t=121 as the fast protocol extracts them (bench.dit_speed) in bf16 and fp16, and the
               official probe's hooked eager fp32 forward; img/s and peak GPU memory of each
Ratios are to eager fp32 of the same model, or to the one-GPU queue. A stage past its limit is
stopped and reported; the others still run. Without CUDA (and without --device cpu) it says so in one
sentence and exits 0. `--quick` shrinks every stage (a 0.3M-parameter UNet, batch 8, a few steps, 64
images, compile with dynamo's eager backend, 3-second queued jobs, a tiny DiT), so the whole check runs in about a
minute on a CPU; its numbers test the plumbing, not the hardware.
Last lines, one per stage: `gpu check <stage>: ...` (n/a for what did not run, and why).
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

from .gpu_sizes import STAGES, Sizes, model_config, model_label, sizes_of
from .results import record

ROOT = Path(__file__).resolve().parents[1]

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
def stage_train(model: str, results: Results, args) -> None:
    import torch

    from .train_throughput import plain_loop, trainer_loop

    sizes, device = sizes_of(args), torch.device(args.device)
    cfg, (steps, per_variant_s) = model_config(model), sizes.steps[model]
    variants = train_variants(device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{model_label(model)} on {where} (batch {sizes.batch}, up to {steps} steps or {per_variant_s:g} s per "
          "variant):", flush=True)
    for label, kwargs in variants:
        _reset_peak(device)
        try:
            rate = plain_loop(cfg, device, sizes.batch, steps, max_seconds=per_variant_s, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a variant this GPU cannot run is reported, not fatal
            print(f"  {label:<22} unavailable ({exc.__class__.__name__}: {str(exc)[:120]})", flush=True)
            continue
        results[label] = rate
        print(f"  {label:<22} {rate:9.1f} img/s  {_ratio(rate, results.get('eager fp32'))}{_peak(device)}", flush=True)
    _reset_peak(device)
    rate = trainer_loop(cfg, device, sizes.batch, steps, max_seconds=per_variant_s)
    results["trainer"] = rate
    print(f"  {'Trainer (defaults)':<22} {rate:9.1f} img/s  {_ratio(rate, results.get('eager fp32'))}  "
          f"(with data, clipping, EMA){_peak(device)}", flush=True)


def train_variants(device) -> list[tuple[str, dict]]:
    """(label, plain_loop options) timed per model: on CUDA fp16 (the official runs') and bf16; on a CPU bf16
    only, since CPU fp16 is slow (50x slower than fp32 here) and the trainer never picks it there."""
    import torch

    if device.type == "cuda":
        return [("eager fp32", {}), ("fp16 + GradScaler", {"amp": torch.float16}), ("bf16", {"amp": torch.bfloat16}),
                ("channels_last fp16", {"channels_last": True, "amp": torch.float16})]
    return [("eager fp32", {}), ("bf16", {"amp": torch.bfloat16}),
            ("channels_last bf16", {"channels_last": True, "amp": torch.bfloat16})]


def stage_compile(results: Results, args) -> None:
    import torch

    from .train_throughput import plain_loop

    sizes, device = sizes_of(args), torch.device(args.device)
    amp = torch.float16 if device.type == "cuda" else torch.bfloat16      # as train_variants
    for key, model in (("tiny", sizes.tiny), (sizes.big_label, sizes.big)):
        started = time.perf_counter()
        try:
            rate = plain_loop(model_config(model), device, sizes.batch, sizes.compile_steps[model], compile_=True,
                              amp=amp, max_seconds=6, compile_backend=sizes.compile_backend)
        except Exception as exc:  # noqa: BLE001 - no compiler here is a result too
            print(f"{model_label(model)}: torch.compile unavailable ({exc.__class__.__name__}: {str(exc)[:160]})",
                  flush=True)
            continue
        results[key] = rate
        results[f"{key} wall_s"] = time.perf_counter() - started
        print(f"{model_label(model)}: compiled ({sizes.compile_backend}) {_dtype(amp)} {rate:.1f} img/s "
              f"({results[f'{key} wall_s']:.0f} s with the build)", flush=True)


def stage_features(results: Results, args) -> None:
    import torch

    from ddae_core.engine import data as datasets
    from ddae_core.engine.checkpoint import load_model
    from ddae_core.engine.device import extraction_amp_dtype, extraction_batch_size, extraction_streams
    from ddae_core.engine.evaluation.grid_axes import parse_layers
    from ddae_core.engine.evaluation.sources import NetworkSource
    from ddae_core.rundir import list_checkpoints

    from .common import train_tiny
    from .probe_grid import timed_probe

    sizes, ws, device = sizes_of(args), Path(args.workspace), torch.device(args.device)
    parent = train_tiny(ws, sizes.data, steps=sizes.parent_steps, preset=model_config(sizes.big),
                        name="gpu check parent", sample_steps=2, device=args.device)
    model = load_model(max(list_checkpoints(parent))[1], device=device)
    images = datasets.load_split(sizes.data, "train", limit=sizes.feature_images, data_root=ws / "data").images
    # As a fast probe extracts a training view: its taps ("all": the decoder's), its precision ("auto"), the
    # device's batch size and streams (NetworkSource.extract), one flip + padded crop and a noise draw.
    source = NetworkSource(model, parse_layers("all", model.config), precision="auto")
    batch = extraction_batch_size(device)

    def extract(imgs) -> None:
        source.extract(imgs, 11, batch_size=batch, flip=True, crop_padding=4, seed=41)

    extract(images[:2 * batch])                         # warm-up: kernels, autotune, allocator
    _sync(device)
    _reset_peak(device)
    started = time.perf_counter()
    extract(images)
    _sync(device)
    results["features img/s"] = len(images) / (time.perf_counter() - started)
    if device.type == "cuda":
        results["features peak MiB"] = torch.cuda.max_memory_allocated(device) / 2**20
    results["features setup"] = (f"{_dtype(extraction_amp_dtype(device))} autocast, batch {batch}, "
                                 f"{extraction_streams(device)} stream(s), {len(source.layers)} taps")
    print(f"features: {results['features img/s']:.0f} img/s (the fast protocol's extraction: "
          f"{results['features setup']} of {model_label(sizes.big)} at t=11, {len(images)} images){_peak(device)}",
          flush=True)
    grid_args = argparse.Namespace(timesteps="11", layers="all", data=sizes.data, epochs=sizes.grid_epochs, views=1,
                                   train_limit=sizes.feature_images, test_limit=sizes.grid_test, device=args.device,
                                   baselines=False)
    elapsed, _, grid = timed_probe(ws, parent, "fast", grid_args)
    results["grid s"] = elapsed
    best = grid["best"]
    print(f"fast probe grid: {elapsed:.1f} s (t=11 x {len(grid['layers'])} layers, {sizes.grid_epochs} epochs, "
          f"{sizes.feature_images}/{sizes.grid_test} images, without baselines); best {100 * best['accuracy']:.1f}% "
          f"at {best['layer']}", flush=True)


def stage_queue(results: Results, args) -> None:
    from db import Store
    from ddae_core.jobs.gpu_slots import detect_gpus
    from ddae_core.jobs.specs import train_spec

    from .queued import TrainTrace, group_rates, queue_spec, serve

    sizes, ws, cuda = sizes_of(args), Path(args.workspace), args.device == "cuda"
    tokens = detect_gpus() if cuda else ["cpu0", "cpu1"]    # as the scheduler gives them to workers
    cfg = model_config(sizes.big)
    cfg.setdefault("studio", {}).update(sample_every_steps=10**9, checkpoint_every_steps=10**9, sample_steps=2,
                                        log_every_steps=sizes.queue_log_every_steps)
    cfg["n_sample"] = 4
    deadline = time.monotonic() + args.limit_s - 15
    groups = [(1, tokens[:1])] + ([(2, tokens[:2])] if len(tokens) >= 2 else [])
    unit = "GPU" if cuda else "CPU slot"
    with Store.open(ws) as store:
        for n_slots, slots in groups:
            where = f"{n_slots} {unit}{'s' if n_slots > 1 else ''}"
            spec = train_spec(config=cfg, data=sizes.queue_data, steps=10**6, batch_size=sizes.batch,
                              device=args.device, gpus=int(cuda), minutes=sizes.queue_train_s / 60,
                              name=f"gpu check queue {n_slots}")
            runs = [queue_spec(store, spec) for _ in range(2)]
            left = deadline - time.monotonic()
            where_to = dict(gpus=slots) if cuda else dict(cpu_slots=n_slots)
            serve(store, runs, timeout_s=left * (0.68 if n_slots == 1 and len(groups) == 2 else 1.0),
                  kill_timeout_s=5, **where_to)
            traces = [TrainTrace.read(store.run_dir(run)) for run in runs]
            if any(len(t.points) < 2 for t in traces):
                print(f"queue on {where}: a job trained too briefly to measure", flush=True)
                continue
            # The queue's throughput: every image trained over the time from the first step to the last.
            images = sum((t.points[-1][1] - t.points[0][1]) * t.batch for t in traces)
            span = max(t.end for t in traces) - min(t.start for t in traces)
            each = [group_rates([t])[0][0] for t in traces]
            results[f"{n_slots} throughput"] = images / span
            print(f"queue, 2 jobs on {where}: {images / span:.1f} img/s over {span:.0f} s; "
                  f"each {', '.join(f'{r:.1f}' if r else 'n/a' for r in each)} img/s on "
                  f"{', '.join(t.device for t in traces)}", flush=True)
    if len(tokens) < 2:
        print(f"queue on two GPUs: skipped, {len(tokens)} GPU visible", flush=True)
    elif "1 throughput" in results and "2 throughput" in results:
        results["2 vs 1"] = results["2 throughput"] / results["1 throughput"]
        print(f"queue: two {unit}s {results['2 vs 1']:.2f}x the throughput of one", flush=True)


def stage_dit(results: Results, args) -> None:
    import torch

    from . import dit_speed

    sizes, device = sizes_of(args), torch.device(args.device)
    torch.manual_seed(0)
    model = dit_speed.dit_model(sizes.dit, device)
    batch, t = sizes.dit_batch, 121
    latents = torch.randn(batch * sizes.dit_batches, *model.noise_shape)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"DiT-{sizes.dit} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M) on {where}, batch {batch}, "
          f"{len(latents)} latents per variant, every block at t={t}:", flush=True)
    for label, precision in dit_variants(device):
        def run(x, precision=precision):
            if precision is None:
                return dit_speed.official_style(model, x, t, batch)
            return dit_speed.engine(model, x, t, batch, precision=precision)
        try:
            run(latents[:batch])                    # warm-up: kernels, allocator
            _reset_peak(device)
            elapsed = dit_speed.timed(lambda run=run: run(latents), device)
        except Exception as exc:  # noqa: BLE001 - a precision this GPU cannot run is reported, not fatal
            print(f"  {label:<28} unavailable ({exc.__class__.__name__}: {str(exc)[:120]})", flush=True)
            continue
        results[label] = len(latents) / elapsed
        if device.type == "cuda":
            results[f"{label} MiB"] = torch.cuda.max_memory_allocated(device) / 2**20
        print(f"  {label:<28} {results[label]:9.1f} img/s{_peak(device)}", flush=True)


def dit_variants(device) -> list[tuple[str, str | None]]:
    """(label, extraction precision; None: the official probe's eager fp32 forward with hooks)."""
    low = ("bf16", "fp16") if device.type == "cuda" else ("bf16",)
    return [("eager fp32 (official-style)", None)] + [(p, p) for p in low]


def run_stage(args) -> None:
    """One stage, in its own process (the parent enforces its time limit)."""
    # The parent stops a stage past its limit with SIGTERM: leave through `finally`, so the queue
    # stage cancels its workers.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(124))
    results, sizes = Results(Path(args.result)), sizes_of(args)
    name = args.stage
    if name == "train-tiny":
        stage_train(sizes.tiny, results, args)
    elif name == "train-35.7M":
        stage_train(sizes.big, results, args)
    elif name == "compile":
        stage_compile(results, args)
    elif name == "features":
        stage_features(results, args)
    elif name == "queue":
        stage_queue(results, args)
    elif name == "dit":
        stage_dit(results, args)
    else:
        raise SystemExit(f"gpu check: no stage {name!r}; stages: {', '.join(STAGES)}")


# The parent: each stage in a process of its own, stopped at its limit.
def run_limited(stage: str, limit_s: float, ws: Path, result: Path, args) -> str:
    """Run one stage with a time limit; 'ok', 'failed (code N)' or 'stopped at its N s limit'."""
    cmd = [sys.executable, "-m", "bench.gpu_check", "--stage", stage, "--workspace", str(ws),
           "--result", str(result), "--limit-s", str(limit_s), "--device", args.device,
           *(["--quick"] if args.quick else [])]
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


def _reset_peak(device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device) -> str:
    """`, peak N MiB` of GPU memory allocated since the last _reset_peak ('' on a CPU)."""
    if device.type != "cuda":
        return ""
    import torch

    torch.cuda.synchronize(device)
    return f", peak {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB"


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value and base else "n/a"


def _dtype(dtype) -> str:
    """torch.bfloat16 -> bf16, torch.float16 -> fp16, None (no autocast) -> fp32."""
    return {"torch.bfloat16": "bf16", "torch.float16": "fp16"}.get(str(dtype), "fp32")


def _rate(value: float | None) -> str:
    return "n/a" if not value else f"{value:.0f} img/s" if value >= 10 else f"{value:.1f} img/s"


def summary(results: dict, outcomes: dict, sizes: Sizes, device) -> list[str]:
    """One line per stage run: `gpu check <stage>: <its numbers>` (n/a for what it did not measure, and why)."""
    lines = []
    for stage, outcome in outcomes.items():
        r = results.get(stage, {})
        if stage.startswith("train-"):
            eager = r.get("eager fp32")
            text = f"trainer {_rate(r.get('trainer'))}, eager fp32 {_rate(eager)}; " + ", ".join(
                f"{label} {_ratio(r.get(label), eager)}" for label, _ in train_variants(device)[1:])
        elif stage == "compile":
            eager = {"tiny": results.get("train-tiny", {}).get("eager fp32"),
                     sizes.big_label: results.get("train-35.7M", {}).get("eager fp32")}
            text = ", ".join(f"{key} {_rate(r.get(key))} ({_ratio(r.get(key), eager[key])} eager fp32, build and "
                             f"run {r[key + ' wall_s']:.0f} s)" if r.get(key) else f"{key} n/a"
                             for key in ("tiny", sizes.big_label))
        elif stage == "dit":
            eager = r.get("eager fp32 (official-style)")
            text = f"DiT-{sizes.dit} batch {sizes.dit_batch}: " + ", ".join(
                f"{label} {_rate(r.get(label))}" + (f" ({_ratio(r.get(label), eager)})" if precision else "")
                + (f", peak {r[label + ' MiB']:.0f} MiB" if r.get(label + " MiB") else "")
                for label, precision in dit_variants(device))
        elif stage == "features":
            peak, grid = r.get("features peak MiB"), r.get("grid s")
            text = (f"{_rate(r.get('features img/s'))} ({r.get('features setup', 'n/a')}"
                    f"{f', peak {peak:.0f} MiB' if peak else ''}); fast grid {f'{grid:.1f} s' if grid else 'n/a'}")
        else:
            two = r.get("2 vs 1")
            text = (f"one {_rate(r.get('1 throughput'))}, two {_rate(r.get('2 throughput'))} "
                    f"({f'{two:.2f}x' if two else 'n/a'})")
        lines.append(f"gpu check {stage}: {text}" + ("" if outcome == "ok" else f" [{outcome}]"))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--only", help="comma-separated stages to run (default: all)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu runs the same stages without a GPU (with --quick, the plumbing in CI)")
    parser.add_argument("--quick", action="store_true", help="every stage at toy size (about a minute on a CPU)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--limit-s", type=float, default=60.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        run_stage(args)
        return
    unknown = set(args.only.split(",")) - set(STAGES) if args.only else set()
    if unknown:
        raise SystemExit(f"gpu check: no stage {', '.join(sorted(unknown))}; stages: {', '.join(STAGES)}.")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu check: no CUDA device is visible to PyTorch on this machine, so there is nothing to check; "
              "run it where a GPU is (or try the plumbing with --device cpu --quick).")
        return
    sizes = sizes_of(args)
    stages = [(s, limit) for s, limit in sizes.limits.items() if not args.only or s in args.only.split(",")]
    # No CUDA context in this process (it would hold GPU memory through every stage): the stages name the GPU.
    where = f"{torch.cuda.device_count()} GPU(s)" if args.device == "cuda" else "CPU"
    print(f"{where}; torch {torch.__version__}; {'quick (toy sizes); ' if args.quick else ''}"
          f"stages: {', '.join(s for s, _ in stages)} (at most {sum(limit for _, limit in stages)} s)", flush=True)
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
            outcomes[stage] = run_limited(stage, limit, ws, result, args)
            results[stage] = json.loads(result.read_text()) if result.exists() else {}
            print(f"== {stage}: {outcomes[stage]} in {time.monotonic() - t0:.0f} s", flush=True)
    print(f"\n{len(stages)} stages in {time.monotonic() - started:.0f} s: "
          + ", ".join(f"{s} {o}" for s, o in outcomes.items()))
    lines = summary(results, outcomes, sizes, torch.device(args.device))
    print("\n".join(lines))
    if torch.device(args.device).type == "cuda" and not args.quick:      # a quick or CPU check is plumbing, not a figure
        record("gpu_check", " | ".join(lines), echo=False)


if __name__ == "__main__":
    main()
