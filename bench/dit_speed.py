"""DiT feature extraction timed two ways on the same latents: the official probe's and the engine's.

- official-style: as FutureXiang/ddae `DiT/linear.py` extracts: forward hooks on every block, one eager fp32
  forward of the whole network (its output layer included) with the null class, each block's tokens
  mean-pooled in float32;
- engine: `DiTModel.latent_pass` under `fast_forward()` as the fast protocol runs a DiT: the device's autocast,
  the pass stopped after the deepest requested block, tokens pooled by `pool_features`.
Both start from latents (the latent cache holds them; the VAE is paid once per dataset, not here). Used by
bench.features (a tiny DiT, its DiT line) and bench.gpu_check (its `dit` stage, DiT-XL/2 at random init).
"""

from __future__ import annotations

import time

import torch

from ddae_core.engine.config import parse_model_config
from ddae_core.engine.model import DiTModel, pool_features
from ddae_core.engine.nets.dit import SIZES

TINY = {"input_size": 8, "patch_size": 2, "hidden_size": 64, "depth": 4, "num_heads": 4, "num_classes": 10}


def dit_model(size: str = "tiny", device: torch.device | str = "cpu") -> DiTModel:
    """A DiT at random initialisation (speed does not depend on the weights): `tiny`, or `XL/2` (the public
    DiT-XL/2-256's shape: 4x32x32 latents); no VAE is loaded (the latents are given)."""
    if size == "tiny":
        network = dict(TINY)
    else:
        name, patch = size.split("/")
        depth, hidden, heads = SIZES[name]
        network = {"input_size": 32, "patch_size": int(patch), "hidden_size": hidden, "depth": depth,
                   "num_heads": heads, "num_classes": 1000}
    config = parse_model_config({"model_type": "DiT", "network": network, "vae": {"folder": "(not loaded)"}})
    with torch.device(device):          # built where it runs: XL/2's 675M weights are not initialised twice
        return DiTModel(config).eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def official_style(model: DiTModel, latents: torch.Tensor, timestep: int, batch_size: int) -> dict[str, torch.Tensor]:
    """{layer: (N, hidden)} as DiT/linear.py's denoise_feature: hooks, a full fp32 forward, float32 token means."""
    acts: dict[str, torch.Tensor] = {}
    hooks = [block.register_forward_hook(lambda _m, _i, out, name=name: acts.__setitem__(name, out))
             for name, block in zip(model.net.tap_names, model.net.blocks)]
    pooled: dict[str, list[torch.Tensor]] = {}
    try:
        with torch.no_grad():
            for start in range(0, len(latents), batch_size):
                x = latents[start:start + batch_size].to(model.device)
                t = torch.full((len(x),), timestep, device=model.device, dtype=torch.long)
                x_t, _, _ = model.framework.perturb(x, t, torch.randn_like(x))
                null = torch.full((len(x),), model.net.null_class, device=model.device, dtype=torch.long)
                model.net(x_t, t, null)
                for name, act in acts.items():
                    pooled.setdefault(name, []).append(act.float().mean(dim=1).cpu())
    finally:
        for hook in hooks:
            hook.remove()
    return {name: torch.cat(parts) for name, parts in pooled.items()}


def engine(model: DiTModel, latents: torch.Tensor, timestep: int, batch_size: int, precision: str = "auto",
           layers: list[str] | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """{layer: (N, hidden)} through the engine's pass at the device's extraction precision (noise from `seed`)."""
    layers = layers or model.taps
    pooled: dict[str, list[torch.Tensor]] = {}
    generator = torch.Generator().manual_seed(seed)
    with model.fast_forward(precision), torch.no_grad():
        for start in range(0, len(latents), batch_size):
            x = latents[start:start + batch_size]
            noise = torch.randn(x.shape, generator=generator)
            acts, _, _ = model.latent_pass(x, timestep, layers, noise=noise)
            for name, value in pool_features(acts).items():
                pooled.setdefault(name, []).append(value.cpu())
    return {name: torch.cat(parts) for name, parts in pooled.items()}


def timed(fn, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The largest over layers of |a - b| / |b| (norms over the whole set): how far fast features lie from fp32."""
    return max(float((a[k] - b[k]).norm() / b[k].norm()) for k in b)
