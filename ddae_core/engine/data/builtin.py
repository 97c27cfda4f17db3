"""builtin:shapes, a generated 10-class 32x32 dataset that needs no download.

Each image is one shape on a textured background. Shape, colour, size, position, rotation, background
texture (gradient, stripes, checker, smooth noise) and pixel noise vary per image, so the class is not
readable from any fixed set of pixels: a linear probe on raw pixels does poorly, while good features do well.

Shapes are signed distance functions (mostly after Inigo Quilez's 2D SDFs), evaluated on a 2x supersampled
grid with a one-subpixel soft edge and average-pooled, which anti-aliases like 4x supersampling at a
quarter of the cost. Everything is vectorised over images; 12,000 images take 1-2 s on two cores.
Parameters are drawn with numpy's PCG64 from (seed, split), so a (seed, split, n) always gives the same
bytes with the same library versions.
"""

from __future__ import annotations

import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from ..cpu_threads import one_torch_thread

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "diamond", "hexagon", "crescent", "heart")
SIZE = 32
SUPERSAMPLE = 2
_CHUNK = 128           # images per tensor op: small enough to stay in cache, which is ~2x faster than big ops
_SPLIT_STREAM = {"train": 1, "test": 2}  # train and test are independent draws from the same seed
_MIN_CONTRAST = 0.3    # least RGB distance (in [0, 1] units) of the shape colour from the mean background


# Signed distance functions in shape-local units (a shape spans about [-1, 1]); negative inside.
def _length(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(x * x + y * y)


def _box(px: torch.Tensor, py: torch.Tensor, bx: float, by: float) -> torch.Tensor:
    qx, qy = px.abs() - bx, py.abs() - by
    return _length(qx.clamp(min=0), qy.clamp(min=0)) + torch.maximum(qx, qy).clamp(max=0)


def _star(px: torch.Tensor, py: torch.Tensor, r: float, n: int, m: float) -> torch.Tensor:
    """n-pointed star with tip radius r; m=2 gives the regular n-gon, larger m sharper points."""
    an, en = math.pi / n, math.pi / m
    acx, acy, ecx, ecy = math.cos(an), math.sin(an), math.cos(en), math.sin(en)
    # Fold the plane into one sector, then measure to one edge.
    bn = torch.remainder(torch.atan2(px, py), 2 * an) - an
    radius = _length(px, py)
    qx = radius * torch.cos(bn) - r * acx
    qy = radius * torch.sin(bn).abs() - r * acy
    t = (-(qx * ecx + qy * ecy)).clamp(0, r * acy / ecy)
    qx, qy = qx + ecx * t, qy + ecy * t
    return _length(qx, qy) * torch.sign(qx)


def _rhombus(px: torch.Tensor, py: torch.Tensor, bx: float, by: float) -> torch.Tensor:
    px, py = px.abs(), py.abs()
    h = (((bx - 2 * px) * bx - (by - 2 * py) * by) / (bx * bx + by * by)).clamp(-1, 1)
    d = _length(px - 0.5 * bx * (1 - h), py - 0.5 * by * (1 + h))
    return d * torch.sign(px * by + py * bx - bx * by)


def _moon(px: torch.Tensor, py: torch.Tensor, d: float, ra: float, rb: float) -> torch.Tensor:
    """Disc of radius ra minus a disc of radius rb shifted by d along x."""
    py = py.abs()
    a = (ra * ra - rb * rb + d * d) / (2 * d)
    b = math.sqrt(max(ra * ra - a * a, 0.0))
    tip = _length(px - a, py - b)
    body = torch.maximum(_length(px, py) - ra, -(_length(px - d, py) - rb))
    return torch.where(d * (px * b - py * a) > d * d * (b - py).clamp(min=0), tip, body)


def _heart(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Heart with its tip at (0, 0) and lobes up to y = 1.1."""
    px = px.abs()
    lobe = _length(px - 0.25, py - 0.75) - math.sqrt(2) / 4
    s = 0.5 * (px + py).clamp(min=0)
    point = torch.sqrt(torch.minimum(px * px + (py - 1) ** 2, (px - s) ** 2 + (py - s) ** 2))
    return torch.where(px + py > 1, lobe, point * torch.sign(px - py))


def _shape_sdf(label: int, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Distance to shape `label`, sized so that every shape reaches about radius 0.9-1."""
    name = SHAPES[label]
    if name == "circle":
        return _length(px, py) - 0.85
    if name == "square":
        return _box(px, py, 0.68, 0.68)
    if name == "triangle":
        return _star(px, py + 0.1, 1.05, 3, 2.0)
    if name == "star":
        return _star(px, py, 1.0, 5, 3.2)
    if name == "cross":
        return torch.minimum(_box(px, py, 0.92, 0.3), _box(px, py, 0.3, 0.92))
    if name == "ring":
        return (_length(px, py) - 0.68).abs() - 0.22
    if name == "diamond":
        # Elongated, so that a rotated square is not a diamond.
        return _rhombus(px, py, 0.55, 1.0)
    if name == "hexagon":
        return _star(px, py, 0.95, 6, 2.0)
    if name == "crescent":
        return _moon(px + 0.2, py, 0.5, 0.85, 0.7)
    return _heart(px / 1.6, py / 1.6 + 0.55) * 1.6


# Rendering.
def _subpixel_grid() -> tuple[torch.Tensor, torch.Tensor]:
    centres = (torch.arange(SIZE * SUPERSAMPLE, dtype=torch.float32) + 0.5) / SUPERSAMPLE
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    return x, y


def _coverage(label: int, cx: torch.Tensor, cy: torch.Tensor, theta: torch.Tensor,
              radius: torch.Tensor) -> torch.Tensor:
    """Fraction of each pixel the shape covers: (B,) parameters in pixels/radians -> (B, SIZE, SIZE)."""
    x, y = _subpixel_grid()
    cx, cy, radius = cx[:, None, None], cy[:, None, None], radius[:, None, None]
    cos, sin = theta.cos()[:, None, None], theta.sin()[:, None, None]
    dx, dy = x - cx, y - cy
    px, py = (cos * dx + sin * dy) / radius, (cos * dy - sin * dx) / radius
    # Distance in subpixels; a linear ramp one subpixel wide is the soft edge.
    distance = _shape_sdf(label, px, py) * (radius * SUPERSAMPLE)
    inside = (0.5 - distance).clamp_(0, 1)
    return F.avg_pool2d(inside[:, None], SUPERSAMPLE)[:, 0]


def _background_mix(p: dict[str, np.ndarray], sl: slice) -> torch.Tensor:
    """Per-image texture weights in [0, 1], (B, SIZE, SIZE): 0 = first background colour, 1 = second."""
    centres = torch.arange(SIZE, dtype=torch.float32) + 0.5 - SIZE / 2
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    angle = torch.from_numpy(p["bg_angle"][sl])[:, None, None]
    u = torch.cos(angle) * x + torch.sin(angle) * y
    v = torch.cos(angle) * y - torch.sin(angle) * x
    scale = torch.from_numpy(p["bg_scale"][sl])[:, None, None]
    phase = torch.from_numpy(p["bg_phase"][sl])[:, None, None]

    gradient = (0.5 + u / (scale * 6)).clamp(0, 1)
    stripes = 0.5 + 0.5 * torch.sin(2 * math.pi * u / scale + phase)
    # A soft checker: tanh keeps its edges band-limited, so it does not alias at 1x.
    checker = 0.5 + 0.5 * torch.tanh(3 * torch.sin(math.pi * u / (scale * 0.6) + phase)
                                     * torch.sin(math.pi * v / (scale * 0.6)))
    coarse = torch.from_numpy(p["bg_noise"][sl])
    noise = F.interpolate(coarse, size=(SIZE, SIZE), mode="bicubic", align_corners=True)[:, 0]
    low, high = noise.amin(dim=(1, 2), keepdim=True), noise.amax(dim=(1, 2), keepdim=True)
    noise = (noise - low) / (high - low).clamp(min=1e-3)

    kind = torch.from_numpy(p["bg_kind"][sl])[:, None, None]
    mix = torch.where(kind == 0, gradient, stripes)
    mix = torch.where(kind == 2, checker, mix)
    return torch.where(kind == 3, noise, mix)


def _draw_parameters(n: int, seed: int, split: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, _SPLIT_STREAM[split]])
    f32 = np.float32
    labels = rng.permutation(np.arange(n) % len(SHAPES))
    radius = rng.uniform(8, 13, n)
    margin = 0.85 * radius  # lets a shape touch the border now and then, never leave the image
    p = {
        "labels": labels.astype(np.int64),
        "radius": radius.astype(f32),
        "cx": rng.uniform(margin, SIZE - margin).astype(f32),
        "cy": rng.uniform(margin, SIZE - margin).astype(f32),
        "theta": rng.uniform(0, 2 * math.pi, n).astype(f32),
        "bg_kind": rng.integers(0, 4, n),
        "bg_angle": rng.uniform(0, 2 * math.pi, n).astype(f32),
        "bg_scale": rng.uniform(6, 14, n).astype(f32),
        "bg_phase": rng.uniform(0, 2 * math.pi, n).astype(f32),
        "bg_noise": rng.random((n, 1, 5, 5), dtype=f32),
        "fg_angle": rng.uniform(0, 2 * math.pi, n).astype(f32),
        "pixel_noise": rng.uniform(0, 0.05, n).astype(f32),
        "torch_seed": rng.integers(0, 2**63 - 1),
    }
    # Background colours: the second near the first, so texture contrast ranges from faint to strong.
    bg1 = rng.random((n, 3))
    bg2 = np.clip(bg1 + rng.normal(0, 0.2, (n, 3)), 0, 1)
    # Shape colour: redraw until it stands off the background, so the class is always visible.
    fg1 = rng.random((n, 3))
    for _ in range(50):
        close = np.linalg.norm(fg1 - (bg1 + bg2) / 2, axis=1) < _MIN_CONTRAST
        if not close.any():
            break
        fg1[close] = rng.random((int(close.sum()), 3))
    fg2 = np.clip(fg1 + rng.normal(0, 0.12, (n, 3)), 0, 1)  # gentle shading across the shape
    for key, value in (("bg1", bg1), ("bg2", bg2), ("fg1", fg1), ("fg2", fg2)):
        p[key] = value.astype(f32)
    return p


def _render(n: int, seed: int, split: str, texture: bool = True) -> tuple[np.ndarray, np.ndarray]:
    p = _draw_parameters(n, seed, split)
    labels = p["labels"]
    coverage = torch.empty((n, SIZE, SIZE))
    images = np.empty((n, 3, SIZE, SIZE), dtype=np.uint8)

    def cover(label: int, index: np.ndarray) -> None:
        part = torch.from_numpy(index)
        coverage[part] = _coverage(label, *(torch.from_numpy(p[k])[part] for k in ("cx", "cy", "theta", "radius")))

    def composite(number: int, sl: slice) -> None:
        rgb = {k: torch.from_numpy(p[k][sl])[:, :, None, None] for k in ("bg1", "bg2", "fg1", "fg2")}
        background = rgb["bg1"] + (rgb["bg2"] - rgb["bg1"]) * _background_mix(p, sl)[:, None] if texture \
            else rgb["bg1"].expand(-1, -1, SIZE, SIZE)
        angle = torch.from_numpy(p["fg_angle"][sl])[:, None, None, None]
        shade = (0.5 + (torch.cos(angle) * x + torch.sin(angle) * y) / SIZE).clamp(0, 1)
        foreground = rgb["fg1"] + (rgb["fg2"] - rgb["fg1"]) * shade
        image = background + (foreground - background) * coverage[sl][:, None]
        # A generator per chunk, so the noise does not depend on which thread gets there first.
        generator = torch.Generator().manual_seed(int(p["torch_seed"]) + number)
        sigma = torch.from_numpy(p["pixel_noise"][sl])[:, None, None, None]
        image += sigma * torch.randn(image.shape, generator=generator)
        images[sl] = image.mul_(255).round_().clamp_(0, 255).to(torch.uint8).numpy()

    centres = torch.arange(SIZE, dtype=torch.float32) + 0.5 - SIZE / 2
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    # Shape coverage one class at a time (each class has its own distance function), then colours.
    by_class = [(label, index[start:start + _CHUNK]) for label in range(len(SHAPES))
                for index in [np.flatnonzero(labels == label)] for start in range(0, len(index), _CHUNK)]
    chunks = [slice(start, min(start + _CHUNK, n)) for start in range(0, n, _CHUNK)]
    with one_torch_thread(), ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda job: cover(*job), by_class))  # list() re-raises any error from a worker
        list(pool.map(lambda job: composite(*job), enumerate(chunks)))
    return images, labels


@functools.lru_cache(maxsize=4)
def _cached(n: int, seed: int, split: str, texture: bool) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = _render(n, seed, split, texture)
    return torch.from_numpy(images), torch.from_numpy(labels)


def generate_shapes(n: int, seed: int, split: str, texture: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 (n, 3, 32, 32), int64 (n,)) for a split; cached per process, returned as fresh copies.

    texture=False: each background is its first colour alone (same shapes, colours and noise otherwise).
    """
    images, labels = _cached(int(n), int(seed), split, bool(texture))
    # Copies, so a caller that edits its tensors in place cannot change what the next caller gets.
    return images.clone(), labels.clone()


@functools.lru_cache(maxsize=4)
def _cached_masks(n: int, seed: int, split: str) -> torch.Tensor:
    p = _draw_parameters(n, seed, split)
    masks = torch.zeros((n, SIZE, SIZE), dtype=torch.uint8)
    with one_torch_thread():
        for label in range(len(SHAPES)):
            index = np.flatnonzero(p["labels"] == label)
            for start in range(0, len(index), _CHUNK):
                part = torch.from_numpy(index[start:start + _CHUNK])
                coverage = _coverage(label, *(torch.from_numpy(p[k])[part] for k in ("cx", "cy", "theta", "radius")))
                masks[part] = (coverage >= 0.5).to(torch.uint8) * (label + 1)
    return masks


def generate_masks(n: int, seed: int, split: str) -> torch.Tensor:
    """Each pixel's class of generate_shapes' images, uint8 (n, 32, 32): 0 background, 1 + the shape's label
    where the shape covers at least half the pixel. The same parameters draw both, so masks and images agree
    (texture changes only the background's colours)."""
    return _cached_masks(int(n), int(seed), split).clone()
