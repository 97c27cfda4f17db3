"""Non-leaking geometric augmentation for the `EDM_ddpmpp_aug` config, with a 9-dim label (ddae-spec 3.5).

Our own implementation of the EDM recipe (x-flip on every image, y-flip, isotropic scale, rotation,
anisotropic scale and translation each enabled per image with probability p), applied as one affine
warp per image with reflection padding and bilinear sampling. NVlabs additionally low-pass filters
with a sym6 wavelet around the warp; we do not, so edges alias slightly more at the same p.
The label tells the network what was done; at sampling and feature extraction it is absent,
which equals an all-zero label because the label projection has no bias.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LABEL_DIM = 9


def _rotation(theta: torch.Tensor) -> torch.Tensor:
    c, s = theta.cos(), theta.sin()
    m = torch.zeros(theta.shape[0], 3, 3, device=theta.device)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1], m[:, 2, 2] = c, -s, s, c, 1
    return m


def _scaling(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = torch.zeros(sx.shape[0], 3, 3, device=sx.device)
    m[:, 0, 0], m[:, 1, 1], m[:, 2, 2] = sx, sy, 1
    return m


class AugmentPipe:
    def __init__(self, p: float = 0.12, scale_std: float = 0.2, rotate_max: float = 1.0,
                 aniso_std: float = 0.2, aniso_rotate_prob: float = 0.5, translate_std: float = 0.125):
        self.p = float(p)
        self.scale_std, self.rotate_max = scale_std, rotate_max
        self.aniso_std, self.aniso_rotate_prob, self.translate_std = aniso_std, aniso_rotate_prob, translate_std

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, C, H, W) in [-1, 1] -> (augmented images, labels (B, 9))."""
        b, dev = images.shape[0], images.device
        zeros = torch.zeros(b, device=dev)

        def enabled() -> torch.Tensor:
            return (torch.rand(b, device=dev) < self.p).float()

        xflip = torch.randint(0, 2, (b,), device=dev).float()
        yflip = torch.randint(0, 2, (b,), device=dev).float() * enabled()
        scale_w = torch.randn(b, device=dev) * self.scale_std * enabled()
        theta = (torch.rand(b, device=dev) * 2 - 1) * math.pi * self.rotate_max * enabled()
        aniso_w = torch.randn(b, device=dev) * self.aniso_std * enabled()
        aniso_r = (torch.rand(b, device=dev) * 2 - 1) * math.pi
        aniso_r = torch.where(torch.rand(b, device=dev) < self.aniso_rotate_prob, aniso_r, zeros)
        translate = torch.randn(b, 2, device=dev) * self.translate_std * enabled()[:, None]

        # Forward transform in normalised image coordinates, composed in EDM's order.
        m = _scaling(1 - 2 * xflip, 1 - 2 * yflip)
        m = _scaling(2 ** scale_w, 2 ** scale_w) @ m
        m = _rotation(theta) @ m
        m = _rotation(aniso_r) @ _scaling(2 ** aniso_w, 2 ** -aniso_w) @ _rotation(-aniso_r) @ m
        shift = torch.eye(3, device=dev).repeat(b, 1, 1)
        shift[:, 0, 2], shift[:, 1, 2] = 2 * translate[:, 0], 2 * translate[:, 1]
        m = shift @ m

        # grid_sample wants, for each output pixel, where to read in the input: the inverse map.
        inverse = torch.linalg.inv(m)[:, :2, :]
        grid = F.affine_grid(inverse, list(images.shape), align_corners=False)
        warped = F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="reflection",
                               align_corners=False)
        labels = torch.stack([
            xflip, yflip, scale_w, theta.cos() - 1, theta.sin(),
            aniso_w * aniso_r.cos(), aniso_w * aniso_r.sin(), translate[:, 0], translate[:, 1],
        ], dim=1)
        return warped, labels
