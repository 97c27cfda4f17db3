"""The official DiT preprocessing of images before the VAE (`DiT/vae_preprocessing.py` of FutureXiang/ddae).

Its training transform is torchvision's [RandomHorizontalFlip, RandomCrop(native size, padding 4),
Resize(256), ToTensor] on PIL images: flip and crop at the dataset's own size (32 for CIFAR-10, 64 for
Tiny-ImageNet), then a bilinear resize to 256 whose result PIL rounds to whole 8-bit values. The test
transform is [Resize(256), ToTensor]. Here the same steps run as tensor ops on a batch: the flip and crop of
`data.augment_batch` on the CPU (drawn from a CPU generator, so a seed means the same views on any device),
then an antialiased bilinear resize, on the VAE's device, rounded to multiples of 1/255 as PIL's is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import augment_batch

CROP_PADDING = 4            # RandomCrop(RES, 4): zero padding, at the dataset's own resolution
RESOLUTION = 256            # Resize(256): DiT-XL/2-256's input, 32x32 latents through the SD VAE


def native_views(images: torch.Tensor, *, augment: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 (B, 3, H, W) in [0, 1] on the CPU, flipped and cropped when `augment`.

    generator: a CPU generator; each image draws its flip, then the crop's row and column offsets.
    """
    images = images.cpu()
    if not augment:
        return images.float().div_(255)
    return augment_batch(images, flip=True, crop_padding=CROP_PADDING, generator=generator)


def resize_views(views01: torch.Tensor, resolution: int = RESOLUTION) -> torch.Tensor:
    """float (B, 3, H, W) in [0, 1] -> (B, 3, resolution, resolution) on the same device, in steps of 1/255."""
    if views01.shape[-2:] == (resolution, resolution):
        return views01
    scaled = F.interpolate(views01 * 255, size=(resolution, resolution), mode="bilinear", antialias=True,
                           align_corners=False)
    return scaled.round_().clamp_(0, 255).div_(255)


def train_view(images: torch.Tensor, *, resolution: int = RESOLUTION, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (B, 3, H, W) -> one augmented view, float32 (B, 3, resolution, resolution) in [0, 1] on `device`."""
    return resize_views(native_views(images, augment=True, generator=generator).to(device), resolution)


def eval_view(images: torch.Tensor, *, resolution: int = RESOLUTION,
              device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (B, 3, H, W) -> the un-augmented view of the test split, float32 (B, 3, resolution, resolution)
    in [0, 1] on `device`."""
    return resize_views(native_views(images, augment=False).to(device), resolution)
