"""What every `ddae` command shares: the workspace option, run-or-enqueue, and the console progress line."""

from __future__ import annotations

import argparse
import errno
import sys
import time
from pathlib import Path

from ..engine.errors import UserError
from ..rundir import RUNS_DIR, RunStatus, find_run, resolve_workspace
from ..rundir.figures import clock


def number(text: str) -> int | float:
    """An argparse type for counts: "300" -> 300 and "1e23" -> 1e23, so that the spec's check, not
    argparse, says what is wrong with a number (too large, not whole)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def add_options(parser, model, names=None, *, prefix: str = "", dest_prefix: str = "", skip=()) -> None:
    """argparse arguments for `model`'s fields (ddae_core.engine.spec.options): flag, type, default and help.

    names: only these fields (default: every field the CLI shows); prefix: put after `--` of each flag
    (`--sweep-steps`); dest_prefix: before each dest, where two models' options share one parser.
    """
    from ..engine.spec.fields import infos

    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for info in infos(model):
        if not info.cli or info.name in skip or (names is not None and info.name not in names):
            continue
        target = parser
        if info.exclusive:
            if info.exclusive not in groups:
                groups[info.exclusive] = parser.add_mutually_exclusive_group()
            target = groups[info.exclusive]
        flags, kwargs = _flag_and_kwargs(info, prefix, dest_prefix)
        target.add_argument(*flags, **kwargs)


def _flag_and_kwargs(info, prefix: str, dest_prefix: str) -> tuple[list[str], dict]:
    """One field as argparse.add_argument's flag and keyword arguments."""
    flag = "--" + prefix + info.flag.removeprefix("--")
    kwargs: dict = {"dest": dest_prefix + info.name}
    if info.kind == "check":
        if info.default:        # on unless turned off: --no-baselines
            flag = "--" + prefix + "no-" + info.flag.removeprefix("--")
            kwargs.update(action="store_false", help=info.help)
        else:
            kwargs.update(action="store_true", help=info.help)
        return [flag], kwargs
    values = [v for v, _ in info.choices if v not in ("", None)]
    kwargs["type"] = {"int": number, "float": float}.get(info.kind, type(values[0]) if values else str)
    if values and info.cli_choices:
        kwargs["choices"] = values
    if not values:
        kwargs["metavar"] = info.metavar or info.name.upper()
    kwargs["default"] = info.default
    shown = info.default_text or (None if info.default is None else f"{info.default:g}"
                                  if isinstance(info.default, float) else str(info.default))
    kwargs["help"] = f"{info.help} (default: {shown})" if shown is not None else info.help
    return [flag], kwargs


def options_of(args, model, *, dest_prefix: str = "", skip=()) -> dict:
    """The values argparse parsed for `model`'s CLI fields, by field name (for the spec function)."""
    from ..engine.spec.fields import infos

    return {i.name: getattr(args, dest_prefix + i.name) for i in infos(model)
            if i.cli and i.name not in skip and hasattr(args, dest_prefix + i.name)}


def add_workspace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", metavar="DIR",
                        help="workspace folder (default: $DDAE_WORKSPACE or ~/ddae-workspace)")


def add_queue_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("queue")
    group.add_argument("--queue", action="store_true", help="enqueue the job instead of running it here")
    group.add_argument("--priority", type=int, default=0, help="queue priority, higher runs first (default 0)")
    group.add_argument("--gpus", type=int, default=None,
                       help="GPUs the job needs (default 1 with --device cuda/auto, 0 with --device cpu)")
    group.add_argument("--cluster", metavar="NAME",
                       help="run it on this Slurm cluster profile of cluster.yaml, or `local` for this machine "
                            "(default: cluster.yaml's default, else this machine)")


def add_device(parser: argparse.ArgumentParser) -> None:
    """--device for the commands that run no job of their own (classify, demo, sweep)."""
    from ..engine.spec.options import JobOptions

    add_options(parser, JobOptions, ("device",))


def workspace_of(args) -> Path:
    return resolve_workspace(getattr(args, "workspace", None))


def storage_error(exc: BaseException, workspace: Path) -> UserError | None:
    """One sentence for a failure of the index or the disk that the user can act on; None for anything else."""
    from sqlalchemy.exc import DatabaseError

    index = Path(workspace) / "studio.sqlite"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return UserError(f"The disk holding {exc.filename or workspace} is full ({exc.strerror}); "
                         "free some space and try again (nothing half-written was kept).")
    if isinstance(exc, OSError) and exc.errno == errno.EIO:
        return UserError(f"The disk holding {exc.filename or workspace} failed a write ({exc.strerror}; a full disk "
                         "often does that); free some space or check the disk, then try again.")
    if not isinstance(exc, DatabaseError):
        return None
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    if "full" in reason:
        return UserError(f"The disk holding {workspace} is full ({reason}); free some space and try again.")
    if "malformed" in reason or "not a database" in reason:
        return UserError(f"The index {index} is damaged ({reason}); rebuild it from the run folders with "
                         f"`ddae reindex --workspace {workspace}`.")
    if "locked" in reason:
        return UserError(f"The index {index} stayed busy ({reason}); try again in a moment.")
    return UserError(f"The index {index} cannot be used ({reason}); check the disk and the folder's permissions, "
                     f"or rebuild it with `ddae reindex --workspace {workspace}`.")


def run_dir_of(args, ref: str | None = None) -> Path:
    """The run folder `ref` (default --run) names; finding it writes nothing, so a read-only workspace
    can still be classified from (a job launched from it is refused by launch)."""
    workspace = resolve_workspace(getattr(args, "workspace", None), create=False)
    return find_run(workspace, ref if ref is not None else args.run)


def gpus_option(args) -> int:
    """--gpus as given, else one GPU (none with --device cpu): what a queued job asks the scheduler for."""
    if getattr(args, "gpus", None) is not None:
        return check_gpus_option(args.gpus)
    return 0 if getattr(args, "device", "auto") == "cpu" else 1


def check_gpus_option(gpus: int) -> int:
    """--gpus as given, or one sentence: the index cannot hold any count (db.records.MAX_GPUS)."""
    from ..rundir import MAX_GPUS

    if not 0 <= gpus <= MAX_GPUS:
        raise UserError(f"--gpus must be from 0 to {MAX_GPUS} (got {gpus}).")
    return gpus


def check_priority_option(priority: int) -> int:
    """A --priority as given, or one sentence: checked before a run folder is written, not at the insert."""
    from ..rundir import PRIORITY_LIMIT

    if not -PRIORITY_LIMIT <= priority <= PRIORITY_LIMIT:
        raise UserError(f"--priority must be from {-PRIORITY_LIMIT} to {PRIORITY_LIMIT} (got {priority}).")
    return priority


class ConsoleProgress:
    """One live line on stderr: stage, a bar, the latest loss, images/s and the ETA."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.values: dict[str, float] = {}
        self.started = time.monotonic()
        self.stage_started: dict[str, tuple[float, int]] = {}
        self._last_print = 0.0
        self._last_line_len = 0

    def __call__(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "metric" and event["value"] is not None:      # None: a NaN point
            self.values[event["key"]] = event["value"]
        elif kind == "progress":
            self._show(event)
        elif kind == "status" and event.get("status") in (RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED):
            self._finish_line()

    def _show(self, event: dict) -> None:
        done, total, stage = event["done"], max(event["total"], 1), event.get("stage", "")
        now = time.monotonic()
        start = self.stage_started.setdefault(stage, (now, done))
        if not self.tty and done < total and now - self._last_print < 10:
            return
        self._last_print = now
        frac = min(done / total, 1.0)
        bar = "#" * int(frac * 24)
        parts = [f"{stage:<14} {done}/{total} [{bar:<24}] {frac:4.0%}"]
        if "loss/train" in self.values:
            parts.append(f"loss {self.values['loss/train']:.4f}")
        if "images_per_s" in self.values:
            parts.append(f"{self.values['images_per_s']:.1f} img/s")
        rate = (done - start[1]) / max(now - start[0], 1e-9)
        if 0 < done < total and rate > 0:
            parts.append(f"ETA {clock((total - done) / rate)}")
        line = " | ".join(parts)
        if self.tty:
            pad = max(0, self._last_line_len - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._last_line_len = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _finish_line(self) -> None:
        if self.tty and self._last_line_len:
            self.stream.write("\n")
            self.stream.flush()
            self._last_line_len = 0


def _check_foreground_gpus(args) -> None:
    """A job run here uses one device; only the scheduler starts multi-GPU (torchrun) jobs."""
    gpus = getattr(args, "gpus", None)
    if gpus is not None and check_gpus_option(gpus) > 1:
        raise UserError(f"--gpus {gpus} needs --queue: a job run in the foreground uses one device; add --queue "
                        "and run `ddae queue serve` to train on several GPUs.")


def launch(args, spec: dict, *, name_chosen: bool = True, quiet: bool = False) -> tuple[Path, str]:
    """Create the run for `spec` through the one door (jobs/submit.py); enqueue it (--queue) or run it here
    with a progress line. name_chosen: False when the command made the name up (numbered when taken).

    Returns (run_dir, status) where status is the final status, or `queued`.
    """
    from sqlalchemy.exc import DatabaseError

    from db import Store

    from ..jobs.cluster import check_placement
    from ..jobs.specs import execute
    from ..jobs.submit import create_job, name_run, submit, withdraw

    workspace = workspace_of(args)
    queued = getattr(args, "queue", False)
    if getattr(args, "cluster", None) is not None and not queued:
        raise UserError("--cluster needs --queue: a cluster runs queued jobs (add --queue).")
    if queued:
        check_priority_option(args.priority)
        cluster = check_placement(workspace, getattr(args, "cluster", None))
    else:
        _check_foreground_gpus(args)
    try:
        with Store.open(workspace) as store:
            if queued:
                run_dir = workspace / RUNS_DIR / submit(workspace, spec, args.priority, gpus_option(args), cluster,
                                                        name_chosen=name_chosen, store=store)
            else:
                run_dir = create_job(workspace, name_run(store, spec, name_chosen))   # a queued run's name rule
                try:
                    store.register_run(run_dir)     # its name is taken from now on, also for the next command
                except BaseException:
                    withdraw(store, run_dir)
                    raise
    except (OSError, DatabaseError) as exc:
        raise storage_error(exc, workspace) or exc from None
    if queued:
        where = f" for cluster {cluster}" if cluster else ""
        print(f"queued {run_dir.name}{where} (priority {args.priority}); `ddae queue serve` or the app runs it")
        return run_dir, RunStatus.QUEUED
    if not quiet:
        print(f"run {run_dir.name} in {run_dir}", flush=True)
    status = execute(run_dir, workspace, echo=None if quiet else ConsoleProgress())
    return run_dir, status


def finish(run_dir, status: str) -> int:
    """The exit code of a job run here or queued: 0 done or queued, 3 cancelled (resumable), 1 failed."""
    if status in (RunStatus.DONE, RunStatus.QUEUED):
        return 0
    if status == RunStatus.CANCELLED:
        print(f"cancelled; resume with `ddae queue resume {run_dir.name}`", file=sys.stderr)
        return 3
    return 1
