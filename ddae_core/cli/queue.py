"""`ddae queue serve|list|cancel|resume|priority`: the job queue.

Every command that reads the index ingests once first (when the scheduler does not hold the ingest
lock; it keeps the index current itself), so what it prints is what the run folders say now.
"""

from __future__ import annotations

import argparse
import math
import time

from ..engine.errors import UserError
from ..rundir import ACTIVE_STATUSES, RUNS_DIR, JobKind, RunStatus
from ..rundir.figures import clock
from .common import add_workspace, check_gpus_option, check_priority_option, workspace_of
from .tables import cut, open_store, table

MAX_CPU_SLOTS = 256


def register(sub: argparse._SubParsersAction) -> None:
    queue = sub.add_parser("queue", help="the job queue: serve it, list, cancel, resume, reprioritise")
    qsub = queue.add_subparsers(dest="queue_command", metavar="ACTION", required=True)

    p = qsub.add_parser("serve", help="run the scheduler here, headless, until Ctrl-C (jobs keep running)")
    p.add_argument("--cpu-slots", type=int, default=1, help="CPU jobs that may run at once (default 1)")
    p.add_argument("--gpus", metavar="IDS",
                   help="GPU ids to use, e.g. 0,1, or none (default: every GPU PyTorch sees)")
    p.add_argument("--kill-timeout", type=float, default=30.0, metavar="S",
                   help="seconds a cancelled job may take to save and exit before it is killed (default 30)")
    p.add_argument("--interval", type=float, default=0.5, metavar="S", help="seconds between passes (default 0.5)")
    p.add_argument("--once", action="store_true",
                   help="run what is queued now, wait for those jobs to finish, then exit (1 if any failed)")
    add_workspace(p)
    p.set_defaults(func=cmd_serve)

    p = qsub.add_parser("list", help="running and queued jobs (and interrupted ones to resume)")
    p.add_argument("--all", action="store_true", help="also the 20 most recent finished runs")
    add_workspace(p)
    p.set_defaults(func=cmd_queue_list)

    p = qsub.add_parser("cancel", help="cancel a queued or running job (a running one saves a checkpoint first)")
    p.add_argument("run", help="run id, id prefix or name")
    add_workspace(p)
    p.set_defaults(func=cmd_cancel)

    p = qsub.add_parser("resume", help="queue an interrupted, cancelled or failed run again (training continues)")
    p.add_argument("run", help="run id, id prefix or name")
    p.add_argument("--priority", type=int, help="queue priority (default: its last one)")
    p.add_argument("--gpus", type=int, help="GPUs it needs (default: what it asked for before)")
    p.add_argument("--cluster", metavar="NAME",
                   help="run it on this cluster profile, or `local` for this machine (default: where it ran)")
    add_workspace(p)
    p.set_defaults(func=cmd_resume)

    p = qsub.add_parser("priority", help="change a queued job's priority (higher starts first)")
    p.add_argument("run", help="run id, id prefix or name")
    p.add_argument("priority", type=int)
    add_workspace(p)
    p.set_defaults(func=cmd_priority)


# ddae queue ...
def cmd_serve(args) -> int:
    import signal
    import threading

    from ..jobs.scheduler import Scheduler

    if not 0 <= args.cpu_slots <= MAX_CPU_SLOTS:      # a typo of 10**9 slots would build 10**9 slot objects
        raise UserError(f"--cpu-slots must be from 0 to {MAX_CPU_SLOTS} (got {args.cpu_slots}).")
    if not (0 < args.kill_timeout < math.inf and 0 < args.interval < math.inf):     # nan fails both too
        raise UserError("--kill-timeout and --interval must be a finite number of seconds, greater than 0.")
    gpus = None
    if args.gpus is not None:
        text = args.gpus.strip().lower()
        try:
            gpus = [] if text in ("", "none") else [int(g) for g in text.split(",")]
        except ValueError:
            raise UserError(f"--gpus takes GPU ids like 0,1 or none (got {args.gpus!r}).") from None
    workspace = workspace_of(args)
    scheduler = Scheduler(workspace, cpu_slots=args.cpu_slots, gpus=gpus, kill_timeout_s=args.kill_timeout)
    try:
        scheduler.require()
        slots = ", ".join(s.id for s in scheduler.slots()) or "none"
        print(f"scheduler of {workspace}: slots {slots}; Ctrl-C stops it, running jobs keep running", flush=True)
        stop = threading.Event()
        failed: set[str] = set()

        def on_tick(report) -> None:
            _print_report(scheduler, report)
            failed.update(run for run, status in report.finished if status in (RunStatus.FAILED, RunStatus.INTERRUPTED))
            failed.update(report.interrupted)
            failed.update(run for run, _ in report.refused)
            if args.once and not report.started and not scheduler.running() and not scheduler.cluster.active():
                stop.set()               # the queue is drained (or holds only jobs that wait for others)

        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            scheduler.serve(stop, interval_s=args.interval, on_tick=on_tick)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        still = scheduler.running()
        if still:
            print(f"scheduler stopped; {len(still)} job(s) keep running: {', '.join(sorted(still))}", flush=True)
        else:
            print("scheduler stopped", flush=True)
        return 1 if args.once and failed else 0
    finally:
        scheduler.close()


def _print_report(scheduler, report) -> None:
    for run, status in report.finished:
        if status in (RunStatus.FAILED, RunStatus.INTERRUPTED):
            record = scheduler.store.get_run(run)
            print(f"finished {run}: {status}: {record.error or 'no error was reported'}", flush=True)
        else:
            print(f"finished {run}: {status}", flush=True)
    lines = [line for line in report.lines() if not line.startswith("finished ")]
    for line in lines:
        print(line, flush=True)


def cmd_queue_list(args) -> int:
    from ..jobs.scheduler import scheduler_holder

    with open_store(args) as (workspace, store):
        queue = store.queued_jobs()
        order = {entry.run: i for i, entry in enumerate(queue)}
        priority = {entry.run: entry.priority for entry in queue}
        entries = {entry.run: entry for entry in queue}
        active = store.list_runs(status=[RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.INTERRUPTED])
        rank = {RunStatus.RUNNING: 0, RunStatus.QUEUED: 1, RunStatus.INTERRUPTED: 2}
        active.sort(key=lambda r: (rank[r.status], order.get(r.id, 0), -(r.started or r.created or 0)))
        finished = store.list_runs(status=[RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED], order_by="created",
                                   limit=20) if args.all else []
        holder = scheduler_holder(workspace)
    from ..jobs.cluster_backend import cluster_jobs

    slurm_jobs = cluster_jobs(workspace, [run.id for run in [*active, *finished]])
    print(f"scheduler: {holder}" if holder else "scheduler: not running (`ddae queue serve` or the app runs the queue)")
    if not active and not finished:
        print("the queue is empty")
        return 0
    now = time.time()
    rows = []
    for run in [*active, *finished]:
        fraction = run.progress_fraction
        elapsed = eta = None
        if run.started is not None:
            elapsed = (run.finished or now) - run.started if run.status != RunStatus.QUEUED else None
        if run.status == RunStatus.RUNNING and fraction and elapsed:
            eta = elapsed * (1 - fraction) / fraction
        if run.status == RunStatus.QUEUED:
            entry = entries.get(run.id)
            device = "-" if entry is None else (
                "cpu" if entry.device_request == "cpu" or (entry.gpus == 0 and entry.device_request != "cuda")
                else f"{entry.device_request} x{max(entry.gpus, 1)} GPU")
        else:
            device = run.device
        ended = (RunStatus.FAILED, RunStatus.INTERRUPTED, RunStatus.CANCELLED)
        note = run.error if run.status in ended and run.error else \
            (run.progress_stage if run.status in ACTIVE_STATUSES else None)
        row = (run.id, run.status, "-" if fraction is None else f"{fraction:.0%}", cut(device, 24),
               str(priority.get(run.id, "-")), clock(elapsed), clock(eta), cut(run.name, 30), cut(note, 60))
        if slurm_jobs:
            job = slurm_jobs.get(run.id)
            row += (cut(job.summary(), 70) if job else "-",)
        rows.append(row)
    headers = ("RUN", "STATUS", "PROGRESS", "DEVICE", "PRIORITY", "ELAPSED", "ETA", "NAME", "STAGE / ERROR")
    table(headers + (("SLURM: JOB, STATE, NODES, ELAPSED OF LIMIT",) if slurm_jobs else ()), rows)
    return 0


def cmd_cancel(args) -> int:
    from ..jobs.queue_ops import cancel, get_run

    with open_store(args) as (workspace, store):
        run_id = get_run(store, args.run).id
        what = cancel(store, workspace, run_id)
    print(f"{run_id}: {what}")
    return 0


def cmd_resume(args) -> int:
    from ..jobs.queue_ops import resume
    from ..rundir import list_checkpoints

    if args.priority is not None:
        check_priority_option(args.priority)
    if args.gpus is not None:
        check_gpus_option(args.gpus)
    with open_store(args) as (workspace, store):
        entry = resume(store, workspace, args.run, priority=args.priority, gpus=args.gpus, cluster=args.cluster)
        checkpoints = list_checkpoints(store.run_dir(entry.run))
    start = f"from its checkpoint at step {checkpoints[-1][0]}" if checkpoints and entry.kind == JobKind.TRAIN \
        else "from the start" if entry.kind == JobKind.TRAIN else "again"
    from ..jobs.cluster import run_cluster

    cluster = run_cluster(workspace / RUNS_DIR / entry.run)
    if cluster:
        print(f"{entry.run}: queued (priority {entry.priority}); the scheduler submits it to cluster {cluster}, "
              f"where it runs {start}")
    else:
        print(f"{entry.run}: queued (priority {entry.priority}); it runs {start} when a slot is free")
    return 0


def cmd_priority(args) -> int:
    from ..jobs.queue_ops import get_run, set_priority

    check_priority_option(args.priority)
    with open_store(args) as (_, store):
        run_id = get_run(store, args.run).id
        set_priority(store, run_id, args.priority)
    print(f"{run_id}: priority {args.priority}")
    return 0
