"""The networks and frameworks against the official numbers (ddae-spec 2-4, appendix C)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddae_core import build_model, load_model
from ddae_core.engine.config import load_config, preset_names
from ddae_core.engine.diffusion import DDPM, EDM, karras_sigmas
from ddae_core.engine.evaluation.noisy import NoisyHead
from ddae_core.engine.nets import UNet
from ddae_core.engine.nets.unet import tap_names
from ddae_core.engine.nets.wideresnet import NoiseConditionalWRN

from .fixtures import FIXTURES, micro_config, need


def trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize("preset, params, keys, taps", [
    ("ddpm-cifar10", 35_746_307, 304, 12),
    ("edm-ddpm-cifar10", 35_746_307, 304, 12),
    ("ddpm-ddpmpp-cifar10", 56_524_291, 432, 15),
    ("edm-ddpmpp-cifar10", 56_524_291, 432, 15),
    ("edm-ddpmpp-aug-cifar10", 56_525_443, 433, 15),
])
def test_official_presets_have_exact_parameter_counts(preset, params, keys, taps):
    model = build_model(preset)
    assert trainable(model) == params
    assert len(model.net.state_dict()) == keys
    assert len(model.decoder_taps) == taps


def test_tap_channels_follow_the_spec_table():
    net = UNet()  # DDPM_ddpm shape
    assert [net.tap_channels[f"out_{i}"] for i in range(1, 13)] == [256] * 9 + [128] * 3
    x = torch.randn(1, 3, 32, 32)
    _, acts = net.forward_taps(x, torch.tensor([0.011]), taps=["out_3", "out_6", "out_7", "out_12"])
    assert acts["out_3"].shape[-1] == 4 and acts["out_6"].shape[-1] == 8
    assert acts["out_7"].shape[-1] == 16 and acts["out_12"].shape[-1] == 32


def test_tap_names_without_building_match_the_network():
    for preset in preset_names():
        cfg = load_config(preset)["network"]
        net = UNet(**{**cfg, "n_channels": 32})
        assert net.tap_names == tap_names(cfg)


def test_early_exit_gives_the_same_tap_as_a_full_pass():
    torch.manual_seed(0)
    net = UNet(n_channels=32, ch_mults=(1, 2), is_attn=(False, True), n_blocks=1).eval()
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([0.5, 0.1])
    full, acts_full = net.forward_taps(x, t, taps=["out_3"])
    none, acts = net.forward_taps(x, t, taps=["out_3"], need_output=False)
    assert none is None and full is not None
    torch.testing.assert_close(acts["out_3"], acts_full["out_3"])


def test_ddpm_schedule_values():
    d = DDPM()
    s = d.train
    assert float(s["alphabar"][0]) == 1.0
    assert float(s["sqrt_alphabar"][11]) == pytest.approx(0.998903, abs=2e-6)
    assert float(s["sqrt_one_minus_alphabar"][11]) == pytest.approx(0.046835, abs=2e-6)
    assert float(s["sqrt_alphabar"][1000]) == pytest.approx(0.006353, abs=2e-6)
    assert d.sigma_equivalent(21) == pytest.approx(0.079399, abs=2e-6)
    # The DDIM schedule is the official one: 1001 betas with no zero prepended.
    assert float(d.ddim["alphabar"][0]) == pytest.approx(0.9999, abs=1e-7)
    assert float(d.ddim["alphabar"][11]) == pytest.approx(0.997489, abs=2e-6)
    assert d.classifier_levels() == list(range(1, 1000, 50))


def test_edm_sigma_grid_and_index_convention():
    sigmas = karras_sigmas(18, 0.002, 80, 7)
    assert float(sigmas[0]) == pytest.approx(80.000018, abs=1e-6)
    assert float(sigmas[-1]) == 0.0
    e = EDM()
    assert e.sigma(0) == 0.0 and e.sigma(1) == pytest.approx(0.002, rel=1e-5)
    assert e.sigma(4) == pytest.approx(0.059947, abs=1e-6)
    assert e.sigma(18) == pytest.approx(80.000018, abs=1e-5)
    c_skip, c_out, c_in, c_noise = e._coefficients(torch.tensor(e.sigma(4)))
    assert float(c_in) == pytest.approx(1.985778, abs=1e-5)
    assert float(c_noise) == pytest.approx(-0.703572, abs=1e-5)
    assert float(c_skip) == pytest.approx(0.985829, abs=1e-5)
    with pytest.raises(ValueError, match="outside 1..18"):
        e.check_timestep(0)


@pytest.mark.parametrize("name", ["DDPM_ddpm_ch32", "EDM_ddpmpp_ch32"])
def test_official_fixture_features_match(name):
    ckpt = need(FIXTURES / f"{name}.pth")
    ref = np.load(FIXTURES / f"{name}_reference.npz")
    model = load_model(ckpt)  # the YAML beside it is found by name
    images, noise = torch.from_numpy(ref["images"]), torch.from_numpy(ref["noise"])
    t = int(ref["timestep"])
    with torch.no_grad():
        feats = model.features(images, t, noise=noise)
        acts, noisy, denoised = model.forward_pass(images, t, noise=noise, need_denoised=True)
    names = sorted(k[len("feature_"):] for k in ref.files if k.startswith("feature_"))
    assert set(names) == set(model.decoder_taps)
    for tap in names:
        torch.testing.assert_close(feats[tap], torch.from_numpy(ref[f"feature_{tap}"]), atol=1e-4, rtol=0)
    if name.startswith("DDPM"):
        out = model.net(noisy, torch.full((4,), t / 1000.0))
        torch.testing.assert_close(out, torch.from_numpy(ref["net_output"]), atol=1e-4, rtol=0)
    else:
        assert model.framework.sigma(t) == pytest.approx(float(ref["sigma"]), rel=1e-6)
        torch.testing.assert_close(denoised, torch.from_numpy(ref["net_output"]), atol=1e-4, rtol=0)


def test_features_are_noisy_unless_noise_is_given():
    torch.manual_seed(0)
    model = build_model(micro_config()).eval()
    images = torch.rand(3, 3, 32, 32)
    noise = torch.randn(3, 3, 32, 32)
    a = model.features(images, 21, ["out_2"], noise=noise)["out_2"]
    b = model.features(images, 21, ["out_2"], noise=noise)["out_2"]
    c = model.features(images, 21, ["out_2"])["out_2"]
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    normed = model.features(images, 21, ["out_2"], noise=noise, normalize=True)["out_2"]
    torch.testing.assert_close(normed.norm(dim=1), torch.ones(3))
    unpooled = model.features(images, 21, ["out_2"], noise=noise, pool=False)["out_2"]
    assert unpooled.shape == (3, 64, 16, 16)


def test_denoise_inverts_the_forward_process_for_a_perfect_prediction():
    # With the true noise as the network's prediction, DDPM's x0 estimate is exact.
    d = DDPM()
    x0, eps = torch.rand(2, 3, 8, 8) * 2 - 1, torch.randn(2, 3, 8, 8)
    t = torch.tensor([11, 500])
    noisy, _, _ = d.perturb(x0, t, eps)
    torch.testing.assert_close(d.denoised(eps, noisy, t), x0, atol=1e-4, rtol=0)


@pytest.mark.parametrize("framework, sampler, steps", [("ddpm", "ddim", 5), ("ddpm", "ddpm", None),
                                                       ("edm", "heun", 4)])
def test_samplers_return_images_in_range(framework, sampler, steps):
    cfg = micro_config(framework)
    if sampler == "ddpm":
        cfg["diffusion"]["n_T"] = 20  # the ancestral sampler walks every step
    model = build_model(cfg).eval()
    calls = []
    out = model.sample(2, sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(0),
                       callback=lambda i, n: calls.append((i, n)))
    assert out.shape == (2, 3, 32, 32) and calls[-1][0] == calls[-1][1]
    # The images are the sampler's own x_0 mapped from [-1, 1] to [0, 1] and clipped, value for value.
    raw = model.framework.sample(model._net_fn, (2, 3, 32, 32), model.device, sampler=sampler, steps=steps,
                                 generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, ((raw.float() + 1) / 2).clamp(0, 1))
    assert 0 < out.std() and not torch.equal(out, model.sample(2, sampler=sampler, steps=steps,
                                                               generator=torch.Generator().manual_seed(1)))


def test_aug_config_trains_with_labels():
    cfg = micro_config("edm")
    cfg["diffusion"]["augment_prob"] = 0.5
    cfg["network"]["augment_dim"] = 9
    model = build_model(cfg)
    loss = model.loss(torch.rand(4, 3, 32, 32))
    loss.backward()
    assert model.net.time_emb.aug_emb.weight.grad.abs().sum() > 0


def test_baseline_networks_have_the_official_sizes():
    assert trainable(NoiseConditionalWRN(28, 10)) == 38_913_114
    assert trainable(NoisyHead(256, 10)) == 219_146
