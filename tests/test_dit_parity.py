"""The DiT written here against the official DiT code's outputs at a tiny size (tests/data/dit_tiny/make_fixture.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ddae_core.engine.diffusion import DiTDiffusion, dit_alphabar
from ddae_core.engine.model import pool_features
from ddae_core.engine.nets.dit import SIZES, DiT

FIXTURE = Path(__file__).parent / "data" / "dit_tiny" / "fixture.pt"


@pytest.fixture(scope="module")
def official():
    return torch.load(FIXTURE, weights_only=True)


@pytest.fixture(scope="module")
def net(official):
    net = DiT(**official["config"]).eval()
    net.load_state_dict({k: v.float() for k, v in official["state"].items()}, strict=True)
    return net


def test_keys_and_shapes_are_the_official_layout(official):
    fresh = DiT(**official["config"]).state_dict()
    assert {k: tuple(v.shape) for k, v in fresh.items()} == {k: tuple(v.shape) for k, v in official["state"].items()}
    # The fixed 2-D position codes are computed here as DiT computes them.
    assert torch.allclose(fresh["pos_embed"], official["state"]["pos_embed"], atol=1e-6)


def test_output_and_block_outputs_match_the_official_forward(official, net):
    with torch.no_grad():
        out, acts = net.forward_taps(official["x"], official["t"], official["y"], taps=net.tap_names)
    assert out.shape == (3, 8, 8, 8)        # learn_sigma: twice the 4 latent channels
    assert (out - official["out"]).abs().max() < 1e-5
    for name, act in acts.items():
        tokens = act.flatten(2).transpose(1, 2)
        assert (tokens - official[f"acts/{name}"]).abs().max() < 1e-5, name


def test_the_null_label_is_the_extra_class(official, net):
    """Label num_classes (the classifier-free-guidance null class) is what y=None means."""
    x, t = official["x"][1:2], official["t"][1:2]
    assert int(official["y"][1]) == net.null_class == 10
    with torch.no_grad():
        assert (net(x, t) - official["out"][1:2]).abs().max() < 1e-5


def test_features_equal_the_official_feature_extraction(official, net):
    """DiT/linear.py's denoise_feature: q_sample at t with the given noise, null label, tokens mean-pooled."""
    diffusion = DiTDiffusion()
    t = torch.full((3,), int(official["feature_t"]))
    noisy, net_in, time_in = diffusion.perturb(official["latents"], t, official["noise"])
    assert (noisy - official["x_t"]).abs().max() < 1e-6
    layer = official["feature_layer"]
    with torch.no_grad():
        _, acts = net.forward_taps(net_in, time_in, None, taps=[layer], need_output=False)
    feature = pool_features(acts)[layer]
    assert (feature - official["feature"]).abs().max() < 1e-5


def test_schedule_is_dits_zero_indexed_linear_one():
    alphabar = dit_alphabar()
    assert alphabar.shape == (1000,) and alphabar.dtype == torch.float64
    assert abs(float(alphabar[0]) - (1 - 1e-4)) < 1e-12        # t=0 already holds one step of noise
    assert abs(float(alphabar[-1]) - float(torch.prod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)))) \
        < 1e-12


def test_xl2_has_the_public_checkpoints_size():
    depth, hidden, heads = SIZES["XL"]
    with torch.device("meta"):
        net = DiT(input_size=32, patch_size=2, depth=depth, hidden_size=hidden, num_heads=heads)
    params = sum(p.numel() for p in net.parameters())
    assert params + net.pos_embed.numel() == 675_129_632   # DiT-XL/2's 675M, counting its frozen pos_embed (a buffer here)
    assert len(net.tap_names) == 28 and net.tap_names[13] == "layer-13"
