"""Checkpoint sweeps: FID and probe accuracy of a training run's checkpoints, as queued child jobs.

Each chosen checkpoint gets an `fid` job and a `probe` job (fast protocol; one cell, or the whole grid
whose best cell counts), queued with their parent checkpoint named, so the scheduler runs them in
parallel on free devices. A sweep is a plan (a plain dict, validated once); `ddae sweep` applies it
to the checkpoints a run has, and a training run whose spec carries one applies it to each checkpoint
as it is saved. Its jobs are written as run folders with a queue block, which the index enqueues when
it registers them, so a training worker queues them without opening the database.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

from ..engine.config import ModelConfig
from ..engine.errors import ConfigError, UserError
from ..engine.evaluation.fid_label import NONSTANDARD, NONSTANDARD_KEY
from ..engine.evaluation.inception import DIMS, find_weights, require_library
from ..engine.spec.fields import check_device, check_seed, whole_in
from ..rundir import EVENTS, RUNS_DIR, EventType, JobKind, RunStatus, list_checkpoints, read_spec
from .eval_specs import _check_sampler, fid_spec, parse_layers, parse_timesteps, probe_spec
from .submit import submit

log = logging.getLogger(__name__)

_EVERY = re.compile(r"^every\s*[: =]?\s*(\d+)$")


def parse_checkpoints(value) -> str | dict:
    """'all' or 'every K' (steps that are multiples of K) -> 'all' or {'every': K}."""
    text = " ".join(value) if isinstance(value, (list, tuple)) else str(value or "all")
    text = text.strip().lower()
    if text == "all":
        return "all"
    match = _EVERY.match(text)
    if not match:
        raise ConfigError("checkpoints", f"must be all or every K, K a number of steps (got {text!r})")
    return {"every": whole_in("checkpoints", int(match.group(1)))}


def parse_probe(value, model_cfg: ModelConfig) -> dict | None:
    """None/'' (the config's timestep and layer), 'grid' (the paper's grid, its best cell), 't,layer', or 'none'."""
    text = str(value).strip() if value is not None else ""
    if text.lower() == "none":
        return None
    if text.lower() == "grid":
        timesteps, layers = None, "all"
    elif not text:
        timesteps, layers = [model_cfg.feature_timestep], [model_cfg.feature_layer]
    else:
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 2:
            raise ConfigError("probe", f"must be grid, none, or a timestep and a layer like 11,out_6 (got {text!r})")
        timesteps, layers = parts[0], parts[1]
    return {"timesteps": parse_timesteps(timesteps, model_cfg, "probe"),
            "layers": parse_layers(layers, model_cfg, "probe")}


def sweep_plan(model_cfg: ModelConfig, workspace: Path, *, checkpoints="all", fid_n=10000, probe=None, sampler=None,
               steps=None, batch_size=250, dims=2048, inception=None, data=None, device="auto", seed=0,
               priority=0) -> dict:
    """A validated sweep plan for runs of `model_cfg`; fid_n=0 leaves FID out, probe='none' the probe."""
    fid_n = whole_in("fid_n", fid_n, minimum=0)
    if fid_n == 1:
        raise ConfigError("fid_n", "must be 0 (no FID) or at least 2")
    plan = {
        "checkpoints": parse_checkpoints(checkpoints),
        "fid": None,
        "probe": parse_probe(probe, model_cfg),
        "data": data,
        "device": check_device(device),
        "seed": check_seed(seed),
        "priority": int(priority),
    }
    if fid_n:
        if int(dims) not in DIMS:
            raise ConfigError("dims", f"must be one of {', '.join(map(str, DIMS))} (got {dims})")
        require_library()
        weights = find_weights(workspace, inception)
        plan["fid"] = {"n": fid_n, "sampler": _check_sampler(model_cfg, sampler),
                       "steps": None if steps is None else whole_in("steps", steps),
                       "batch_size": None if batch_size is None else whole_in("batch_size", batch_size),
                       "dims": int(dims), "inception": str(weights) if inception else None}
    if plan["fid"] is None and plan["probe"] is None:
        raise ConfigError("sweep", "asks for neither FID nor a probe; give --fid-n above 0 or a --probe")
    return plan


def selected(step: int, plan: dict) -> bool:
    which = plan["checkpoints"]
    return which == "all" or step % int(which["every"]) == 0


def child_specs(parent_dir: Path, step: int, plan: dict, sweep_id: str) -> list[dict]:
    """The sweep's jobs for one checkpoint: fid, then probe (each named after the step)."""
    specs = []
    common = {"checkpoint": step, "data": plan["data"], "device": plan["device"], "seed": plan["seed"]}
    parent = read_spec(parent_dir).get("name") or parent_dir.name
    if plan["fid"]:
        fid = plan["fid"]
        specs.append(fid_spec(parent_dir, n=fid["n"], sampler=fid["sampler"], steps=fid["steps"],
                              batch_size=fid["batch_size"], dims=fid["dims"], inception=fid["inception"],
                              name=f"fid of {parent} at step {step}", **common))
    if plan["probe"]:
        specs.append(probe_spec(parent_dir, timesteps=plan["probe"]["timesteps"], layers=plan["probe"]["layers"],
                                protocol="fast", baselines=False, name=f"probe of {parent} at step {step}", **common))
    for spec in specs:
        spec["options"]["sweep"] = sweep_id
    return specs


def queue_children(parent_dir: Path, steps: list[int], plan: dict, sweep_id: str, store=None) -> list[Path]:
    """Submit the sweep's jobs for `steps` (their names made up: numbered when taken); returns their folders.

    store: the workspace's open index (`ddae sweep`). A training worker passes none: its jobs are written
    as folders with a queue block, which the index enqueues when the scheduler's ingester registers them.
    """
    workspace = Path(parent_dir).parent.parent
    specs = [spec for step in steps for spec in child_specs(parent_dir, step, plan, sweep_id)]
    return [workspace / RUNS_DIR / submit(workspace, spec, plan["priority"], name_chosen=False, store=store)
            for spec in specs]


def sweep_steps(parent_dir: Path, plan: dict) -> list[int]:
    """The steps of the run's checkpoints the plan picks; one sentence when there are none."""
    steps = [s for s, _ in list_checkpoints(parent_dir)]
    if not steps:
        raise UserError(f"Run {parent_dir.name} has no checkpoint yet; sweep it once it has saved one.")
    chosen = [s for s in steps if selected(s, plan)]
    if not chosen:
        raise UserError(f"No checkpoint of run {parent_dir.name} is at a multiple of {plan['checkpoints']['every']} "
                        f"steps (it has {', '.join(map(str, steps[-6:]))}); choose another K or all.")
    return chosen


def new_sweep_id(parent_dir: Path) -> str:
    return f"{parent_dir.name}@{time.strftime('%Y%m%d-%H%M%S')}"


def checkpoint_hook(run_dir: Path, plan: dict):
    """A training hook: queue the sweep's jobs for each checkpoint it picks, as the checkpoint is saved.

    A job that cannot be queued (the Inception weights moved away, say) is a line in the log; training
    goes on.
    """
    run_dir = Path(run_dir)
    queued: set[int] | None = None

    def hook(step: int, _ema_model) -> None:
        nonlocal queued
        if queued is None:       # a resumed run: what its earlier workers queued
            queued = {int(s) for s in children_by_step(run_dir, run_dir.name)}
        # A cancel right after a save saves the same step again; its jobs are queued once.
        if not selected(step, plan) or step in queued:
            return
        try:
            made = queue_children(run_dir, [step], plan, sweep_id=run_dir.name)
        except UserError as exc:
            log.info(f"sweep: the jobs of step {step} were not queued: {exc}")
            return
        queued.add(step)
        log.info(f"sweep: queued {', '.join(p.name for p in made)} for step {step}")
    return hook


def children_by_step(parent_dir: Path, sweep_id: str | None = None) -> dict[int, list[Path]]:
    """{checkpoint step: [run dirs]} of the sweep jobs (fid and probe runs with options.sweep) of a run.

    Only folders created after the parent are read (run ids sort by creation time); `sweep_id` picks one sweep.
    """
    parent_dir = Path(parent_dir)
    found: dict[int, list[Path]] = {}
    for child in sorted((parent_dir.parent).iterdir()):
        # Compare the ids' times alone: a child made in its parent's second sorts before it ("fid" < "train").
        if child.name[:15] < parent_dir.name[:15] or not ("-fid-" in child.name or "-probe-" in child.name):
            continue
        try:
            spec = read_spec(child)
        except UserError:
            continue
        parent = spec.get("parent") or {}
        sweep = (spec.get("options") or {}).get("sweep")
        if parent.get("run") != parent_dir.name or not sweep or (sweep_id is not None and sweep != sweep_id):
            continue
        try:
            found.setdefault(int(parent.get("checkpoint")), []).append(child)
        except (TypeError, ValueError):
            continue
    return found


def _child_result(run_dir: Path, key: str) -> str:
    """The child's value of `key` as text, else its status (queued, running, failed, ...)."""
    value, status, mark = None, RunStatus.QUEUED, ""
    try:
        lines = (run_dir / EVENTS).read_text().splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("type") == EventType.METRIC and event.get("key") == key:
            value = event.get("value")
        elif event.get("type") == EventType.METRIC and event.get("key") == NONSTANDARD_KEY:
            mark = f" ({NONSTANDARD})"
        elif event.get("type") == EventType.STATUS:
            status = event.get("status", status)
    if value is None:
        return status
    return f"{100 * value:.2f}%" if key == "probe/accuracy" else f"{value:.3f}{mark}"


def sweep_table(parent_dir: Path) -> str:
    """Step by step, the FID and probe accuracy of a run's sweep jobs (the newest job of each), as text."""
    rows = []
    for step, children in sorted(children_by_step(parent_dir).items()):
        cells = {}
        for child in children:                    # oldest first: the newest job of a kind wins
            kind = JobKind.FID if "-fid-" in child.name else JobKind.PROBE
            cells[kind] = _child_result(child, "fid" if kind == JobKind.FID else "probe/accuracy")
        rows.append((str(step), cells.get(JobKind.FID, "-"), cells.get(JobKind.PROBE, "-")))
    if not rows:
        name = Path(parent_dir).name
        return f"Run {name} has no sweep jobs yet; `ddae sweep --run {name}` queues them."
    header = ("STEP", "FID", "PROBE ACC")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [header, *rows])
