"""Worker processes seen from outside: start one detached, tell whether a run's process still lives, stop it.

Shared by the scheduler (which starts and reaps workers) and the queue operations (which cancel them
from any process). Nothing here opens the database.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from ..engine.cpu_threads import thread_env
from ..engine.reporting import STOP_FILE

HOST = socket.gethostname()
EVENTS = "events.jsonl"
LOG = "log.txt"
# Set in every worker the scheduler starts: the slots it holds ("cpu0", "gpu0,gpu1"). A scheduler that
# starts later reads it back from the process to know which slots are still busy.
SLOTS_ENV = "DDAE_SLOTS"
# A process created this long after the status event that named its pid is not the process it named.
PID_REUSE_SLACK_S = 1.0


def worker_command(run_dir: Path, nproc: int = 1, python: str = sys.executable) -> list[str]:
    """`python -m ddae_core.worker RUN_DIR`, or the same under torchrun with `nproc` processes (DDP)."""
    if nproc > 1:
        return [python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
                "-m", "ddae_core.worker", str(run_dir)]
    return [python, "-m", "ddae_core.worker", str(run_dir)]


def worker_env(gpu_ids: Sequence[str], slots: Sequence[str], threads: int | None = None,
               base: dict[str, str] | None = None) -> dict[str, str]:
    """The worker's environment: only its GPUs visible ("" for the CPU), unbuffered, its slots named.

    No PYTHONPATH: the worker is `python -m ddae_core.worker` of the same interpreter, which has ddae_core
    installed (a wheel, or a checkout's editable install from ./bootstrap.sh).

    threads: the CPU job's thread budget (OMP_NUM_THREADS, MKL_NUM_THREADS, DDAE_CPU_THREADS). It replaces
    what the scheduler itself inherited: a shell's OMP_NUM_THREADS was not sized for jobs sharing the CPU.
    """
    env = dict(os.environ if base is None else base)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpu_ids)
    env["PYTHONUNBUFFERED"] = "1"
    env[SLOTS_ENV] = ",".join(slots)
    if threads is not None:
        env.update(thread_env(threads))
    return env


def start_worker(run_dir: Path, *, gpu_ids: Sequence[str] = (), slots: Sequence[str] = ("cpu0",), nproc: int = 1,
                 python: str = sys.executable, threads: int | None = None) -> subprocess.Popen:
    """Start the run's worker in its own process session, stdout and stderr appended to its log.txt.

    Its own session: closing the GUI or the terminal that started it (SIGHUP, Ctrl-C) leaves it running.
    nproc > 1 launches it with torchrun (DDP over `nproc` processes; rank 0 reports).
    """
    run_dir = Path(run_dir)
    cmd = worker_command(run_dir, nproc, python)
    with open(run_dir / LOG, "ab") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"--- {stamp} the scheduler on {HOST} starts the worker on {','.join(slots)}: "
                  f"{' '.join(cmd)}\n".encode())
        log.flush()
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=run_dir, env=worker_env(gpu_ids, slots, threads), start_new_session=True,
                                close_fds=True)


# Events written from outside a worker: only for a run whose worker is not running (never started,
# or killed), so the file still has one writer at a time.
def append_event(run_dir: Path, type_: str, **fields) -> None:
    """Append one event line to the run's events.jsonl, first ending a torn last line left by a killed worker."""
    path = Path(run_dir) / EVENTS
    line = json.dumps({"type": type_, "time": round(time.time(), 3), **fields}, separators=(",", ":")) + "\n"
    with open(path, "ab+") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() > 0:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                line = "\n" + line
        fh.write(line.encode())
        fh.flush()
        os.fsync(fh.fileno())


def last_status_event(run_dir: Path, max_bytes: int = 4 << 20, with_pid: bool = True) -> dict | None:
    """The last `status` event of the run's events.jsonl (that names a pid, unless with_pid is False), or None.

    Reads backwards from the end, at most max_bytes.
    """
    path = Path(run_dir) / EVENTS
    try:
        fh = open(path, "rb")
    except OSError:
        return None
    with fh:
        end = fh.seek(0, os.SEEK_END)
        pos, tail, read = end, b"", 0
        while pos > 0 and read < max_bytes:
            size = min(1 << 16, pos)
            pos -= size
            fh.seek(pos)
            chunk = fh.read(size) + tail
            read += size
            lines = chunk.split(b"\n")
            tail = lines[0] if pos > 0 else b""        # maybe a partial line: finish it with the next chunk
            for line in reversed(lines[1:] if pos > 0 else lines):
                if b'"status"' not in line or (with_pid and b'"pid"' not in line):
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict) and event.get("type") == "status" \
                        and (not with_pid or event.get("pid") is not None):
                    return event
    return None


def on_this_host(host: str | None) -> bool:
    return host is None or host == HOST


def find_process(pid: int | None, since: float | None = None) -> psutil.Process | None:
    """The live process `pid`, or None when it is gone, a zombie, or (given `since`, the time of the event
    that named it) a newer process that reuses the pid."""
    if not pid or pid <= 0:
        return None
    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if since is not None and proc.create_time() > since + PID_REUSE_SLACK_S:
            return None
        return proc
    except (psutil.NoSuchProcess, ProcessLookupError):
        return None
    except psutil.AccessDenied:
        return psutil.Process(int(pid)) if psutil.pid_exists(int(pid)) else None


def worker_slots(proc: psutil.Process) -> tuple[str, ...] | None:
    """The slots a scheduler gave this worker (from its environment), or None if no scheduler started it."""
    try:
        value = proc.environ().get(SLOTS_ENV)
    except (psutil.Error, OSError):
        return None
    return tuple(s for s in value.split(",") if s) if value is not None else None


def run_process(run_dir: Path, pid: int | None, host: str | None) -> psutil.Process | None:
    """The live process of a `running` run on this host, checked against pid reuse; None if it is gone.

    The pid's creation time must not be later than the status event that named it (when there is one).
    """
    if not pid:
        return None
    event = last_status_event(run_dir)
    since = None
    if event is not None and event.get("pid") == pid and isinstance(event.get("time"), (int, float)):
        since = float(event["time"])
    return find_process(pid, since)


def request_stop(run_dir: Path) -> Path:
    """Create the run's STOP file (fresh mtime: the scheduler's kill timeout counts from it)."""
    path = Path(run_dir) / STOP_FILE
    with open(path, "w") as fh:
        fh.write(f"stop requested at {time.strftime('%Y-%m-%d %H:%M:%S')} by pid {os.getpid()} on {HOST}\n")
    return path


def signal_worker(proc: psutil.Process, sig: int, whole_group: bool) -> bool:
    """Send `sig` to the worker, or to its whole process group (torchrun and every rank) when it leads one."""
    try:
        if whole_group:
            pgid = os.getpgid(proc.pid)
            if pgid != os.getpgid(0):        # never our own group
                os.killpg(pgid, sig)
                return True
        proc.send_signal(sig)
        return True
    except (psutil.Error, ProcessLookupError, PermissionError):
        return False
