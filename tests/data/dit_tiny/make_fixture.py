"""Make tests/data/dit_tiny/fixture.pt by running the OFFICIAL DiT code at a tiny size (not run by the tests).

Ran against FutureXiang/ddae at ddd4a3b7338cedd2bcff2dd849e6d90c5337d056, folder DiT/ (its models.py is
facebookresearch/DiT's models.py at ed81ce2229091fd4ecc9a223645f95cf379d582b plus the `ret_activation`
block hooks of the DDAE linear probe; its diffusion/ is DiT's). DiT's code is CC-BY-NC and is not part of
this project: only its outputs are kept here. It imports timm, which is no dependency of the project:

    pip install --target /tmp/timm_site timm
    git -C <ddae clone> archive HEAD DiT | tar -x -C /tmp/ddae_dit
    PYTHONPATH=/tmp/timm_site python tests/data/dit_tiny/make_fixture.py /tmp/ddae_dit/DiT

What it saves (one torch file, read with weights_only=True):
- config: the DiT constructor's arguments;
- state: the official state dict (official key layout), every weight drawn at random and rounded to fp16
  (so the fixture stays small and the fp16 copy is the exact weights), stored as fp16;
- x, t, y: inputs (y holds the null class num_classes), out: the official forward's output;
- acts/<layer>: the hooked block outputs (N, tokens, hidden);
- latents, noise, feature_t, feature_layer, feature: the official feature extraction of DiT/linear.py
  (denoise_feature: diffusion.q_sample at t, the null label, the block output mean-pooled over tokens).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

CONFIG = dict(input_size=8, patch_size=2, in_channels=4, hidden_size=32, depth=2, num_heads=4, mlp_ratio=4.0,
              class_dropout_prob=0.1, num_classes=10, learn_sigma=True)


def main(official_dir: str) -> None:
    sys.path.insert(0, official_dir)
    from diffusion import create_diffusion  # the official DiT diffusion (1000 linear betas)
    from models import DiT  # the official network

    torch.manual_seed(0)
    model = DiT(**CONFIG).eval()
    with torch.no_grad():                       # adaLN-Zero zeroes the gates: draw every weight so blocks act
        for name, p in model.named_parameters():
            if name != "pos_embed":
                p.copy_((torch.randn_like(p) * 0.2).half().float())
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 8, 8, generator=gen)
    t = torch.tensor([0, 121, 999])
    y = torch.tensor([3, CONFIG["num_classes"], 7])
    with torch.no_grad():
        out, acts = model(x, t, y, ret_activation=True)

    # The official feature extraction (DiT/linear.py denoise_feature) with its noise given.
    diffusion = create_diffusion(None)
    latents = torch.randn(3, 4, 8, 8, generator=gen)
    noise = torch.randn(3, 4, 8, 8, generator=gen)
    feature_t, layer = 121, "layer-1"
    tt = torch.full((3,), feature_t)
    x_t = diffusion.q_sample(latents, tt, noise=noise)
    with torch.no_grad():
        _, f_acts = model(x_t, tt, torch.full((3,), CONFIG["num_classes"]), ret_activation=True)
    feature = f_acts[layer].float().mean(dim=1)

    fixture = {"config": CONFIG, "state": {k: v.half() if k != "pos_embed" else v for k, v in state.items()},
               "x": x, "t": t, "y": y, "out": out, **{f"acts/{k}": v for k, v in acts.items()},
               "latents": latents, "noise": noise, "x_t": x_t, "feature_t": feature_t, "feature_layer": layer,
               "feature": feature}
    path = Path(__file__).with_name("fixture.pt")
    torch.save(fixture, path)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main(sys.argv[1])
