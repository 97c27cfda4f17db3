"""A lens on one image: what one (layer, t) feature map sees, pixel by pixel (no Qt; Classify shows it).

- PCA to RGB: the feature map's pixels (h*w rows of C channels) centred and projected on their first three
  principal components (the right singular vectors of the centred matrix), each scaled to 0..1 over the
  image: pixels with alike features get alike colours. Each component's sign is fixed so that its largest
  loading is positive, so that one image gives the same colours every time.
- Correspondence (DIFT-style): the feature of one clicked pixel against every pixel of a second image's
  map, by cosine similarity, both maps upsampled (bilinear) to their images' size first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model import DDAEModel


def feature_map(model: DDAEModel, image: torch.Tensor, timestep: int, layer: str, seed: int = 0) -> torch.Tensor:
    """The unpooled tap `layer` of one image (uint8 (3, H, W) or float in [0, 1]) at t: (C, h, w) float32.

    The noise is one draw seeded by `seed`, so two images looked at together see the same noise.
    """
    batch = image[None].float()
    if image.dtype == torch.uint8:
        batch = batch / 255
    generator = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(batch.shape, generator=generator)
    with torch.no_grad():
        acts, _, _ = model.forward_pass(batch, timestep, [layer], noise=noise)
    return acts[layer][0].float().cpu()


def principal_components(fmap: torch.Tensor, n: int = 3) -> torch.Tensor:
    """The pixels of `fmap` (C, h, w) projected on their first n principal components: (n, h, w), float64.

    Signs fixed so that each component's largest loading (by absolute value) is positive.
    """
    c, h, w = fmap.shape
    pixels = fmap.reshape(c, h * w).T.double()
    pixels = pixels - pixels.mean(dim=0, keepdim=True)
    _, _, vh = torch.linalg.svd(pixels, full_matrices=False)
    components = vh[:n]
    signs = torch.sign(components.gather(1, components.abs().argmax(dim=1, keepdim=True)))
    components = components * torch.where(signs == 0, torch.ones_like(signs), signs)
    projected = pixels @ components.T
    if projected.shape[1] < n:          # fewer channels (or pixels) than components: the rest stay 0
        projected = F.pad(projected, (0, n - projected.shape[1]))
    return projected.T.reshape(n, h, w)


def pca_rgb(fmap: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """An RGB picture (size, size, 3) in 0..1 of the first three components (size: the map's own by default)."""
    components = principal_components(fmap, 3)
    low = components.amin(dim=(1, 2), keepdim=True)
    high = components.amax(dim=(1, 2), keepdim=True)
    rgb = (components - low) / (high - low).clamp(min=1e-12)
    if size is not None and size != rgb.shape[-1]:
        rgb = F.interpolate(rgb[None].float(), size=(size, size), mode="nearest")[0].double()
    return rgb.permute(1, 2, 0).float()


def _upsampled(fmap: torch.Tensor, size: int) -> torch.Tensor:
    if fmap.shape[-1] == size and fmap.shape[-2] == size:
        return fmap.float()
    return F.interpolate(fmap[None].float(), size=(size, size), mode="bilinear", align_corners=False)[0]


def correspondence(source: torch.Tensor, target: torch.Tensor, y: int, x: int, size: int) -> torch.Tensor:
    """Cosine similarity (size, size), -1..1, of the source pixel (y, x) with every pixel of the target.

    Both maps (C, h, w) are upsampled to size x size (their images' size) first; (y, x) is in those pixels.
    """
    if not (0 <= y < size and 0 <= x < size):
        raise ValueError(f"pixel ({y}, {x}) is outside the {size}x{size} image")
    query = _upsampled(source, size)[:, y, x]
    keys = _upsampled(target, size)
    return F.cosine_similarity(keys, query[:, None, None], dim=0)
