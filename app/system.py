"""The system strip: CPU and memory of the machine and of the run's worker, and GPU use where present.

Sampled once a second by the window's clock. GPU figures come from NVML (pynvml) when it is
installed, else from `nvidia-smi` run in the background; never from a CUDA context of our own,
which would take hundreds of MB of the GPU just to draw a bar (torch.cuda is read only if this
process had initialised CUDA anyway).
"""

from __future__ import annotations

import logging
import shutil
import socket
import sys
from dataclasses import dataclass

import psutil
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

log = logging.getLogger(__name__)

GB = 1 << 30


@dataclass(frozen=True)
class GpuSample:
    index: int
    name: str
    utilization: float | None      # percent, None when unknown
    used: int                      # bytes
    total: int


@dataclass(frozen=True)
class SystemSample:
    cpu: float                     # percent of all cores
    memory_used: int
    memory_total: int
    gpus: tuple[GpuSample, ...]
    job_cpu: float | None          # percent of one core (can exceed 100), None without a local pid
    job_memory: int | None         # resident bytes


class GpuProbe:
    """NVML if importable; else `nvidia-smi`, run asynchronously (QProcess) so the GUI never waits; else nothing."""

    QUERY = ["--query-gpu=index,name,utilization.gpu,memory.used,memory.total", "--format=csv,noheader,nounits"]

    def __init__(self):
        self._nvml = None
        self._smi = None
        self._smi_process = None
        self._last: tuple[GpuSample, ...] = ()
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
        except Exception:  # noqa: BLE001 - not installed or no driver: fall back
            self._smi = shutil.which("nvidia-smi")

    def sample(self) -> tuple[GpuSample, ...]:
        if self._nvml is not None:
            try:
                return self._from_nvml()
            except Exception:  # noqa: BLE001 - a driver hiccup: show nothing this second
                return ()
        if self._smi:
            self._ask_smi()
            return self._last
        torch = sys.modules.get("torch")
        if torch is None or not torch.cuda.is_initialized():
            return ()
        out = []
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            out.append(GpuSample(i, torch.cuda.get_device_name(i), None, total - free, total))
        return tuple(out)

    def _ask_smi(self) -> None:
        """Start one nvidia-smi query unless one is still running; its answer shows on the next sample."""
        from PySide6.QtCore import QProcess

        if self._smi_process is not None and self._smi_process.state() != QProcess.ProcessState.NotRunning:
            return
        process = QProcess()
        process.finished.connect(lambda *_: self._read_smi(process))
        process.start(self._smi, self.QUERY)
        self._smi_process = process

    def _read_smi(self, process) -> None:
        out = []
        for line in bytes(process.readAllStandardOutput()).decode(errors="replace").splitlines():
            parts = [p.strip() for p in line.split(",")]
            try:
                index, name, util, used, total = parts
                out.append(GpuSample(int(index), name, float(util) if util.replace(".", "").isdigit() else None,
                                     int(float(used) * 2**20), int(float(total) * 2**20)))
            except ValueError:
                continue
        self._last = tuple(out)

    def _from_nvml(self) -> tuple[GpuSample, ...]:
        nv = self._nvml
        out = []
        for i in range(nv.nvmlDeviceGetCount()):
            handle = nv.nvmlDeviceGetHandleByIndex(i)
            name = nv.nvmlDeviceGetName(handle)
            memory = nv.nvmlDeviceGetMemoryInfo(handle)
            util = nv.nvmlDeviceGetUtilizationRates(handle).gpu
            out.append(GpuSample(i, name.decode() if isinstance(name, bytes) else str(name), float(util),
                                 int(memory.used), int(memory.total)))
        return tuple(out)


class SystemMonitor:
    """Takes samples; follow(pid, host) adds the run's worker process when it runs on this machine."""

    def __init__(self):
        self.gpu = GpuProbe()
        self._proc: psutil.Process | None = None
        self._pid: int | None = None
        psutil.cpu_percent(None)        # the first call only starts the interval

    def follow(self, pid: int | None, host: str | None) -> None:
        if pid == self._pid:
            return
        self._pid, self._proc = pid, None
        if pid and (host is None or host == socket.gethostname()):
            try:
                self._proc = psutil.Process(pid)
                self._proc.cpu_percent(None)
            except psutil.Error:
                self._proc = None

    def sample(self) -> SystemSample:
        memory = psutil.virtual_memory()
        job_cpu = job_memory = None
        if self._proc is not None:
            try:
                with self._proc.oneshot():
                    job_cpu = self._proc.cpu_percent(None)
                    job_memory = self._proc.memory_info().rss
            except psutil.Error:
                self._proc = None
        return SystemSample(psutil.cpu_percent(None), memory.total - memory.available, memory.total,
                            self.gpu.sample(), job_cpu, job_memory)


def _bar(tip: str) -> QProgressBar:
    bar = QProgressBar()
    bar.setRange(0, 1000)
    bar.setTextVisible(True)
    bar.setFixedWidth(150)
    bar.setMaximumHeight(18)
    bar.setToolTip(tip)
    return bar


class SystemStrip(QWidget):
    """A row of small bars: CPU, memory, each GPU's use and memory, and the job's own share."""

    def __init__(self, monitor: SystemMonitor | None = None, parent=None):
        super().__init__(parent)
        self.monitor = monitor or SystemMonitor()
        self.cpu = _bar("CPU use of the whole machine")
        self.memory = _bar("Memory in use on the machine")
        self.job = QLabel()
        self.job.setToolTip("The run's worker process (when it runs on this machine)")
        self._gpu_bars: list[tuple[QProgressBar, QProgressBar]] = []
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(4, 0, 4, 0)
        for label, bar in (("CPU", self.cpu), ("Memory", self.memory)):
            self._layout.addWidget(QLabel(label))
            self._layout.addWidget(bar)
        self._gpu_at = self._layout.count()
        self._layout.addStretch(1)
        self._layout.addWidget(self.job)
        self.last: SystemSample | None = None

    def follow(self, pid: int | None, host: str | None) -> None:
        self.monitor.follow(pid, host)

    def refresh(self) -> SystemSample:
        s = self.monitor.sample()
        self.last = s
        self.cpu.setValue(int(s.cpu * 10))
        self.cpu.setFormat(f"{s.cpu:.0f}%")
        self.memory.setValue(int(1000 * s.memory_used / max(s.memory_total, 1)))
        self.memory.setFormat(f"{s.memory_used / GB:.1f} / {s.memory_total / GB:.0f} GB")
        while len(self._gpu_bars) < len(s.gpus):
            i = len(self._gpu_bars)
            use, mem = _bar(f"GPU {i} utilisation"), _bar(f"GPU {i} memory")
            at = self._gpu_at + 3 * i
            self._layout.insertWidget(at, QLabel(f"GPU {i}"))
            self._layout.insertWidget(at + 1, use)
            self._layout.insertWidget(at + 2, mem)
            self._gpu_bars.append((use, mem))
        for gpu, (use, mem) in zip(s.gpus, self._gpu_bars):
            use.setValue(int((gpu.utilization or 0) * 10))
            use.setFormat(f"{gpu.utilization:.0f}%" if gpu.utilization is not None else "use n/a")
            mem.setValue(int(1000 * gpu.used / max(gpu.total, 1)))
            mem.setFormat(f"{gpu.used / GB:.1f} / {gpu.total / GB:.0f} GB")
            use.setToolTip(gpu.name)
        if s.job_cpu is not None:
            self.job.setText(f"job: {s.job_cpu:.0f}% CPU, {s.job_memory / GB:.2f} GB")
        else:
            self.job.setText("")
        return s
