"""Feature extraction head to head: the engine's path against the official `get_feature`, in one run.

    python -m bench.features [--preset tiny-ddpm] [--batch-size 128] [--images 1024] [--rounds 3] [--device auto]
    python -m bench.features --dit-only        (the DiT line alone)

Same network (the preset at a fixed random initialisation: speed does not depend on the weights), same
images, same timestep, same batch, same threads (torch's default unless OMP_NUM_THREADS or --threads says).
- official-style: as the official `get_feature` does it: forward hooks on the decoder taps, one plain eager
  fp32 forward of the whole network in contiguous memory, each tap pooled in float32. Its images come
  pre-augmented (the official DataLoader's workers do that beside the forward pass).
- engine: `extract_features` under `DDAEModel.fast_forward()` exactly as the fast protocols call it, paying
  for its own flip + padded crop, noise and pooling: autocast at the device's extraction dtype, GroupNorm in
  fp32, channels_last where it measured faster, the device's batch size, and on a CPU one stream of one
  torch thread per thread of the budget (device.extraction_streams).
Rounds alternate the two, so a machine that gets busier slows both alike; the median round counts.
Also printed: the engine at the official batch size in one stream, and how far its features lie from fp32.
Target: engine >= 2x official-style.
Then the same for a tiny DiT at random initialisation on random latents (bench.dit_speed: DiT/linear.py's hooked
fp32 forward against DiTModel.latent_pass under fast_forward, every block, t=121), in the same run.
Last lines: `features: N img/s vs official-style M img/s: Rx` and `features (tiny DiT): ...`.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch

from ddae_core import build_model
from ddae_core.engine.device import (
    describe,
    extraction_amp_dtype,
    extraction_batch_size,
    extraction_streams,
    resolve_device,
)
from ddae_core.engine.evaluation.features import extract_features
from ddae_core.engine.model import DDAEModel, to_model_range
from ddae_core.engine.nets.blocks import ResAttBlock

from . import dit_speed
from .results import record


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def official_style(model: DDAEModel, images: torch.Tensor, timestep: int, batch_size: int) -> dict[str, torch.Tensor]:
    """Pooled decoder taps as the official get_feature: hooks, a full fp32 forward, float32 pooling."""
    decoder = [m for m in model.net.up if isinstance(m, ResAttBlock)]
    acts: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, k=k: acts.__setitem__(f"out_{k}", out))
             for k, m in enumerate(decoder, 1)]
    pooled: dict[str, list[torch.Tensor]] = {}
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                x = to_model_range(images[start:start + batch_size].to(model.device).float().div_(255))
                t = torch.full((len(x),), timestep, device=model.device, dtype=torch.long)
                _, net_in, time_in = model.framework.perturb(x, t, torch.randn_like(x))
                model.net(net_in, time_in)
                for name, act in acts.items():
                    pooled.setdefault(name, []).append(act.float().mean(dim=(2, 3)).cpu())
    finally:
        for hook in hooks:
            hook.remove()
    return {name: torch.cat(parts) for name, parts in pooled.items()}


def engine(model: DDAEModel, images: torch.Tensor, timestep: int, batch_size: int | None = None,
           streams: int | None = None, precision: str = "auto") -> dict[str, torch.Tensor]:
    """The fast protocols' extraction of one training view (flip + padded crop, seeded noise); batch size
    and streams default to the device's, as NetworkSource.extract runs it."""
    with model.fast_forward(precision):
        return extract_features(model, images, timestep, model.decoder_taps,
                                batch_size=batch_size or extraction_batch_size(model.device), flip=True,
                                crop_padding=4, seed=1, streams=streams or extraction_streams(model.device))


def timed(fn, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The largest over layers of |a - b| / |b| (Frobenius norms over the whole split)."""
    return max(float((a[k] - b[k]).norm() / b[k].norm()) for k in b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny-ddpm")
    parser.add_argument("--batch-size", type=int, default=128,
                        help="the official-style path's (default: the official linear probe's)")
    parser.add_argument("--images", type=int, default=1024, help="images per timed pass")
    parser.add_argument("--timestep", type=int, default=11)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own, or OMP_NUM_THREADS)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dit-only", action="store_true", help="only the DiT line")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.dit_only:
        dit_line(args, device)
        return
    torch.manual_seed(0)
    model = build_model(args.preset).to(device).eval()
    images = torch.randint(0, 256, (args.images, *model.config.network["image_shape"]), dtype=torch.uint8)
    augmented = images.flip(3)  # the official-style path gets its augmentation for free
    dtype = extraction_amp_dtype(device)
    batch, streams = extraction_batch_size(device), extraction_streams(device)
    print(f"{args.preset} on {describe(device)}; {args.images} images per pass, t={args.timestep}, "
          f"{len(model.decoder_taps)} decoder taps; engine autocast {dtype or 'off (fp32)'}, batch {batch}, "
          f"{streams} stream(s)", flush=True)

    # Warm up all three (allocator, oneDNN primitive caches, cuDNN autotune), then alternate.
    warm = images[:2 * args.batch_size]
    runs = {  # name: (the pass, its images)
        "official": (lambda imgs: official_style(model, imgs, args.timestep, args.batch_size), augmented),
        "engine": (lambda imgs: engine(model, imgs, args.timestep), images),
        "same batch": (lambda imgs: engine(model, imgs, args.timestep, args.batch_size, streams=1), images),
    }
    for run, _ in runs.values():
        run(warm)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (run, imgs) in runs.items():
            times[name].append(timed(functools.partial(run, imgs), device))
    rate = {k: args.images / statistics.median(v) for k, v in times.items()}
    print(f"official-style (fp32 eager, hooks), batch {args.batch_size}: {rate['official']:.1f} img/s", flush=True)
    print(f"engine at the official batch size ({args.batch_size}), one stream: {rate['same batch']:.1f} img/s "
          f"({rate['same batch'] / rate['official']:.2f}x)", flush=True)
    print(f"engine as the fast protocols run it (batch {batch}, {streams} stream(s)): {rate['engine']:.1f} img/s",
          flush=True)
    if dtype is not None:
        reference = engine(model, images, args.timestep, precision="fp32")
        fast = engine(model, images, args.timestep)
        print(f"engine features vs the same pass in fp32: largest relative difference "
              f"{relative_difference(fast, reference):.2e}", flush=True)
    record("features", f"features: {rate['engine']:.1f} img/s vs official-style {rate['official']:.1f} img/s: "
                       f"{rate['engine'] / rate['official']:.2f}x   (batch {batch}, {streams} stream(s); at the "
                       f"official batch of {args.batch_size} in one stream: {rate['same batch']:.1f} img/s, "
                       f"{rate['same batch'] / rate['official']:.2f}x)")
    dit_line(args, device)


def dit_line(args, device: torch.device) -> None:
    """The DiT line: a tiny DiT's every block at t=121, the official probe's extraction against the engine's."""
    torch.manual_seed(0)
    model = dit_speed.dit_model("tiny", device)
    latents = torch.randn(args.images, *model.noise_shape)
    batch, t = extraction_batch_size(device), 121
    runs = {"official": lambda x: dit_speed.official_style(model, x, t, args.batch_size),
            "engine": lambda x: dit_speed.engine(model, x, t, batch)}
    for run in runs.values():
        run(latents[:2 * args.batch_size])
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            times[name].append(dit_speed.timed(functools.partial(run, latents), device))
    rate = {k: args.images / statistics.median(v) for k, v in times.items()}
    spread = dit_speed.relative_difference(dit_speed.engine(model, latents, t, batch),
                                           dit_speed.engine(model, latents, t, batch, precision="fp32"))
    depth, width = model.config.network["depth"], model.config.network["hidden_size"]
    record("features_dit", f"features (tiny DiT, {depth} blocks x {width}, 4x8x8 latents): {rate['engine']:.1f} "
                           f"img/s vs official-style {rate['official']:.1f} img/s: "
                           f"{rate['engine'] / rate['official']:.2f}x   (batch {batch} vs {args.batch_size}; "
                           f"features within {spread:.1e} of fp32)")


if __name__ == "__main__":
    main()
