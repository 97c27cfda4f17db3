"""Make tests/data/edm_songunet_small.{json,npz}: a small random DDPM++ network run by NVlabs' own EDM code.

    python tests/data/make_edm_fixture.py /path/to/a/checkout/of/NVlabs/edm

The EDM code (CC BY-NC-SA 4.0) is only imported from that checkout, never copied here. The fixture holds
no weights: they are drawn from a seed (fill_parameters, which the test repeats), so the files stay small.
What it holds: the module tree (class names, plain attributes, constructor arguments, parameter names and
shapes, buffers), the inputs, and the outputs of EDM's code: the denoiser D(x; sigma), the raw network with
augmentation labels, and every decoder block's output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
SEED = 24
NETWORK = dict(img_resolution=16, img_channels=3, label_dim=0, use_fp16=False, sigma_min=0.002, sigma_max=80,
               sigma_data=0.5, model_type="SongUNet", augment_dim=9, model_channels=128, channel_mult=[1, 2],
               num_blocks=1, attn_resolutions=[8], dropout=0.13, embedding_type="positional",
               channel_mult_noise=1, encoder_type="standard", decoder_type="standard", resample_filter=[1, 1])


def fill_parameters(named: list[tuple[str, torch.Tensor]]) -> None:
    """Every parameter from one seeded stream, in sorted name order: randn / sqrt(fan_in)."""
    gen = torch.Generator().manual_seed(SEED)
    for _, param in sorted(named, key=lambda item: item[0]):
        fan_in = int(np.prod(param.shape[1:])) if param.dim() > 1 else 1
        param.copy_(torch.randn(param.shape, generator=gen) / fan_in ** 0.5)


def plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def describe(net: torch.nn.Module) -> dict:
    modules = {}
    for name, module in net.named_modules():
        attrs = {k: plain(v) for k, v in vars(module).items() if not k.startswith("_") and k != "training"
                 and isinstance(v, (int, float, str, bool, list, tuple, np.floating, np.integer))}
        modules[name] = {
            "class": type(module).__name__,
            "attrs": attrs,
            "init_kwargs": plain(dict(module._init_kwargs)) if getattr(module, "_init_kwargs", None) else None,
            "children": list(module._modules),
            "parameters": {k: list(v.shape) for k, v in module._parameters.items() if v is not None},
            "none_parameters": [k for k, v in module._parameters.items() if v is None],
            "buffers": {k: (v.tolist() if v is not None else None) for k, v in module._buffers.items()},
            "numpy_attrs": [k for k, v in vars(module).items() if isinstance(v, np.floating)],
        }
    return modules


def main(edm_checkout: str) -> None:
    sys.path.insert(0, edm_checkout)
    from training.networks import EDMPrecond, UNetBlock  # NVlabs' code, from the checkout only

    torch.manual_seed(0)
    net = EDMPrecond(**NETWORK).eval()
    with torch.no_grad():
        fill_parameters(list(net.named_parameters()))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 16, 16, generator=gen)
    sigma = torch.tensor([0.0599, 2.0])
    augment = torch.randn(2, 9, generator=gen) * 0.5
    decoder = [(n, m) for n, m in net.model.dec.items() if isinstance(m, UNetBlock) and "_block" in n]
    taps: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: taps.append(out)) for _, m in decoder]
    with torch.no_grad():
        denoised = net(x, sigma)
        for hook in hooks:
            hook.remove()
        c_in = 1 / (0.5 ** 2 + sigma ** 2).sqrt()
        raw = net.model(c_in.reshape(-1, 1, 1, 1) * x, sigma.log() / 4, None, augment_labels=augment)
    np.savez_compressed(HERE / "edm_songunet_small.npz", x=x.numpy(), sigma=sigma.numpy(), augment=augment.numpy(),
                        denoised=denoised.numpy(), raw_with_augment=raw.numpy(),
                        **{f"tap_{i + 1}": t.numpy() for i, t in enumerate(taps)})
    (HERE / "edm_songunet_small.json").write_text(json.dumps(
        {"seed": SEED, "network": NETWORK, "decoder_blocks": [n for n, _ in decoder], "modules": describe(net)},
        indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
