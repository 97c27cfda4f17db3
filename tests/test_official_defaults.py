"""Defaults the official code sets: EMA warm-up copies, CUDA mixed precision, the WRN baseline's schedule."""

from __future__ import annotations

import torch

from ddae_core import build_model
from ddae_core.ema import EMA

from .conftest import micro_config


def test_ema_copies_at_the_first_two_updates_then_warms_up_as_ema_pytorch():
    torch.manual_seed(0)
    model = build_model(micro_config("ddpm"))
    ema = EMA(model, decay=0.9999)
    expected = None
    for k in range(1, 6):
        with torch.no_grad():
            for p in model.net.parameters():
                p.add_(torch.randn_like(p) * 0.1)
        live = [p.detach().clone() for p in model.net.parameters()]
        ema.update(model)
        # ema-pytorch 0.2.x (update_after_step=0): update 1 copies (step <= update_after_step), update 2
        # initialises by copying and lerps the copy onto itself; from update k = 3 the decay is 1 - k^(-2/3).
        if k <= 2:
            expected = live
            assert ema.current_decay() == 0.0
        else:
            decay = 1 - k ** (-2 / 3)
            assert abs(ema.current_decay() - decay) < 1e-12
            expected = [e + (w - e) * (1 - decay) for e, w in zip(expected, live)]
        for shadow, want in zip(ema.model.net.parameters(), expected):
            torch.testing.assert_close(shadow, want, atol=1e-6, rtol=1e-6)
