"""EDM augmentation (ddae-spec 3.5) against the official AugmentPipe's output for fixed images and seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddae_core.engine.diffusion.augment import LABEL_DIM, AugmentPipe

from .fixtures import FIXTURES, need


@pytest.mark.parametrize("key, p", [("p012", 0.12), ("p1", 1.0)])
def test_augment_pipe_reproduces_the_official_images_and_labels(key, p):
    ref = np.load(need(FIXTURES / "EDM_augment_reference.npz"))
    torch.manual_seed(1234)
    images, labels = AugmentPipe(p=p)(torch.from_numpy(ref["images"]))
    assert labels.shape == (8, LABEL_DIM) and labels.dtype == torch.float32
    # Raw draws, official signs: no rescaling of the scale/aniso/translation labels.
    torch.testing.assert_close(labels, torch.from_numpy(ref[f"{key}_labels"]), atol=1e-5, rtol=0)
    # Reflect-then-zero padding and the sym6 filter; at p=0.12 no warp was drawn, yet the images still pass the filters.
    torch.testing.assert_close(images, torch.from_numpy(ref[f"{key}_output"]), atol=1e-5, rtol=0)


def test_augment_pipe_flips_half_the_images_and_nothing_else_is_drawn_at_tiny_p():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 16, 16) * 2 - 1
    out, labels = AugmentPipe(p=1e-6)(x)   # x-flip's multiplier of 1e8 still makes every image eligible
    flipped = labels[:, 0] == 1
    assert 10 < int(flipped.sum()) < 54
    assert labels[:, 1:].abs().sum() == 0
    # An unwarped image passes only the sym6 up/down filters, which nearly reconstruct it.
    expected = torch.where(flipped.view(-1, 1, 1, 1), x.flip(3), x)
    assert (out - expected).abs().max() < 1e-3
