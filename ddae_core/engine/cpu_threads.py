"""The CPU thread budget of a job: how many threads its torch ops may use.

Jobs that share the CPU must split it: two trainings that each take torch's default (a thread per
core) ran at 2.6-7.7 img/s instead of 45-67 (issue 13), their OpenMP threads fighting for the same
cores. So the scheduler gives every CPU job cores // cpu_slots threads (at least 1), in the worker's
environment (OMP_NUM_THREADS, MKL_NUM_THREADS, DDAE_CPU_THREADS), and the job sets them in torch
before its first op. Where a user wants another number:

- DDAE_CPU_THREADS=N in the environment of the scheduler (`ddae queue serve`, the app) or of a
  foreground command gives every job it starts N threads;
- `threads: N` in a job spec's `device` block gives that job N threads, whatever the environment.

A foreground job with neither keeps torch's default: it does not know what else runs beside it.
No torch import at module level: the scheduler and worker import this before torch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

from .errors import UserError

THREADS_ENV = "DDAE_CPU_THREADS"
# The libraries' own variables, read once when they load: set in the worker's environment so that
# OpenMP and MKL start with the budget instead of a thread per core.
LIBRARY_ENVS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def cpu_cores() -> int:
    """Physical cores this process may run on (torch's own default counts physical cores)."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or 1
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or allowed
    except Exception:  # noqa: BLE001 - psutil cannot count here: take what the OS allows
        physical = allowed
    return max(1, min(physical, allowed))


def _positive(value, source: str) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise UserError(f"{source} must be a whole number of threads, 1 or more (got {value!r}); "
                        f"fix it or remove it to use the default.")
    return number


def env_threads(env: Mapping[str, str] | None = None) -> int | None:
    """DDAE_CPU_THREADS as a number of threads, or None when it is unset or empty."""
    value = (os.environ if env is None else env).get(THREADS_ENV, "").strip()
    return _positive(value, THREADS_ENV) if value else None


def slot_threads(cpu_slots: int, env: Mapping[str, str] | None = None, cores: int | None = None) -> int:
    """The budget of each CPU job of a scheduler with `cpu_slots` slots: DDAE_CPU_THREADS when set,
    else cores // cpu_slots, at least 1."""
    override = env_threads(env)
    if override is not None:
        return override
    return max(1, (cores or cpu_cores()) // max(int(cpu_slots), 1))


def thread_env(threads: int) -> dict[str, str]:
    """The environment variables that give a worker `threads` threads."""
    return {THREADS_ENV: str(threads), **{name: str(threads) for name in LIBRARY_ENVS}}


def job_threads(spec: Mapping | None, env: Mapping[str, str] | None = None) -> int | None:
    """The threads a job asks for: its spec's device.threads, else DDAE_CPU_THREADS, else None (torch's default)."""
    device = (spec or {}).get("device")
    if isinstance(device, Mapping) and device.get("threads") is not None:
        return _positive(device["threads"], "The spec's device.threads")
    return env_threads(env)


def apply_threads(threads: int | None) -> None:
    """Give torch `threads` intra-op threads (and as many inter-op ones); None leaves torch as it is.

    The inter-op pool can be sized only before its first use; in a process that already used it
    (a foreground command that ran another job) it keeps its size.
    """
    if threads is None:
        return
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != threads:
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:
            pass


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch ops single-threaded for a while, then restore the thread count; Python threads started
    inside inherit the one thread.

    With several intra-op threads every small op ends in an OpenMP barrier, where the threads spin-wait
    for each other (builtin-data generation measured 10-50x slower when another process was busy). Many
    small ops keep the cores busier as Python threads of one torch thread each, over independent work.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def threads_label(threads: int) -> str:
    """'1 thread', '4 threads'."""
    return f"{threads} thread{'' if threads == 1 else 's'}"
