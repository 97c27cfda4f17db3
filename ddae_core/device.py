"""Device and precision choices, made once per job: CUDA when asked for or available, else the CPU."""

from __future__ import annotations

import os

import torch

from .errors import UserError


def resolve_device(request: str | None = "auto") -> torch.device:
    """auto | cpu | cuda | cuda:N -> a torch.device; one sentence when CUDA is asked for but absent."""
    request = (request or "auto").lower()
    if request == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if request == "cpu":
        return torch.device("cpu")
    if request.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError("CUDA was requested but no GPU is visible to PyTorch; use --device cpu or --device auto.")
        if request == "cuda" and "LOCAL_RANK" in os.environ:
            return torch.device(f"cuda:{int(os.environ['LOCAL_RANK'])}")
        return torch.device(request)
    raise UserError(f"Device {request!r} is not one of auto, cpu, cuda; pick one of those.")


def amp_dtype_for(device: torch.device, request: str = "auto") -> torch.dtype | None:
    """Mixed precision on CUDA only: bf16 where the GPU supports it, else fp16 (which needs a GradScaler)."""
    if device.type != "cuda" or request in ("off", "fp32", "none"):
        return None
    if request == "fp16":
        return torch.float16
    if request in ("bf16", "auto") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads)"
