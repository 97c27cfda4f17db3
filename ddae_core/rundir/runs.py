"""Workspaces and their runs (docs/run-directory.md): resolving the workspace, creating a run folder,
finding a run by id or name, and its checkpoints."""

from __future__ import annotations

import errno
import os
import secrets
import socket
import time
from pathlib import Path

import yaml

from .atomic import atomic_write_text
from .errors import UserError
from .files import read_meta
from .layout import CHECKPOINT_RE, CHECKPOINTS_DIR, DATA_DIR, RUNS_DIR, SPEC, checkpoint_name
from .vocab import JobKind


def resolve_workspace(path: str | Path | None = None, create: bool = True) -> Path:
    """--workspace, else $DDAE_WORKSPACE, else ~/ddae-workspace; its runs/ and data/ are created."""
    chosen = path or os.environ.get("DDAE_WORKSPACE") or Path.home() / "ddae-workspace"
    ws = Path(chosen).expanduser().resolve()
    if create:
        # Else SQLite reports a read-only folder as an unreadable database, and `ddae reindex` as the cure.
        read_only = UserError(f"Workspace {ws} is read-only, so no run or index can be written there; make it "
                              "writable or choose another with --workspace.")
        try:
            (ws / RUNS_DIR).mkdir(parents=True, exist_ok=True)
            (ws / DATA_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if ws.is_dir() and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise read_only from None
            raise UserError(f"Workspace {ws} cannot be created ({exc.strerror}); "
                            "choose another with --workspace.") from None
        if not all(os.access(folder, os.W_OK) for folder in (ws, ws / RUNS_DIR)):
            raise read_only
    return ws


def new_run_id(kind: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{secrets.token_hex(2)}"


def create_run(workspace: Path, kind: str, *, name: str | None = None, data: str | None = None,
               parent: dict | None = None, device: dict | None = None, queue: dict | None = None,
               config: dict | None = None, options: dict | None = None) -> Path:
    """Make runs/<id>/ with its spec.yaml (written once) and return the directory."""
    if kind not in tuple(JobKind):
        raise ValueError(f"unknown run kind {kind!r}")
    run_id = new_run_id(kind)
    run_dir = workspace / RUNS_DIR / run_id
    run_dir.mkdir(parents=True)
    spec = {
        "id": run_id,
        "name": name or run_id,
        "kind": kind,
        "created": round(time.time(), 3),
        "host": socket.gethostname(),
        "data": data,
        "parent": parent,
        "device": device or {"request": "auto", "gpus": 1},
        "config": config,
        "options": options or {},
    }
    if queue is not None:
        spec["queue"] = queue
    try:
        atomic_write_text(run_dir / SPEC, yaml.safe_dump(spec, sort_keys=False))
    except BaseException:
        run_dir.rmdir()                 # a full disk, say: no empty run folder left behind
        raise
    return run_dir


def find_run(workspace: Path, ref: str) -> Path:
    """A run directory by id, unique id prefix, or exact name (from spec.yaml/meta.json); one sentence if not."""
    runs = workspace / RUNS_DIR
    ref = str(ref).strip()
    if ref and (runs / ref / SPEC).is_file():
        return runs / ref
    if Path(ref).is_dir() and (Path(ref) / SPEC).is_file():
        return Path(ref).resolve()
    ids = sorted(p.name for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []
    matches = [i for i in ids if i.startswith(ref)] if ref else []
    if not matches:
        for run_id in reversed(ids):
            spec = (runs / run_id / SPEC)
            if not spec.is_file():
                continue
            name = read_meta(runs / run_id).get("name")
            if name is None:
                try:
                    name = (yaml.safe_load(spec.read_text()) or {}).get("name")
                except yaml.YAMLError:
                    continue
            if name == ref:
                matches.append(run_id)
    if len(matches) == 1:
        return runs / matches[0]
    if not matches:
        raise UserError(f"No run {ref!r} in {workspace}; `ddae runs list` shows the runs there.")
    raise UserError(f"{ref!r} matches {len(matches)} runs ({', '.join(matches[:3])}, ...); give more of the id.")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / checkpoint_name(step)


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint, by step."""
    folder = Path(run_dir) / CHECKPOINTS_DIR
    found = []
    if folder.is_dir():
        for p in folder.iterdir():
            m = CHECKPOINT_RE.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
    return sorted(found)


def resolve_checkpoint(run_dir: Path, which: str | int = "latest") -> tuple[int, Path]:
    """`latest` or a step number -> (step, path); one sentence when the run has none."""
    ckpts = list_checkpoints(run_dir)
    if not ckpts:
        raise UserError(f"Run {Path(run_dir).name} has no checkpoint yet; wait for its first save or train it longer.")
    if str(which) == "latest":
        return ckpts[-1]
    try:
        step = int(which)
    except ValueError:
        raise UserError(f"Checkpoint {which!r} is neither 'latest' nor a step number.") from None
    for s, p in ckpts:
        if s == step:
            return s, p
    steps = ", ".join(str(s) for s, _ in ckpts[-6:])
    raise UserError(f"Run {Path(run_dir).name} has no checkpoint at step {step}; it has {steps}.")
