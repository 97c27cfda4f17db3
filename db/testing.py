"""Run folders written as a worker would write them, for tests and benchmarks (no engine needed)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from ddae_core.rundir import (
    EVENTS,
    RUNS_DIR,
    SAMPLES_KEY,
    SPEC,
    ArtifactKind,
    EventType,
    JobKind,
    RunStatus,
    checkpoint_name,
    sample_name,
)


def run_id(kind: str = JobKind.TRAIN, n: int = 0, stamp: str = "20261126-130000") -> str:
    """A valid run id; `n` picks the 4 hex digits (and orders ids of one stamp)."""
    return f"{stamp}-{kind}-{n:04x}"


def write_run(workspace: Path, rid: str, *, kind: str = JobKind.TRAIN, name: str | None = None,
              data: Any = "builtin:shapes", parent: dict | None = None, queue: dict | None = None,
              gpus: int = 0, created: float | None = None, events: Iterable[dict] = (),
              options: dict | None = None, config: dict | None = None) -> Path:
    """Create runs/<rid>/ with spec.yaml and, when given, events.jsonl; returns the folder."""
    run_dir = Path(workspace) / RUNS_DIR / rid
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = {"id": rid, "name": name or rid, "kind": kind,
            "created": time.time() if created is None else created, "host": "testhost", "data": data,
            "parent": parent, "device": {"request": "cpu" if gpus == 0 else "cuda", "gpus": gpus},
            "config": config if config is not None else {"model": {"ch": 32}},
            "options": options if options is not None else {"steps": 100}}
    if queue is not None:
        spec["queue"] = queue
    (run_dir / SPEC).write_text(yaml.safe_dump(spec, sort_keys=False))
    append(run_dir, events)
    return run_dir


def append(run_dir: Path, events: Iterable[dict | str], torn: str = "") -> None:
    """Append events (dicts as JSON lines, strings verbatim plus a newline) and an optional torn tail."""
    with open(Path(run_dir) / EVENTS, "a", encoding="utf-8") as fh:
        for ev in events:
            fh.write((ev if isinstance(ev, str) else json.dumps(ev, separators=(",", ":"))) + "\n")
        fh.write(torn)


def metric(key: str, step: int, value: float, t: float = 1000.0) -> dict:
    return {"type": EventType.METRIC, "key": key, "step": step, "value": value, "time": t}


def status(value: str, t: float = 1000.0, **fields) -> dict:
    return {"type": EventType.STATUS, "status": value, "time": t, **fields}


def grid(timesteps: list[int], layers: list[str], t: float = 1000.0) -> dict:
    return {"type": EventType.GRID, "timesteps": timesteps, "layers": layers,
            "labels": {str(ts): f"t={ts}" for ts in timesteps}, "time": t}


def grid_cell(layer: str, timestep: int, accuracy: float, t: float = 1000.0) -> dict:
    return {"type": EventType.GRID_CELL, "layer": layer, "timestep": timestep, "accuracy": accuracy, "time": t}


def image(step: int, key: str = SAMPLES_KEY, t: float = 1000.0) -> dict:
    return {"type": EventType.IMAGE, "key": key, "step": step, "path": sample_name(step), "time": t}


def artifact(kind: str, path: str, step: int | None = None, t: float = 1000.0) -> dict:
    return {"type": EventType.ARTIFACT, "kind": kind, "step": step, "path": path, "time": t}


def progress(done: int, total: int, stage: str = "train", t: float = 1000.0) -> dict:
    return {"type": EventType.PROGRESS, "done": done, "total": total, "stage": stage, "time": t}


def training_events(steps: int, every: int = 10, t0: float = 1000.0) -> list[dict]:
    """A small complete train run: status, losses, progress, samples, a checkpoint, done."""
    events = [status(RunStatus.RUNNING, t0, pid=4242, host="testhost", device="cpu")]
    for step in range(0, steps, every):
        t = t0 + step
        events.append(metric("loss/train", step, 1.0 / (1 + step), t))
        events.append(metric("lr", step, 2e-4, t))
        events.append(progress(step + every, steps, "train", t))
    events += [image(steps), artifact(ArtifactKind.CHECKPOINT, checkpoint_name(steps), steps),
               status(RunStatus.DONE, t0 + steps + 1)]
    return events


def write_lab(workspace: Path, n_Ts: Iterable[int] = (1000, 256), seeds: int = 3) -> dict[str, dict]:
    """A small ablation as run folders: a train run per (n_T, seed), each with a probe grid child (baselines
    and a headline) and an FID child; returns train run id -> {n_T, seed, best, fid, fid_step, loss}."""
    truth: dict[str, dict] = {}
    n = 0
    for n_T in n_Ts:
        for seed in range(seeds):
            train = run_id(JobKind.TRAIN, n)
            best = round(0.5 + 0.0001 * n_T + 0.03 * seed, 6)
            fid = round(30.0 - 0.01 * n_T + seed, 6)
            loss = round(0.1 + 0.01 * seed, 6)
            write_run(workspace, train, name=f"T{n_T} seed {seed}", created=1000.0 + n,
                      config={"diffusion": {"n_T": n_T, "betas": [1e-4, 0.02]}, "network": {"ch": 32},
                              "lrate": 2e-4},
                      options={"seed": seed, "steps": 100},
                      events=[status(RunStatus.RUNNING), metric("loss/train", 100, loss), status(RunStatus.DONE)])
            probe = run_id(JobKind.PROBE, n)
            write_run(workspace, probe, kind=JobKind.PROBE, name=f"probe of T{n_T} seed {seed}",
                      created=1500.0 + n, parent={"run": train, "checkpoint": 100},
                      options={"protocol": "fast"}, config={"diffusion": {"n_T": n_T}},
                      events=[status(RunStatus.RUNNING), grid([11, 51], ["out_3", "out_6"]),
                              grid_cell("out_3", 11, best - 0.01), grid_cell("out_6", 51, best),
                              metric("probe/baseline/pixels", 0, 0.3), metric("probe/baseline/random_init", 0, 0.2),
                              metric("probe/accuracy", 0, best), status(RunStatus.DONE)])
            fid_run = run_id(JobKind.FID, n)
            write_run(workspace, fid_run, kind=JobKind.FID, name=f"fid of T{n_T} seed {seed}",
                      created=1600.0 + n, parent={"run": train, "checkpoint": "all"},
                      options={"n": 100}, config={"diffusion": {"n_T": n_T}},
                      events=[status(RunStatus.RUNNING), metric("fid", 50, fid + 5), metric("fid", 100, fid),
                              status(RunStatus.DONE)])
            truth[train] = {"n_T": n_T, "seed": seed, "best": best, "fid": fid, "fid_step": 100, "loss": loss,
                            "gain_pixels": best - 0.3, "best_t": 51, "best_layer": "out_6"}
            n += 1
    return truth
