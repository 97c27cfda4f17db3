"""`ddae queue serve|list|cancel|resume|priority`, `ddae runs list|show|export|tag|note|delete`, `ddae reindex`.

Every command that reads the index ingests once first (when the scheduler does not hold the ingest
lock; it keeps the index current itself), so what it prints is what the run folders say now.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from contextlib import contextmanager

from ..errors import UserError
from .common import add_workspace, workspace_of


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
    add_workspace(p)
    p.set_defaults(func=cmd_resume)

    p = qsub.add_parser("priority", help="change a queued job's priority (higher starts first)")
    p.add_argument("run", help="run id, id prefix or name")
    p.add_argument("priority", type=int)
    add_workspace(p)
    p.set_defaults(func=cmd_priority)

    runs = sub.add_parser("runs", help="the runs of the workspace: list, show, export, tag, note, delete")
    rsub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)

    p = rsub.add_parser("list", help="runs with their status, dataset, best probe accuracy and last loss")
    p.add_argument("--kind", action="append", help="only runs of this kind (repeatable)")
    p.add_argument("--status", action="append", help="only runs with this status (repeatable)")
    p.add_argument("--tag", action="append", help="only runs with this tag (repeatable: all of them)")
    p.add_argument("--limit", type=int, help="at most this many, newest first")
    add_workspace(p)
    p.set_defaults(func=cmd_runs_list)

    p = rsub.add_parser("show", help="one run: spec, status, metrics, probe grid, artifacts")
    p.add_argument("run", help="run id, id prefix or name")
    add_workspace(p)
    p.set_defaults(func=cmd_runs_show)

    p = rsub.add_parser("export", help="a run's curves (one CSV per metric) and probe grid (grid.csv)")
    p.add_argument("run", help="run id, id prefix or name")
    p.add_argument("--csv", required=True, metavar="DIR", help="folder to write the CSV files into")
    add_workspace(p)
    p.set_defaults(func=cmd_runs_export)

    p = rsub.add_parser("tag", help="add tags to a run (or remove them with --remove)")
    p.add_argument("run", help="run id, id prefix or name")
    p.add_argument("tags", nargs="+", metavar="TAG")
    p.add_argument("--remove", action="store_true", help="remove these tags instead")
    add_workspace(p)
    p.set_defaults(func=cmd_runs_tag)

    p = rsub.add_parser("note", help="set a run's notes")
    p.add_argument("run", help="run id, id prefix or name")
    p.add_argument("text", help="the notes (an empty string clears them)")
    add_workspace(p)
    p.set_defaults(func=cmd_runs_note)

    p = rsub.add_parser("delete", help="delete a run and its folder (asks first)")
    p.add_argument("run", help="run id, id prefix or name")
    p.add_argument("--yes", action="store_true", help="do not ask")
    add_workspace(p)
    p.set_defaults(func=cmd_runs_delete)

    p = sub.add_parser("reindex", help="rebuild studio.sqlite from the run folders alone")
    add_workspace(p)
    p.set_defaults(func=cmd_reindex)


# Opening the index.
@contextmanager
def open_store(args, refresh: bool = True):
    """The workspace's Store, ingested once first (unless the scheduler holds the ingest lock)."""
    from db import RunDirError, SchemaError, Store

    from ..queue_ops import refresh as refresh_index

    workspace = workspace_of(args)
    try:
        store = Store.open(workspace)
    except SchemaError as exc:
        raise UserError(str(exc)) from None
    try:
        if refresh:
            try:
                refresh_index(store)
            except RunDirError as exc:
                print(f"warning: {exc}", file=sys.stderr)
        yield workspace, store
    finally:
        store.close()


# Formatting.
def _clock(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _cut(text: str | None, width: int) -> str:
    text = "-" if text is None or text == "" else str(text).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "~"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())


# ddae queue ...
def cmd_serve(args) -> int:
    import signal
    import threading

    from ..scheduler import Scheduler

    if args.cpu_slots < 0:
        raise UserError(f"--cpu-slots must be 0 or more (got {args.cpu_slots}).")
    if args.kill_timeout <= 0 or args.interval <= 0:
        raise UserError("--kill-timeout and --interval must be greater than 0 seconds.")
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
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        ours: set[str] = set()
        failed: set[str] = set()
        try:
            while not stop.is_set():
                report = scheduler.tick()
                _print_report(scheduler, report)
                ours.update(run for run, _ in report.started)
                failed.update(run for run, status in report.finished if status == "failed")
                failed.update(report.interrupted if args.once else ())
                failed.update(run for run, _ in report.refused)
                if args.once and not report.started and not scheduler.running():
                    break
                stop.wait(args.interval)
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
        if status in ("failed", "interrupted"):
            record = scheduler.store.get_run(run)
            print(f"finished {run}: {status}: {record.error or 'no error was reported'}", flush=True)
        else:
            print(f"finished {run}: {status}", flush=True)
    lines = [line for line in report.lines() if not line.startswith("finished ")]
    for line in lines:
        print(line, flush=True)


def cmd_queue_list(args) -> int:
    from ..scheduler import scheduler_holder

    with open_store(args) as (workspace, store):
        queue = store.queued_jobs()
        order = {entry.run: i for i, entry in enumerate(queue)}
        priority = {entry.run: entry.priority for entry in queue}
        entries = {entry.run: entry for entry in queue}
        active = store.list_runs(status=["running", "queued", "interrupted"])
        rank = {"running": 0, "queued": 1, "interrupted": 2}
        active.sort(key=lambda r: (rank[r.status], order.get(r.id, 0), -(r.started or r.created or 0)))
        finished = store.list_runs(status=["done", "failed", "cancelled"], order_by="created",
                                   limit=20) if args.all else []
        holder = scheduler_holder(workspace)
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
            elapsed = (run.finished or now) - run.started if run.status != "queued" else None
        if run.status == "running" and fraction and elapsed:
            eta = elapsed * (1 - fraction) / fraction
        if run.status == "queued":
            entry = entries.get(run.id)
            device = "-" if entry is None else (
                "cpu" if entry.device_request == "cpu" or (entry.gpus == 0 and entry.device_request != "cuda")
                else f"{entry.device_request} x{max(entry.gpus, 1)} GPU")
        else:
            device = run.device
        note = run.error if run.status in ("failed", "interrupted", "cancelled") and run.error else \
            (run.progress_stage if run.status in ("queued", "running") else None)
        rows.append((run.id, run.status, "-" if fraction is None else f"{fraction:.0%}", _cut(device, 24),
                     str(priority.get(run.id, "-")), _clock(elapsed), _clock(eta), _cut(run.name, 30),
                     _cut(note, 60)))
    _table(("RUN", "STATUS", "PROGRESS", "DEVICE", "PRIORITY", "ELAPSED", "ETA", "NAME", "STAGE / ERROR"), rows)
    return 0


def cmd_cancel(args) -> int:
    from ..queue_ops import cancel, get_run

    with open_store(args) as (workspace, store):
        run_id = get_run(store, args.run).id
        what = cancel(store, workspace, run_id)
    print(f"{run_id}: {what}")
    return 0


def cmd_resume(args) -> int:
    from ..queue_ops import resume
    from ..runs import list_checkpoints

    with open_store(args) as (workspace, store):
        entry = resume(store, workspace, args.run, priority=args.priority, gpus=args.gpus)
        checkpoints = list_checkpoints(store.run_dir(entry.run))
    start = f"from its checkpoint at step {checkpoints[-1][0]}" if checkpoints and entry.kind == "train" \
        else "from the start" if entry.kind == "train" else "again"
    print(f"{entry.run}: queued (priority {entry.priority}); it runs {start} when a slot is free")
    return 0


def cmd_priority(args) -> int:
    from ..queue_ops import get_run, set_priority

    with open_store(args) as (_, store):
        run_id = get_run(store, args.run).id
        set_priority(store, run_id, args.priority)
    print(f"{run_id}: priority {args.priority}")
    return 0


# ddae runs ...
def _check_choices(values: list[str] | None, allowed, what: str) -> None:
    for value in values or ():
        if value not in allowed:
            raise UserError(f"Unknown {what} {value!r}; use one of {', '.join(allowed)}.")


def cmd_runs_list(args) -> int:
    from db.records import STATUSES

    from ..runs import KINDS

    _check_choices(args.kind, KINDS, "run kind")
    _check_choices(args.status, STATUSES, "status")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1 (got {args.limit}).")
    with open_store(args) as (_, store):
        runs = store.list_runs(kind=args.kind, status=args.status, tag=args.tag, limit=args.limit)
    if not runs:
        print("no runs match" if (args.kind or args.status or args.tag) else "no runs yet")
        return 0
    rows = [(r.id, _cut(r.name, 32), r.kind, r.status, _cut(r.data, 28), _percent(r.best_accuracy),
             _number(r.last_loss)) for r in runs]
    _table(("ID", "NAME", "KIND", "STATUS", "DATASET", "BEST ACC", "LAST LOSS"), rows)
    return 0


def _spec_lines(spec: dict) -> list[str]:
    options = spec.get("options") or {}
    shown = ", ".join(f"{k}={v}" for k, v in options.items() if v not in (None, [], {}, ""))
    lines = [f"options   {shown or '-'}"]
    config = spec.get("config")
    if isinstance(config, dict):
        net = config.get("network") or {}
        lines.append(f"model     {config.get('model_type', '?')} {config.get('net_type', '')}, "
                     f"{net.get('n_channels', '?')} channels x {net.get('ch_mults', '?')}, "
                     f"{net.get('n_blocks', '?')} blocks per level")
    return lines


def cmd_runs_show(args) -> int:
    from ..queue_ops import get_run

    with open_store(args) as (_, store):
        run = get_run(store, args.run)
        summaries = store.summaries(run.id)
        cells = store.grid_cells(run.id)
        artifacts = store.artifacts(run.id)
        children = store.children(run.id)
        run_dir = store.run_dir(run.id)
    print(f"run       {run.id}")
    print(f"name      {run.name}")
    print(f"kind      {run.kind}")
    print(f"status    {run.status}" + (f" ({_percent(run.progress_fraction)} of {run.progress_stage or 'work'})"
                                        if run.status == "running" and run.progress_fraction is not None else ""))
    if run.error:
        print(f"error     {run.error}")
    print(f"data      {run.data or '-'}")
    if run.parent_ref:
        print(f"parent    {run.parent_ref}, checkpoint {run.parent_checkpoint or 'latest'}"
              + ("" if run.parent_run else " (deleted)"))
    print(f"device    {run.device or '-'} (asked for {run.device_request}, {run.gpus} GPU{'s' if run.gpus != 1 else ''})")
    took = (run.finished or time.time()) - run.started if run.started else None
    print(f"times     created {_when(run.created)}, started {_when(run.started)}, finished {_when(run.finished)}"
          + (f", {_clock(took)}" if took is not None else ""))
    print(f"tags      {', '.join(run.tags) or '-'}")
    if run.notes:
        print(f"notes     {run.notes}")
    for line in _spec_lines(run.spec):
        print(line)
    print(f"folder    {run_dir}")
    if summaries:
        print("\nmetrics:")
        _table(("  KEY", "POINTS", "LATEST", "AT STEP", "BEST", "AT STEP"),
               [(f"  {s.key}", str(s.count), _number(s.latest_value), str(s.latest_step), _number(s.best_value),
                 "-" if s.best_step is None else str(s.best_step)) for s in summaries])
    known = [c for c in cells if c.accuracy is not None]
    if known:
        best = max(known, key=lambda c: c.accuracy)
        print(f"\nprobe grid: best cell {best.layer} at t={best.timestep}: {_percent(best.accuracy)} "
              f"({len(cells)} cells)")
    if artifacts:
        print("\nartifacts:")
        _table(("  KIND", "STEP", "PATH"),
               [(f"  {a.kind}", "-" if a.step is None else str(a.step), a.path) for a in artifacts])
    if children:
        print("\nevaluations of this run:")
        for child in children:
            print(f"  {child.id}  {child.kind}  {child.status}  {child.name}")
    return 0


def cmd_runs_export(args) -> int:
    from pathlib import Path

    from db import export_run_csv

    from ..queue_ops import get_run

    with open_store(args) as (_, store):
        run_id = get_run(store, args.run).id
        try:
            written = export_run_csv(store, run_id, Path(args.csv).expanduser())
        except OSError as exc:
            raise UserError(f"Cannot write CSV files into {args.csv} ({exc.strerror or exc}); "
                            "choose a folder you can write to.") from None
    if not written:
        print(f"{run_id} has no metrics or probe-grid cells to export yet")
    for path in written:
        print(path)
    return 0


def cmd_runs_tag(args) -> int:
    from ..queue_ops import get_run

    with open_store(args) as (_, store):
        run_id = get_run(store, args.run).id
        tags: tuple[str, ...] = ()
        for tag in args.tags:
            tags = store.remove_tag(run_id, tag) if args.remove else store.add_tag(run_id, tag)
    print(f"{run_id}: tags {', '.join(tags) or '(none)'}")
    return 0


def cmd_runs_note(args) -> int:
    from ..queue_ops import get_run

    with open_store(args) as (_, store):
        run_id = get_run(store, args.run).id
        store.set_notes(run_id, args.text)
    print(f"{run_id}: notes {'set' if args.text else 'cleared'}")
    return 0


def cmd_runs_delete(args) -> int:
    from ..queue_ops import get_run

    with open_store(args) as (_, store):
        run = get_run(store, args.run)
        if run.status == "running":
            raise UserError(f"Run {run.id} is running; cancel it first (`ddae queue cancel {run.id}`).")
        run_dir = store.run_dir(run.id)
        if not args.yes:
            if not sys.stdin.isatty():
                raise UserError(f"Deleting run {run.id} removes {run_dir}; add --yes to confirm without a prompt.")
            answer = input(f"Delete run {run.id} ({run.name}) and its folder {run_dir}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing deleted")
                return 1
        try:
            store.delete_run(run.id, remove_files=True)
        except OSError as exc:
            raise UserError(f"Run {run.id} left the index but {run_dir} could not be removed "
                            f"({exc.strerror or exc}); delete the folder by hand.") from None
    print(f"deleted {run.id} and {run_dir}")
    return 0


def cmd_reindex(args) -> int:
    from db import IngestLockError, reindex

    workspace = workspace_of(args)
    try:
        count = reindex(workspace)
    except IngestLockError:
        holder = (workspace / "ingest.lock").read_text().strip().partition(" ")
        raise UserError(f"The index of {workspace} is in use by process {holder[0]} on {holder[2]} (the scheduler "
                        "or the app); stop it before reindexing.") from None
    print(f"reindexed {count} run{'s' if count != 1 else ''} of {workspace} from its run folders "
          "(the old index is kept as studio.sqlite.old)")
    return 0
