"""`ddae runs list|show|export|tag|note|rename|delete` and `ddae reindex`: reading and editing the run index."""

from __future__ import annotations

import argparse
import sys
import time

from ..engine.errors import UserError
from ..engine.evaluation.fid_label import NONSTANDARD, NONSTANDARD_KEY
from ..engine.evaluation.protocols import accuracy_text, gains_text, headline_line
from ..rundir import INGEST_LOCK, JobKind, RunStatus
from ..rundir.figures import clock, percent
from .common import add_workspace, storage_error, workspace_of
from .tables import cut, number, open_store, table, when


def register(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser("runs", help="the runs of the workspace: list, show, export, tag, note, rename, delete")
    rsub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)

    p = rsub.add_parser("list", help="runs with their status, dataset, best probe accuracy and last loss")
    p.add_argument("--kind", action="append", help="only runs of this kind (repeatable)")
    p.add_argument("--status", action="append", help="only runs with this status (repeatable)")
    p.add_argument("--tag", action="append", help="only runs with this tag (repeatable: all of them)")
    p.add_argument("--where", metavar="QUERY",
                   help="only runs matching this query, e.g. 'diffusion.n_T <= 256 and best > 0.8 or tag:baseline' "
                        "(names: kind, status, name, best, loss, created, tag:X, any spec key, the metrics of "
                        "--columns)")
    p.add_argument("--limit", type=int, help="at most this many, newest first")
    p.add_argument("--columns", metavar="NAMES", help="more columns, comma-separated: settings (diffusion.n_T, lr) "
                   "or metrics (best_t, best_layer, gain_pixels, gain_random, fid, fid_step, loss)")
    p.add_argument("--sort", metavar="NAME", help="sort by a column, a setting or a metric (default: created)")
    p.add_argument("--ascending", action="store_true", help="sort smallest first (default: largest first)")
    p.add_argument("--group-by", metavar="NAMES", help="one row per distinct value of these comma-separated "
                   "columns, e.g. diffusion.n_T, with n, mean ± std, min and max of --metrics")
    p.add_argument("--metrics", metavar="NAMES", default="best",
                   help="metrics a group row aggregates, comma-separated (default: best)")
    p.add_argument("--format", choices=("text", "markdown", "latex"), default="text",
                   help="how --group-by prints its table (markdown and latex: the paper's table)")
    add_workspace(p)
    p.set_defaults(func=cmd_runs_list)

    p = rsub.add_parser("readme-row", help="a train run's best-probe and best-FID checkpoints as a row of the "
                        "official DDAE README's table (HTML)")
    p.add_argument("run", help="run id, id prefix or name")
    add_workspace(p)
    p.set_defaults(func=cmd_runs_readme_row)

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

    p = rsub.add_parser("rename", help="rename a run (names are unique: a taken one is refused)")
    p.add_argument("run", help="run id, id prefix or name")
    p.add_argument("name", help="the new name")
    add_workspace(p)
    p.set_defaults(func=cmd_runs_rename)

    p = rsub.add_parser("delete", help="delete a run and its folder (asks first)")
    p.add_argument("run", help="run id, id prefix or name")
    p.add_argument("--yes", action="store_true", help="do not ask")
    add_workspace(p)
    p.set_defaults(func=cmd_runs_delete)

    p = sub.add_parser("reindex", help="rebuild studio.sqlite from the run folders alone")
    add_workspace(p)
    p.set_defaults(func=cmd_reindex)


def _check_choices(values: list[str] | None, allowed, what: str) -> None:
    for value in values or ():
        if value not in allowed:
            raise UserError(f"Unknown {what} {value!r}; use one of {', '.join(allowed)}.")


def cmd_runs_list(args) -> int:
    from db.records import STATUSES

    _check_choices(args.kind, tuple(JobKind), "run kind")
    _check_choices(args.status, STATUSES, "status")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1 (got {args.limit}).")
    filters = {"kind": args.kind, "status": args.status, "tag": args.tag, "where": args.where}
    if args.group_by:
        return _list_groups(args, filters)
    columns = _names(args.columns)
    order_by, descending = args.sort or "created", not args.ascending
    with open_store(args) as (_, store):
        try:
            runs = store.list_runs(**filters, limit=args.limit, order_by=order_by, descending=descending)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        values = store.column_values([r.id for r in runs], columns) if columns else {}
    if not runs:
        print("no runs match" if (args.kind or args.status or args.tag or args.where) else "no runs yet")
        return 0
    rows = [(r.id, cut(r.name, 32), r.kind, r.status, cut(r.data, 28), accuracy_text(r.best_accuracy, r.best_protocol),
             gains_text(r.best_accuracy, r.baseline_pixels, r.baseline_random), number(r.last_loss),
             *(_cell(c, values[r.id].get(c)) for c in columns)) for r in runs]
    table(("ID", "NAME", "KIND", "STATUS", "DATASET", "BEST ACC", "OVER PIXELS/RANDOM", "LAST LOSS",
           *(c.upper() for c in columns)), rows)
    return 0


def _names(text: str | None) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def _cell(name: str, value) -> str:
    from db.metrics import METRICS
    from db.paper_table import number_text

    if value is None:
        return "-"
    if name in METRICS and isinstance(value, (int, float)):
        return number_text(name, value)
    return cut(str(value), 24)


def _list_groups(args, filters: dict) -> int:
    from db.paper_table import latex, markdown, number_text, table_cells

    by, metrics = _names(args.group_by), _names(args.metrics)
    with open_store(args) as (_, store):
        groups = store.group_runs(by, metrics, **filters)
    if not groups:
        print("no runs match" if any(filters.values()) else "no runs yet")
    elif args.format == "markdown":
        print(markdown(groups, by, metrics), end="")
    elif args.format == "latex":
        print(latex(groups, by, metrics), end="")
    else:
        headers, cells = table_cells(groups, by, metrics)
        stats = [[(f"{number_text(m, g.stats[m].min)}..{number_text(m, g.stats[m].max)}")
                  for m in metrics] for g in groups]
        table((*(h.upper() for h in headers), *(f"{m.upper()} MIN..MAX" for m in metrics)),
              [(*row, *extra) for row, extra in zip(cells, stats)])
    return 0


def cmd_runs_readme_row(args) -> int:
    with open_store(args) as (_, store):
        try:
            print(store.readme_row(args.run), end="")
        except LookupError as exc:
            raise UserError(str(exc)) from None
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
    from ..jobs.queue_ops import get_run

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
    running = run.status == RunStatus.RUNNING and run.progress_fraction is not None
    print(f"status    {run.status}" + (f" ({percent(run.progress_fraction)} of {run.progress_stage or 'work'})"
                                        if running else ""))
    if run.error:
        print(f"error     {run.error}")
    print(f"data      {run.data or '-'}")
    if run.best_accuracy is not None:
        grid = f" (grid {run.best_grid})" if run.best_grid and run.best_grid != run.id else ""
        line = headline_line(run.best_accuracy, run.best_protocol, run.baseline_pixels, run.baseline_random)
        print(f"headline  {line}{grid}")
    if run.parent_ref:
        print(f"parent    {run.parent_ref}, checkpoint {run.parent_checkpoint or 'latest'}"
              + ("" if run.parent_run else " (deleted)"))
    gpus = f"{run.gpus} GPU{'s' if run.gpus != 1 else ''}"
    print(f"device    {run.device or '-'} (asked for {run.device_request}, {gpus})")
    took = (run.finished or time.time()) - run.started if run.started else None
    print(f"times     created {when(run.created)}, started {when(run.started)}, finished {when(run.finished)}"
          + (f", {clock(took)}" if took is not None else ""))
    print(f"tags      {', '.join(run.tags) or '-'}")
    if run.notes:
        print(f"notes     {run.notes}")
    for line in _spec_lines(run.spec):
        print(line)
    print(f"folder    {run_dir}")
    if any(s.key == NONSTANDARD_KEY for s in summaries):
        print(f"FID       {NONSTANDARD}: computed with other Inception weights or dims than pytorch-fid's "
              "pt_inception-2015-12-05 at 2048 dims; not comparable with published FIDs")
    if summaries:
        print("\nmetrics:")
        table(("  KEY", "POINTS", "LATEST", "AT STEP", "BEST", "AT STEP"),
               [(f"  {s.key}", str(s.count), number(s.latest_value), str(s.latest_step), number(s.best_value),
                 "-" if s.best_step is None else str(s.best_step)) for s in summaries])
    known = [c for c in cells if c.accuracy is not None]
    if known:
        best = max(known, key=lambda c: c.accuracy)
        print(f"\nprobe grid: best cell {best.layer} at t={best.timestep}: {percent(best.accuracy)} "
              f"({len(cells)} cells)")
    if artifacts:
        print("\nartifacts:")
        table(("  KIND", "STEP", "PATH"),
               [(f"  {a.kind}", "-" if a.step is None else str(a.step), a.path) for a in artifacts])
    if children:
        print("\nevaluations of this run:")
        for child in children:
            print(f"  {child.id}  {child.kind}  {child.status}  {child.name}")
    return 0


def cmd_runs_export(args) -> int:
    from pathlib import Path

    from db import export_run_csv

    from ..jobs.queue_ops import get_run

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
    from ..jobs.queue_ops import get_run

    with open_store(args) as (_, store):
        run_id = get_run(store, args.run).id
        tags: tuple[str, ...] = ()
        for tag in args.tags:
            tags = store.remove_tag(run_id, tag) if args.remove else store.add_tag(run_id, tag)
    print(f"{run_id}: tags {', '.join(tags) or '(none)'}")
    return 0


def cmd_runs_note(args) -> int:
    from ..jobs.queue_ops import get_run

    with open_store(args) as (_, store):
        run_id = get_run(store, args.run).id
        store.set_notes(run_id, args.text)
    print(f"{run_id}: notes {'set' if args.text else 'cleared'}")
    return 0


def cmd_runs_rename(args) -> int:
    from ..jobs.queue_ops import get_run

    with open_store(args) as (_, store):
        run_id = get_run(store, args.run).id
        try:
            store.rename(run_id, args.name)
        except ValueError as exc:          # NameTaken, or an empty name: one sentence each
            raise UserError(str(exc)) from None
    print(f"{run_id}: renamed {args.name.strip()!r}")
    return 0


def cmd_runs_delete(args) -> int:
    from ..jobs.queue_ops import get_run

    with open_store(args) as (_, store):
        run = get_run(store, args.run)
        if run.status == RunStatus.RUNNING:
            raise UserError(f"Run {run.id} is running; cancel it first (`ddae queue cancel {run.id}`).")
        run_dir = store.run_dir(run.id)
        target = run_dir.resolve() if run_dir.is_symlink() else None
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
        except ValueError:                 # not a folder of this workspace: the Store refuses to remove it
            raise UserError(f"Run {run.id} left the index, but {run_dir} was kept: it is not a run folder of "
                            "this workspace, so remove it by hand if you mean to.") from None
    if target is not None:
        print(f"deleted {run.id} and the link {run_dir}; the folder it pointed to, {target}, is kept")
    else:
        print(f"deleted {run.id} and {run_dir}")
    return 0


def cmd_reindex(args) -> int:
    from db import SchemaError

    workspace = workspace_of(args)
    try:
        count, by = _reindex(workspace)
    except SchemaError as exc:
        raise UserError(str(exc)) from None
    except Exception as exc:
        error = storage_error(exc, workspace)
        if error is None:
            raise
        raise UserError(f"Reindexing {workspace} failed, so the index was left as it was. {error}") from None
    if by:
        print(f"{by} rebuilt the index of {workspace} from its run folders: {count} run{'s' if count != 1 else ''} "
              "(the old index is kept as studio.sqlite.old)")
    else:
        print(f"reindexed {count} run{'s' if count != 1 else ''} of {workspace} from its run folders "
              "(the old index is kept as studio.sqlite.old)")
    return 0


def _reindex(workspace, patience_s: float = 3.0) -> tuple[int, str]:
    """reindex() here, or by the process that keeps the index (a scheduler, the app); (runs, who else did it).

    Another reindex refuses at once with nothing changed; a command that ingests for a moment is waited for.
    """
    from db import IngestLockError, rebuild_by_ingester, reindex
    from db.reindex import REINDEX_ROLE

    from ..rundir import LockTimeout, lock_holder, lock_role

    deadline = time.monotonic() + patience_s
    while True:
        try:
            return reindex(workspace), ""
        except LockTimeout as exc:
            raise UserError(str(exc)) from None
        except IngestLockError:
            holder = lock_holder(workspace / INGEST_LOCK) or "another process"
            if lock_role(workspace / INGEST_LOCK) == REINDEX_ROLE:
                raise UserError(f"{workspace} is being reindexed by {holder} already; this reindex changed nothing "
                                "(run it again after that one has finished, if you still need to).") from None
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
    # A scheduler or the app keeps the index: it rebuilds the index itself once the live file is moved aside.
    print(f"the index is kept by {holder} (a scheduler or the app); it rebuilds it", file=sys.stderr, flush=True)
    try:
        return rebuild_by_ingester(workspace), holder
    except LockTimeout as exc:                  # nothing was moved
        raise UserError(str(exc)) from None
    except TimeoutError as exc:
        raise UserError(f"The index of {workspace} was moved aside, but {exc}; stop that process (Ctrl-C in "
                        "`ddae queue serve`, or quit the app), then run `ddae reindex` again.") from None
