"""Reading one user-supplied image file for classification, with one sentence for whatever is wrong.

Refused (an `ImageFileError`): a missing file, a file that is not an image, a truncated image, one
larger than MAX_PIXELS. Accepted with a note: grayscale (converted to RGB), transparency (composited
on white) and a size other than the model's (resized, centre-cropped to a square first).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import UserError

MAX_PIXELS = 40_000_000


class ImageFileError(UserError):
    pass


@dataclass
class LoadedImage:
    path: Path
    image: torch.Tensor                  # float32 (3, R, R) in [0, 1]
    original_size: tuple[int, int]       # (width, height)
    notes: list[str] = field(default_factory=list)


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise ImageFileError(f"{path} does not exist.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            if img.width * img.height > MAX_PIXELS:
                raise ImageFileError(f"{path.name} is {img.width}x{img.height} pixels, too large to classify; "
                                     "use an image under 40 megapixels.")
            img.load()
    except ImageFileError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageFileError(f"{path.name} is not an image PIL can read; use a PNG, JPEG, BMP or WebP file.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageFileError(f"{path.name} is damaged or truncated ({str(exc).rstrip('.')}); "
                             "re-save or re-download it.") from None
    return img


def load_image(path: str | Path, resolution: int) -> LoadedImage:
    path = Path(path)
    img = _open(path)
    notes = []
    size = img.size
    grayscale = img.mode in ("L", "1", "I", "I;16", "F", "LA")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        notes.append("transparent areas were filled with white")
    if grayscale:
        notes.append("grayscale, converted to RGB")
    img = img.convert("RGB")
    w, h = img.size
    if (w, h) != (resolution, resolution):
        side = min(w, h)
        if w != h:
            left, top = (w - side) // 2, (h - side) // 2
            img = img.crop((left, top, left + side, top + side))
            notes.append(f"centre-cropped from {w}x{h} to {side}x{side}")
        img = img.resize((resolution, resolution), Image.Resampling.BICUBIC, reducing_gap=2.0)
        notes.append(f"resized from {side}x{side} to {resolution}x{resolution}, the model's size")
    array = np.asarray(img, dtype=np.float32) / 255.0
    return LoadedImage(path, torch.from_numpy(array).permute(2, 0, 1).contiguous(), size, notes)
