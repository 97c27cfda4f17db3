"""The fast protocols' extraction (DDAEModel.fast_forward): close to fp32, scoped, and never the official protocol's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ddae_core import build_model
from ddae_core.engine import device as devices
from ddae_core.engine.checkpoint import load_model
from ddae_core.engine.evaluation.features import extract_features
from ddae_core.engine.evaluation.sources import NetworkSource

from .fixtures import FIXTURES, micro_config, need

# bf16 autocast (GroupNorm in fp32) moves the official fixtures' pooled taps by 1.3e-3..6.1e-3 relative and
# a random network's by up to 1.2e-2 (measured on an AVX512-BF16 CPU); fp32 in channels_last by under 1e-6.
BF16_RTOL = 2e-2


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("name", ["DDPM_ddpm_ch32", "EDM_ddpmpp_ch32"])
def test_fast_features_of_the_official_fixtures_stay_close_to_fp32(name):
    ref = np.load(need(FIXTURES / f"{name}_reference.npz"))
    model = load_model(need(FIXTURES / f"{name}.pth"))
    images, noise, t = torch.from_numpy(ref["images"]), torch.from_numpy(ref["noise"]), int(ref["timestep"])
    with torch.no_grad():
        exact = model.features(images, t, noise=noise)
        with model.fast_forward():
            fast = model.features(images, t, noise=noise)
    tolerance = BF16_RTOL if devices.extraction_amp_dtype(model.device) is not None else 1e-5
    for tap in model.decoder_taps:
        assert fast[tap].dtype == torch.float32
        assert _relative(fast[tap], exact[tap]) < tolerance, tap
        # The reference itself is still met by the plain path, untouched by the fast one before it.
        torch.testing.assert_close(exact[tap], torch.from_numpy(ref[f"feature_{tap}"]), atol=1e-4, rtol=0)


def test_fast_extraction_of_a_split_stays_close_and_fp32_is_exact():
    torch.manual_seed(0)
    model = build_model(micro_config()).eval()
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    kw = dict(batch_size=16, flip=True, crop_padding=4, seed=3)
    exact = extract_features(model, images, 11, model.decoder_taps, **kw)
    fast = NetworkSource(model, model.decoder_taps, "auto").extract(images, 11, **kw)
    fp32 = NetworkSource(model, model.decoder_taps, "fp32").extract(images, 11, **kw)
    tolerance = BF16_RTOL if devices.extraction_amp_dtype(model.device) is not None else 1e-5
    for tap in model.decoder_taps:
        assert _relative(fast[tap], exact[tap]) < tolerance, tap
        torch.testing.assert_close(fp32[tap], exact[tap], atol=1e-5, rtol=1e-4)


def test_fast_forward_leaves_the_model_as_it_found_it():
    model = build_model(micro_config()).eval()
    model.amp_dtype = None
    conv = model.net.image_proj.weight
    with model.fast_forward():
        pass
    assert model.amp_dtype is None
    assert conv.is_contiguous() and model.net.image_proj.weight.is_contiguous()
    assert not any(m._forward_pre_hooks for m in model.net.modules() if isinstance(m, nn.GroupNorm))
    with pytest.raises(RuntimeError), model.fast_forward():
        raise RuntimeError("stopped mid-extraction")
    assert model.amp_dtype is None and model.net.image_proj.weight.is_contiguous()


def test_extraction_precision_per_device(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for off in ("off", "fp32", "none"):
        assert devices.extraction_amp_dtype(cpu, off) is None and devices.extraction_amp_dtype(cuda, off) is None
    monkeypatch.setattr(devices, "cpu_supports_bf16", lambda: True)
    assert devices.extraction_amp_dtype(cpu) == torch.bfloat16
    monkeypatch.setattr(devices, "cpu_supports_bf16", lambda: False)
    assert devices.extraction_amp_dtype(cpu) is None          # bf16 without kernels is slower than fp32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert devices.extraction_amp_dtype(cuda) == torch.float16
    assert devices.extraction_amp_dtype(cuda, "fp16") == torch.float16
    assert devices.extraction_batch_size(cpu) < devices.extraction_batch_size(cuda)
    assert devices.extraction_streams(cuda) == 1


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_streams_give_the_features_of_one_stream_in_image_order(precision):
    """Two extraction threads of one torch thread each: every batch keeps its own seeded augmentation and
    noise, so the split comes out as one stream computes it, row for row (a mixed-up batch would not)."""
    torch.manual_seed(0)
    model = build_model(micro_config()).eval()
    images = torch.randint(0, 256, (70, 3, 32, 32), dtype=torch.uint8)
    kw = dict(batch_size=16, flip=True, crop_padding=4, seed=5)
    threads = torch.get_num_threads()
    seen: list[int] = []
    with model.fast_forward(precision):
        one = extract_features(model, images, 11, model.decoder_taps, **kw)
        three = extract_features(model, images, 11, model.decoder_taps, streams=3,
                                 on_progress=lambda done, _n: seen.append(done), **kw)
    assert torch.get_num_threads() == threads                  # the budget comes back after the streams
    assert len(seen) == 5 and seen == sorted(seen) and seen[-1] == 70   # a count per batch, as each ends
    for tap in model.decoder_taps:
        torch.testing.assert_close(three[tap], one[tap], atol=1e-6, rtol=1e-5)
        assert not torch.equal(three[tap][:16], three[tap][16:32])


def test_a_stop_ends_a_streamed_extraction():
    from ddae_core.engine.evaluation.features import Stopped

    model = build_model(micro_config()).eval()
    images = torch.randint(0, 256, (200, 3, 32, 32), dtype=torch.uint8)
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 3
    threads = torch.get_num_threads()
    with pytest.raises(Stopped):
        extract_features(model, images, 11, model.decoder_taps, batch_size=8, streams=2, stop=stop)
    assert len(calls) == 4 and torch.get_num_threads() == threads


def test_matmul_attention_matches_sdpa_where_it_replaces_it():
    """bf16 forward-only passes on the CPU attend with explicit matmuls; anywhere else it is SDPA itself."""
    import torch.nn.functional as F

    from ddae_core.engine.nets.blocks import attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(4, 2, 64, 32) for _ in range(3))
    exact = F.scaled_dot_product_attention(q, k, v)
    with torch.no_grad():
        fast = attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
        assert torch.equal(attention(q, k, v), exact)           # fp32: SDPA, bit for bit
    assert fast.dtype == torch.bfloat16 and _relative(fast.float(), exact) < 1e-2
    q.requires_grad_(True)
    trained = attention(q.bfloat16(), k.bfloat16(), v.bfloat16())  # with gradients: SDPA's backward
    assert "ScaledDotProduct" in type(trained.grad_fn).__name__
