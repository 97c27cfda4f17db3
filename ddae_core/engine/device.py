"""Device and precision choices, made once per job: CUDA when asked for or available, else the CPU."""

from __future__ import annotations

import os

import torch

from .cpu_threads import threads_label
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


def cpu_supports_bf16() -> bool:
    """oneDNN has fast bf16 kernels here (AVX512-BF16 or AMX); elsewhere bf16 on the CPU is slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def amp_dtype_for(device: torch.device, request: str = "auto", *, cuda_bf16: bool | None = None) -> torch.dtype | None:
    """The autocast dtype for a job, or None for fp32.

    CUDA: `auto` (and `fp16`) is fp16 autocast with a GradScaler, as the official runs (`--use_amp`);
    `bf16` is bf16 where the GPU supports it (`cuda_bf16`, asked of torch when None), else fp16.
    CPU: fp32 unless `bf16` is asked for and the CPU has bf16 kernels (bench.train_throughput measures
    about 1.2x for tiny-ddpm on an AMX CPU); `auto` stays fp32 on the CPU, where it is not always faster.
    """
    request = (request or "auto").lower()
    if request in ("off", "fp32", "none"):
        return None
    if device.type == "cpu":
        return torch.bfloat16 if request == "bf16" and cpu_supports_bf16() else None
    if device.type != "cuda":
        return None
    if request == "bf16":
        supported = torch.cuda.is_bf16_supported() if cuda_bf16 is None else cuda_bf16
        return torch.bfloat16 if supported else torch.float16
    return torch.float16


def extraction_amp_dtype(device: torch.device, request: str | None = "auto") -> torch.dtype | None:
    """The autocast dtype for forward-only feature extraction (no gradients, no scaler), or None for fp32.

    `auto`: bf16 on CPUs with bf16 kernels (with channels_last and GroupNorm in fp32, 1.4x an eager fp32
    forward at the same batch on two AVX512-BF16 cores for tiny-ddpm, 2.3x with the extraction batch size and
    streams below: `python -m bench.features`), bf16 on CUDA where supported, else fp16.
    Pooled features move by 2e-3 to 1e-2 relative; `off`/`fp32` extracts in fp32.
    """
    request = (request or "auto").lower()
    if request in ("off", "fp32", "none"):
        return None
    if device.type == "cpu":
        return torch.bfloat16 if request in ("auto", "bf16") and cpu_supports_bf16() else None
    if device.type != "cuda":
        return None
    if request == "fp16":
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def extraction_channels_last(device: torch.device) -> bool:
    """channels_last where it measured faster for extraction: the CPU (1.25x in fp32, and bf16 convolutions
    are only fast in it). Not yet measured on CUDA, where GroupNorm may convert back: off there."""
    return device.type == "cpu"


def extraction_batch_size(device: torch.device) -> int:
    """Images per forward-only batch: 32 keeps a CPU core's caches warm (tiny-ddpm in two streams of one
    thread: 1.3x batches of 128, 1.03x batches of 64); a GPU wants more in flight."""
    return 32 if device.type == "cpu" else 512


def extraction_streams(device: torch.device) -> int:
    """Forward-only batches in flight at once, each on one torch thread: the CPU's thread budget (the job's
    slot), as its many small operations (GroupNorm, SiLU, casts at 8x8 to 32x32) scale poorly across
    threads; one on CUDA, where a batch already fills the device."""
    return max(1, torch.get_num_threads()) if device.type == "cpu" else 1


def needs_grad_scaler(amp_dtype: torch.dtype | None) -> bool:
    """fp16 autocast trains with loss scaling (the official GradScaler); bf16 and fp32 have the range to go without."""
    return amp_dtype == torch.float16


def grad_scaler_for(device: torch.device, amp_dtype: torch.dtype | None) -> torch.amp.GradScaler | None:
    return torch.amp.GradScaler(device.type) if needs_grad_scaler(amp_dtype) else None


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({threads_label(torch.get_num_threads())})"
