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


def printable(text: str | Path) -> str:
    """`text` as it can be shown on one line: control characters (a newline in a file name) escaped as \\n."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(text))


@dataclass
class LoadedImage:
    path: Path
    image: torch.Tensor                  # float32 (3, R, R) in [0, 1]
    original_size: tuple[int, int]       # (width, height)
    notes: list[str] = field(default_factory=list)


_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def to_8bit(img: Image.Image) -> Image.Image:
    """A 16-bit grayscale image as 8-bit "L"; any other image unchanged.

    PIL's convert("RGB") clips 16-bit values at 255 instead of scaling them, so a mid-gray 16-bit PNG
    became white. Mode "I" (32-bit integers; older Pillows open 16-bit PNGs so) is taken as 16-bit
    when a value exceeds 255.
    """
    if img.mode not in (*_SIXTEEN_BIT_MODES, "I"):
        return img
    values = np.asarray(img).astype(np.int64)
    if img.mode == "I" and values.max(initial=0) <= 255:
        return Image.fromarray(values.clip(0, 255).astype(np.uint8), "L")
    return Image.fromarray(((values.clip(0, 65535) + 128) // 257).astype(np.uint8), "L")


def _open(path: Path) -> Image.Image:
    try:
        return _read(path)
    except ImageFileError as exc:       # one line, whatever the file's name holds
        raise ImageFileError(printable(str(exc))) from None


def _read(path: Path) -> Image.Image:
    if path.is_dir():
        raise ImageFileError(f"{path} is a folder, not an image file; give the image files in it.")
    if not path.exists():
        raise ImageFileError(f"{path} does not exist.")
    if not path.is_file():      # a FIFO would block the read for ever, /dev/zero never end
        raise ImageFileError(f"{path} is not a regular file (a pipe, a device or a socket); give an image file.")
    too_large = ImageFileError(f"{path.name} is too large to classify (over {MAX_PIXELS // 1_000_000} megapixels); "
                               "use a smaller image.")
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
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):   # PIL's own size limit, at open
        raise too_large from None
    except UnidentifiedImageError:
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
    grayscale = img.mode in ("L", "1", "I", *_SIXTEEN_BIT_MODES, "F", "LA")
    img = to_8bit(img)
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
