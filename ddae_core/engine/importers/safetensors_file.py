"""A strict reader of the safetensors format (8-byte header length, a JSON header, one byte buffer).

Written here rather than taken from the `safetensors` package so that a file whose header lies (offsets
outside the buffer, overlapping tensors, a byte count that does not fit the shape) is refused in one
sentence before any tensor is built, and so that reading one needs torch only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from ..errors import CheckpointError

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
MAX_HEADER_BYTES = 100_000_000     # the format's own limit


def read_header(path: Path) -> tuple[dict[str, dict], int]:
    """({tensor name: {dtype, shape, data_offsets}}, where the byte buffer starts), every entry checked."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CheckpointError(f"Weights file {path} is too short to be a safetensors file; re-download it.")
        length = int.from_bytes(head, "little")
        if not 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
            raise CheckpointError(f"Weights file {path} is truncated or not a safetensors file (its header length "
                                  f"{length} does not fit its {size} bytes); re-download it.")
        try:
            header = json.loads(fh.read(length))
        except (UnicodeDecodeError, ValueError):
            raise CheckpointError(f"Weights file {path} has a damaged header (not JSON); re-download it.") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"Weights file {path} has a damaged header (not a mapping); re-download it.")
    header.pop("__metadata__", None)
    start, buffer = 8 + length, size - 8 - length
    spans = []
    for name, entry in header.items():
        spans.append((*_check_entry(path, name, entry, buffer), name))
    spans.sort()
    for (_, end, first), (begin, _, second) in zip(spans, spans[1:]):
        if begin < end:
            raise CheckpointError(f"Weights file {path} is damaged: tensors {first} and {second} overlap; "
                                  "re-download it.")
    return header, start


def _check_entry(path: Path, name: str, entry, buffer: int) -> tuple[int, int]:
    bad = f"Weights file {path} is damaged: the header's entry for {name}"
    if not isinstance(entry, dict) or entry.get("dtype") not in DTYPES:
        raise CheckpointError(f"{bad} has no known dtype; re-download it.")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                              for n in shape):
        raise CheckpointError(f"{bad} has no valid shape; re-download it.")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= buffer):
        raise CheckpointError(f"{bad} points outside the file's {buffer} data bytes (the file is truncated or "
                              "its header is wrong); re-download it.")
    nbytes = math.prod(shape) * DTYPES[entry["dtype"]].itemsize
    if offsets[1] - offsets[0] != nbytes:
        raise CheckpointError(f"{bad} claims shape {shape} ({nbytes} bytes) but spans {offsets[1] - offsets[0]} "
                              "bytes; re-download it.")
    return offsets[0], offsets[1]


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, on the CPU; CheckpointError naming the file if it is damaged."""
    header, start = read_header(path)
    data = path.read_bytes()[start:]
    out = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = DTYPES[entry["dtype"]]
        raw = bytearray(data[begin:end])    # a copy, so the tensors own their (writable) memory
        flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        out[name] = flat.reshape(entry["shape"])
    return out
