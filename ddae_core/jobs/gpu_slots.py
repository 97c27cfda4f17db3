"""Device slots for the scheduler: which slots a job needs, which GPUs exist, how busy each slot is.

A slot is one CPU job ('cpu0', 'cpu1', ...) or one GPU ('gpu0', ...). No database, no Qt.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import psutil

log = logging.getLogger(__name__)
_problems_logged: set[str] = set()      # each cause is logged once per process, not once per scheduler
_gpu_problem: str | None = None         # why the last detect_gpus found none (None: it found some)


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
    """CUDA devices as CUDA_VISIBLE_DEVICES tokens for the workers (within our own CUDA_VISIBLE_DEVICES).

    None usable: no GPU slots, and the cause (a CUDA error, no driver, a CPU-only PyTorch) is logged once
    and kept for gpu_problem(), so a GPU job sent to the CPU can say why.
    """
    global _gpu_problem
    level = logging.INFO        # a machine without a GPU or driver is ordinary; a CUDA that raises is not
    try:
        import torch

        count = torch.cuda.device_count()
        if count == 0:
            _gpu_problem = _why_no_cuda(torch)
    except Exception as exc:  # noqa: BLE001 - no usable CUDA means no GPU slots, said once with its cause
        count, _gpu_problem, level = 0, f"CUDA failed: {_first_line(exc)}", logging.WARNING
    if count == 0:
        if _gpu_problem not in _problems_logged:
            _problems_logged.add(_gpu_problem)
            log.log(level, f"no GPU slots: {_gpu_problem}; GPU jobs that allow it run on the CPU")
        return []
    _gpu_problem = None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [t.strip() for t in visible.split(",") if t.strip()][:count]
    return [str(i) for i in range(count)]


def gpu_problem() -> str | None:
    """Why the last detect_gpus() found no GPU (one phrase), or None when it found some."""
    return _gpu_problem


def cpu_fallback_note(gpus: int, problem: str | None) -> str:
    """The line a GPU job's log gets when the queue runs it on the CPU instead."""
    return (f"asked for {gpus} GPU{'s' if gpus > 1 else ''} with --device auto, but this machine has none usable "
            f"({problem or 'no GPU was found'}): running on the CPU")


def _why_no_cuda(torch) -> str:
    if torch.version.cuda is None:
        return "this PyTorch was built without CUDA"
    try:
        torch.cuda.init()           # raises with the cause that device_count() swallows
    except Exception as exc:  # noqa: BLE001 - the cause is the point
        return f"CUDA failed: {_first_line(exc)}"
    return "CUDA found no device"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


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
