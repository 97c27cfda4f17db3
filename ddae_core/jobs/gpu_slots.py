"""Device slots for the scheduler: which slots a job needs, which GPUs exist, how busy each slot is.

A slot is one CPU job ('cpu0', 'cpu1', ...) or one GPU ('gpu0', ...). No database, no Qt.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil


@dataclass(frozen=True, slots=True)
class SlotState:
    """One device slot as the Queue view shows it."""

    id: str                          # 'cpu0', 'gpu0', ...
    kind: str                        # 'cpu' | 'gpu'
    run: str | None                  # the run holding it
    utilisation: float | None        # percent: the GPU's (NVML), or the worker's CPU use on a CPU slot
    memory_used_mb: float | None     # the GPU's memory in use, or the worker's resident memory
    memory_total_mb: float | None


class NeverFits(Exception):
    """A queued job that this machine can never run; str() is the sentence it fails with."""


def slots_needed(run_id: str, device_request: str, gpus: int, n_gpu: int, n_cpu: int) -> tuple[str, int]:
    """('cpu', 1) or ('gpu', K) for a job; NeverFits when it cannot run with n_gpu GPUs and n_cpu CPU slots.

    cpu, or gpus=0 (unless cuda): a CPU slot. cuda: at least one GPU. auto with gpus >= 1: that many GPUs,
    or, asking for one, a CPU slot on a machine without GPUs (several GPUs asked for never quietly mean the CPU).
    """
    gpus = max(int(gpus), 1) if device_request == "cuda" else int(gpus)
    if device_request != "cpu" and gpus > 0 and n_gpu:
        if gpus > n_gpu:
            raise NeverFits(f"Run {run_id} asks for {gpus} GPUs but this machine has {n_gpu}; "
                            f"resume it with `ddae queue resume {run_id} --gpus {n_gpu}`.")
        return "gpu", gpus
    if device_request == "auto" and gpus > 1:
        raise NeverFits(f"Run {run_id} asks for {gpus} GPUs but this machine has none; resume it with "
                        f"`ddae queue resume {run_id} --gpus 0` to run it on the CPU.")
    if device_request == "cuda":
        raise NeverFits(f"Run {run_id} asks for CUDA but this machine has no GPU visible to PyTorch; "
                        "launch it again with --device cpu or --device auto.")
    if not n_cpu:
        raise NeverFits(f"Run {run_id} needs a CPU slot but this scheduler has none; "
                        "start the scheduler with --cpu-slots 1 or more.")
    return "cpu", 1


def detect_gpus() -> list[str]:
    """CUDA devices as CUDA_VISIBLE_DEVICES tokens for the workers (within our own CUDA_VISIBLE_DEVICES)."""
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no usable CUDA means no GPU slots
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [t.strip() for t in visible.split(",") if t.strip()][:count]
    return [str(i) for i in range(count)]


class GpuMeter:
    """GPU utilisation and memory through pynvml when it is installed; no numbers otherwise.

    A token that is a number is taken as the NVML index (set CUDA_DEVICE_ORDER=PCI_BUS_ID so that CUDA
    and NVML count GPUs alike); a GPU-... token as its UUID.
    """

    def __init__(self):
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml = pynvml
        except Exception:  # noqa: BLE001 - optional
            self.nvml = None

    def read(self, token: str) -> tuple[float | None, float | None, float | None]:
        """(utilisation %, memory used MB, memory total MB), or Nones when unknown."""
        if self.nvml is None:
            return None, None, None
        try:
            nv = self.nvml
            handle = (nv.nvmlDeviceGetHandleByIndex(int(token)) if token.isdigit()
                      else nv.nvmlDeviceGetHandleByUUID(token))
            util = nv.nvmlDeviceGetUtilizationRates(handle).gpu
            mem = nv.nvmlDeviceGetMemoryInfo(handle)
            return float(util), mem.used / 2**20, mem.total / 2**20
        except Exception:  # noqa: BLE001 - a GPU that cannot be read shows no numbers
            return None, None, None


class CpuMeter:
    """CPU use (percent since the last reading) and resident memory of worker process trees."""

    def __init__(self):
        self._procs: dict[int, psutil.Process] = {}

    def read(self, proc: psutil.Process) -> tuple[float | None, float | None]:
        try:
            procs = [proc, *proc.children(recursive=True)]     # torchrun's ranks are its children
            cpu = rss = 0.0
            for p in procs:
                meter = self._procs.setdefault(p.pid, p)        # cpu_percent needs the same object each time
                cpu += meter.cpu_percent(None)
                rss += p.memory_info().rss
            alive = {p.pid for p in procs}
            for pid in [pid for pid in self._procs if pid not in alive and not psutil.pid_exists(pid)]:
                del self._procs[pid]
            return cpu, rss / 2**20
        except psutil.Error:
            return None, None
