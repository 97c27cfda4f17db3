"""What a Slurm job runs on its node (through submitit): the same `python -m ddae_core.worker RUN_DIR`.

submitit starts one task per rank and calls SlurmWorker() in each. It starts the worker as a child
process, its output appended to the run's log.txt (rank 0; other ranks to log.rank<N>.txt), with the
rendezvous of a multi-node DDP job taken from Slurm's environment. The worker writes the run directory
as it does on this machine, so the workspace must be on a file system the nodes share.

Signals: `scancel --signal=TERM` reaches the worker, which saves a checkpoint and exits cancelled.
Slurm's warning before a time limit or a preemption (USR2, submitit's --signal=USR2@90) goes to
submitit: its handler calls checkpoint() here, which asks the worker to save and stop, notes the run as
interrupted (it resumes by itself) and has submitit requeue the job; the requeued job runs the worker
again, which resumes from its last checkpoint. The worker itself ignores USR2, which would kill it.
Nothing here opens the database.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..rundir import EventType, RunStatus
from .worker_process import LOG, SLOTS_ENV, append_event

MIN_PORT, PORT_SPAN = 20000, 30000
STOP_WAIT_S = 60                  # of the 90 s submitit's signal gives before the time limit


def hostnames(nodelist: str) -> list[str]:
    """Slurm's compact node list (node[01-03,07],gpu5) as host names, without calling scontrol."""
    out: list[str] = []
    depth, part, parts = 0, "", []
    for ch in nodelist:                      # split on commas outside brackets
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(part)
            part = ""
        else:
            part += ch
    parts.append(part)
    for item in (p.strip() for p in parts):
        if not item:
            continue
        if "[" not in item:
            out.append(item)
            continue
        prefix, rest = item.split("[", 1)
        ranges, suffix = rest.split("]", 1)
        for r in ranges.split(","):
            if "-" in r:
                lo, hi = r.split("-", 1)
                out += [f"{prefix}{i:0{len(lo)}d}{suffix}" for i in range(int(lo), int(hi) + 1)]
            else:
                out.append(f"{prefix}{r}{suffix}")
    return out


def rendezvous_env(environ: dict[str, str]) -> dict[str, str]:
    """torch.distributed's env:// variables for this task, from Slurm's (one task per GPU).

    RANK = SLURM_PROCID, WORLD_SIZE = SLURM_NTASKS, LOCAL_RANK = SLURM_LOCALID, MASTER_ADDR = the job's
    first node, MASTER_PORT = a port derived from the job id (every rank computes the same one), unless
    MASTER_PORT is set already. CUDA_VISIBLE_DEVICES is left as Slurm set it: each rank sees the node's
    GPUs of the job and takes the one at its LOCAL_RANK (as under torchrun).
    """
    ntasks = int(environ.get("SLURM_NTASKS", "1"))
    nnodes = max(int(environ.get("SLURM_JOB_NUM_NODES", environ.get("SLURM_NNODES", "1"))), 1)
    job = environ.get("SLURM_JOB_ID", "0")
    nodes = hostnames(environ.get("SLURM_JOB_NODELIST", environ.get("SLURM_NODELIST", ""))) or [socket.gethostname()]
    port = environ.get("MASTER_PORT") or str(MIN_PORT + int(job) % PORT_SPAN if job.isdigit() else MIN_PORT)
    return {
        "RANK": environ.get("SLURM_PROCID", "0"),
        "WORLD_SIZE": str(ntasks),
        "LOCAL_RANK": environ.get("SLURM_LOCALID", "0"),
        "LOCAL_WORLD_SIZE": str(max(ntasks // nnodes, 1)),
        "MASTER_ADDR": nodes[0],
        "MASTER_PORT": port,
    }


def _ignore_usr2() -> None:
    # Runs in the child before exec: an ignored signal stays ignored in the worker.
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def _ended(pid: int, timeout_s: float) -> bool:
    """Wait until the child `pid` has exited (a zombie counts). Not Popen.wait(): this runs inside a signal
    handler that interrupted __call__'s Popen.wait(), which holds the lock a second wait would need."""
    import psutil

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.2)
    return False


class SlurmWorker:
    """The submitit callable: run the worker for `run_dir` on this node; checkpoint() requeues it."""

    def __init__(self, run_dir: str, python: str | None = None, distributed: bool = False):
        self.run_dir = str(run_dir)
        self.python = python
        self.distributed = distributed
        self._proc: subprocess.Popen | None = None

    def __getstate__(self):
        return {"run_dir": self.run_dir, "python": self.python, "distributed": self.distributed}

    def __setstate__(self, state):
        self.__init__(**state)

    def __call__(self) -> int:
        run_dir = Path(self.run_dir)
        env = dict(os.environ)
        env.pop(SLOTS_ENV, None)             # not a slot of a local scheduler
        env["PYTHONUNBUFFERED"] = "1"
        if self.distributed and int(env.get("SLURM_NTASKS", "1")) > 1:
            env.update(rendezvous_env(env))
        rank = int(env.get("SLURM_PROCID", "0"))
        cmd = [self.python or sys.executable, "-m", "ddae_core.worker", str(run_dir)]
        log_path = run_dir / (LOG if rank == 0 else f"log.rank{rank}.txt")
        with open(log_path, "ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"--- {stamp} Slurm job {env.get('SLURM_JOB_ID', '?')} (rank {rank} of "
                      f"{env.get('SLURM_NTASKS', '1')}) on {socket.gethostname()} starts the worker: "
                      f"{' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          cwd=run_dir, env=env, preexec_fn=_ignore_usr2, close_fds=True)
            code = self._proc.wait()
        if code < 0 or code not in (0, 1, 3):
            # A kill -9, an out-of-memory kill: the run has no final status and shows as interrupted.
            raise RuntimeError(f"the worker of {run_dir.name} exited with code {code} without a final status")
        return code

    def checkpoint(self):
        """Slurm's time limit or a preemption is near: the worker saves and stops, then the job is requeued."""
        import submitit

        run_dir = Path(self.run_dir)
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)         # the worker saves a checkpoint and exits
            if not _ended(proc.pid, STOP_WAIT_S):
                proc.kill()
        job = os.environ.get("SLURM_JOB_ID", "?")
        append_event(run_dir, EventType.STATUS, status=RunStatus.INTERRUPTED,
                     error=f"Slurm job {job} reached its time limit or was preempted; it is requeued and resumes "
                           "from its last checkpoint when it starts again.")
        return submitit.helpers.DelayedSubmission(SlurmWorker(self.run_dir, self.python, self.distributed))


def node_report(workspace: str) -> dict:
    """What `ddae cluster check --submit` asks a node: who it is, its Python and torch, and whether it
    sees the workspace (the shared file system the run directories need)."""
    info = {"host": socket.gethostname(), "python": sys.executable, "workspace_visible": Path(workspace).is_dir()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda_devices"] = torch.cuda.device_count()
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        info["torch"] = f"cannot import torch ({exc.__class__.__name__}: {exc})"
    try:
        import ddae_core

        info["ddae_core"] = str(Path(ddae_core.__file__).parent)
    except Exception as exc:  # noqa: BLE001
        info["ddae_core"] = f"cannot import ddae_core ({exc})"
    return info
