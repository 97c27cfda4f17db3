"""EDM's non-leaking geometric augmentation and its 9-dim label, as the `EDM_ddpmpp_aug` run uses it (ddae-spec 3.5).

This behaves as the official `model/augment.py` (NVlabs EDM's AugmentPipe) built with the DDAE config's
multipliers (xflip=1e8, yflip=1, scale=1, rotate_frac=1, aniso=1, translate_frac=1): from the same RNG
state it makes the same draws in the same order, so it returns the same images and labels
(tests/test_augment.py checks both against the official pipe's output). The transforms that config leaves
off (integer rotation and translation, colour) are not implemented.

The label holds the raw draws, as the official network was trained on them: x-flip bit, y-flip bit,
scale draw w (the scale is 2^(0.2 w)), cos(theta) - 1, sin(theta), aniso w cos r, aniso w sin r, and the
translation draws (in units of 0.125 image). Each is 0 where its transform was not drawn. At sampling and
feature extraction the label is absent, which equals all zeros because the label projection has no bias.

The geometric part always runs, even when no transform was drawn (as in the official code, the image is
then only low-pass filtered): reflect-pad by what the transformed corners need, upsample 2x with the sym6
wavelet low-pass, resample bilinearly with zeros outside the padded image, low-pass and decimate 2x, crop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LABEL_DIM = 9

# Low-pass decomposition filter of the sym6 wavelet (12 taps, sums to sqrt(2)): the anti-aliasing filter.
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)
# Half the filter's reach at the 2x resolution, in original pixels: the border kept around the crop.
FILTER_MARGIN = len(SYM6) // 4
XFLIP_MULTIPLIER = 1e8  # the DDAE config's x-flip multiplier: every image is eligible, half are flipped


@dataclass
class Draws:
    """Per-image parameters of one call, each (N,) float32; 0 where the transform was not drawn."""

    xflip: torch.Tensor
    yflip: torch.Tensor
    scale: torch.Tensor        # standard-normal draw; isotropic scale 2^(scale_std * w)
    rotation: torch.Tensor     # radians
    aniso: torch.Tensor        # standard-normal draw; scales 2^(+-aniso_std * w) along the frame at aniso_angle
    aniso_angle: torch.Tensor  # radians
    translate_x: torch.Tensor  # standard-normal draws; shift of translate_std * w image widths/heights
    translate_y: torch.Tensor

    def labels(self) -> torch.Tensor:
        return torch.stack([
            self.xflip, self.yflip, self.scale, self.rotation.cos() - 1, self.rotation.sin(),
            self.aniso * self.aniso_angle.cos(), self.aniso * self.aniso_angle.sin(),
            self.translate_x, self.translate_y,
        ], dim=1).float()


def _matrices(*rows) -> torch.Tensor:
    """(N, 3, 3) from nine entries in row order, each an (N,) tensor or a number."""
    ref = next(e for e in rows if isinstance(e, torch.Tensor))
    entries = [e if isinstance(e, torch.Tensor) else torch.full_like(ref, float(e)) for e in rows]
    return torch.stack(entries, dim=-1).reshape(ref.shape[0], 3, 3)


def _scale(sx, sy) -> torch.Tensor:
    return _matrices(sx, 0, 0, 0, sy, 0, 0, 0, 1)


def _rotate(theta: torch.Tensor) -> torch.Tensor:
    c, s = theta.cos(), theta.sin()
    return _matrices(c, -s, 0, s, c, 0, 0, 0, 1)


def _translate(tx, ty) -> torch.Tensor:
    return _matrices(1, 0, tx, 0, 1, ty, 0, 0, 1)


class AugmentPipe:
    """images (N, C, H, W) in [-1, 1] -> (augmented images, labels (N, 9)).

    p is the per-image probability of each transform (the config's `augment_prob`, 0.12 officially);
    the standard deviations are EDM's defaults.
    """

    def __init__(self, p: float = 0.12, scale_std: float = 0.2, rotate_max: float = 1.0,
                 aniso_std: float = 0.2, aniso_rotate_prob: float = 0.5, translate_std: float = 0.125):
        self.p = float(p)
        self.scale_std, self.rotate_max = float(scale_std), float(rotate_max)
        self.aniso_std, self.aniso_rotate_prob = float(aniso_std), float(aniso_rotate_prob)
        self.translate_std = float(translate_std)

    def draw(self, n: int, device: torch.device) -> Draws:
        """The official draws in the official order: the same torch.rand/randn/randint calls."""
        def chosen(value: torch.Tensor, probability: float) -> torch.Tensor:
            keep = torch.rand(value.shape[-1], device=device) < probability
            return torch.where(keep, value, torch.zeros_like(value))

        xflip = chosen(torch.randint(2, (n,), device=device), XFLIP_MULTIPLIER * self.p)
        yflip = chosen(torch.randint(2, (n,), device=device), self.p)
        scale = chosen(torch.randn(n, device=device), self.p)
        rotation = chosen((torch.rand(n, device=device) * 2 - 1) * (math.pi * self.rotate_max), self.p)
        aniso = torch.randn(n, device=device)
        angle = (torch.rand(n, device=device) * 2 - 1) * math.pi
        aniso = chosen(aniso, self.p)
        angle = chosen(angle, self.aniso_rotate_prob)
        translate = chosen(torch.randn(2, n, device=device), self.p)  # one draw enables both axes
        return Draws(xflip.float(), yflip.float(), scale, rotation, aniso, angle, translate[0], translate[1])

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = images.shape
        d = self.draw(n, images.device)
        images = torch.where(d.xflip.view(-1, 1, 1, 1) == 1, images.flip(3), images)
        images = torch.where(d.yflip.view(-1, 1, 1, 1) == 1, images.flip(2), images)
        return self.warp(images, self.inverse_transform(d, h, w)), d.labels()

    def inverse_transform(self, d: Draws, h: int, w: int) -> torch.Tensor:
        """(N, 3, 3): for each output pixel, where to read in the input, in pixels from the image centre.

        Composed left to right in the official order: scale, rotation, anisotropic scale, translation.
        """
        s = (d.scale * self.scale_std).exp2()
        m = _scale(1 / s, 1 / s)
        m = m @ _rotate(d.rotation)
        a = (d.aniso * self.aniso_std).exp2()
        m = m @ _rotate(-d.aniso_angle) @ _scale(1 / a, a) @ _rotate(d.aniso_angle)
        return m @ _translate(-d.translate_x * (w * self.translate_std), -d.translate_y * (h * self.translate_std))

    @staticmethod
    def warp(images: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        """Apply the per-image inverse maps with sym6 anti-aliasing at 2x resolution (the EDM recipe)."""
        n, c, h, w = images.shape
        dev = images.device
        inverse = inverse.float()

        # Reflect-pad by what the farthest transformed corner needs (one margin for the whole batch).
        cx, cy = (w - 1) / 2, (h - 1) / 2
        corners = torch.tensor([[-cx, cx, cx, -cx], [-cy, -cy, cy, cy], [1.0, 1.0, 1.0, 1.0]], device=dev)
        reach = (inverse @ corners)[:, :2, :].permute(1, 0, 2).flatten(1)            # (xy, N * 4)
        reach = torch.cat([-reach, reach]).amax(dim=1)                                   # left, top, right, bottom
        reach = reach + torch.tensor([2 * FILTER_MARGIN - cx, 2 * FILTER_MARGIN - cy] * 2, device=dev)
        reach = reach.clamp(min=0).minimum(torch.tensor([w - 1.0, h - 1.0] * 2, device=dev))
        left, top, right, bottom = (int(v) for v in reach.ceil().tolist())
        images = F.pad(images, [left, right, top, bottom], mode="reflect")
        inverse = _translate(torch.full((n,), (left - right) / 2, device=dev),
                             torch.full((n,), (top - bottom) / 2, device=dev)) @ inverse

        # Upsample 2x: zero-stuff and low-pass, one separable transposed convolution per axis.
        taps = torch.tensor(SYM6, dtype=images.dtype, device=dev)
        up_pad = (len(SYM6) - 1) // 2  # centres the filter on each stuffed sample, as the official upsampler
        images = F.conv_transpose2d(images, taps.view(1, 1, 1, -1).repeat(c, 1, 1, 1), stride=(1, 2),
                                    padding=(0, up_pad), groups=c)
        images = F.conv_transpose2d(images, taps.view(1, 1, -1, 1).repeat(c, 1, 1, 1), stride=(2, 1),
                                    padding=(up_pad, 0), groups=c)
        # The same map at 2x resolution, where pixel centres sit half a pixel further from the origin.
        ones = torch.ones(n, device=dev)
        inverse = _scale(ones * 2, ones * 2) @ inverse @ _scale(ones / 2, ones / 2)
        inverse = _translate(-ones / 2, -ones / 2) @ inverse @ _translate(ones / 2, ones / 2)

        # Resample onto the cropped output plus the filter's margin, in affine_grid's [-1, 1] coordinates.
        out_h, out_w = 2 * (h + 2 * FILTER_MARGIN), 2 * (w + 2 * FILTER_MARGIN)
        in_h, in_w = images.shape[2], images.shape[3]
        theta = _scale(ones * (2 / in_w), ones * (2 / in_h)) @ inverse \
            @ _scale(1 / (ones * (2 / out_w)), 1 / (ones * (2 / out_h)))
        grid = F.affine_grid(theta[:, :2, :], [n, c, out_h, out_w], align_corners=False)
        images = F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="zeros",
                               align_corners=False)

        # Low-pass and decimate 2x, then crop the margin.
        down_pad = (len(SYM6) - 1) // 2
        images = F.conv2d(images, taps.view(1, 1, 1, -1).repeat(c, 1, 1, 1), stride=(1, 2),
                          padding=(0, down_pad), groups=c)[:, :, :, FILTER_MARGIN:-FILTER_MARGIN]
        images = F.conv2d(images, taps.view(1, 1, -1, 1).repeat(c, 1, 1, 1), stride=(2, 1),
                          padding=(down_pad, 0), groups=c)[:, :, FILTER_MARGIN:-FILTER_MARGIN, :]
        return images
