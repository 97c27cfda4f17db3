"""What the index reads of a run folder (docs/run-directory.md): spec.yaml and meta.json as one record.

db registers runs from these; the engine and the job system read spec.yaml and meta.json through the same
two readers (read_spec, read_meta), so a damaged file is refused in the same words everywhere.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .atomic import atomic_write
from .errors import RunDirError
from .layout import EVENTS, META, SPEC
from .values import DEVICE_REQUESTS, check_gpus, check_priority

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunFiles:
    """What register_run needs from a run folder, with meta.json's overrides applied."""

    id: str
    spec: dict[str, Any]
    meta: dict[str, Any]
    name: str
    kind: str
    data: str | None
    created: float | None
    host: str | None
    parent_ref: str | None
    parent_checkpoint: str | None
    device_request: str
    gpus: int
    queued: bool                    # spec has a queue: block
    priority: int
    tags: list[str]
    notes: str
    has_events: bool = True         # events.jsonl exists and is not empty: its worker started at least


def read_spec(run_dir: Path) -> dict[str, Any]:
    """spec.yaml as a dict; RunDirError (a UserError) in one sentence when it is missing or damaged."""
    path = Path(run_dir) / SPEC
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{run_dir} is not a run folder: it has no {SPEC}.") from None
    except yaml.YAMLError:
        raise RunDirError(f"{path} is not valid YAML; the run's spec is damaged.") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise RunDirError(f"{path} cannot be read ({exc.__class__.__name__}); the run's spec is damaged.") from None
    if not isinstance(spec, dict):
        raise RunDirError(f"{path} does not hold a run spec (a YAML mapping).")
    return spec


def read_meta(run_dir: Path) -> dict[str, Any]:
    """meta.json as a dict; {} when missing, and {} with a warning when damaged."""
    path = Path(run_dir) / META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (ValueError, OSError) as exc:
        log.warning("Ignoring %s: it cannot be read (%s).", path, exc.__class__.__name__)
        return {}
    return meta if isinstance(meta, dict) else {}


def write_meta(run_dir: Path, updates: dict[str, Any]) -> None:
    """Merge `updates` into meta.json atomically (temp file, fsync, os.replace); keeps unknown keys."""
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    meta.update(updates)
    atomic_write(run_dir / META, lambda fh: fh.write(json.dumps(meta, indent=2, sort_keys=True) + "\n"))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):       # OverflowError: int(inf)
        return default


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _checked(check, value: Any, where: Path) -> int:
    """check(value) (whole numbers written as "5" or 5.0 accepted), or RunDirError naming the file.

    One hand-edited value the index cannot hold must skip its run, not stop every later ingest.
    """
    try:
        value = int(value) if isinstance(value, (str, float)) else value
    except (ValueError, OverflowError):      # "high" or inf: check() names it as written
        pass
    try:
        return check(value)
    except ValueError as exc:
        raise RunDirError(f"{where}: {exc} Fix or remove that value.") from None


def read_json_dict(path: Path) -> dict | None:
    """A JSON object written whole (grid.json, a result file, a cache entry); None when it is absent, cannot be
    read or parsed, or is not an object: the callers' "not written yet"."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def json_safe(value: Any) -> Any:
    """YAML values JSON cannot hold (dates, sets, tuples) as strings or lists."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def read_run(run_dir: Path) -> RunFiles:
    """spec.yaml plus meta.json of one run folder; the folder name is the run id."""
    run_dir = Path(run_dir)
    spec = json_safe(read_spec(run_dir))
    meta = read_meta(run_dir)
    run_id = run_dir.name
    if spec.get("id") not in (None, run_id):
        log.warning("Run folder %s names itself %r in %s; using the folder name.", run_dir, spec.get("id"), SPEC)
    parent = spec.get("parent")
    parent_ref = parent_ckpt = None
    if isinstance(parent, dict):
        parent_ref = _text(parent.get("run"))
        parent_ckpt = _text(parent.get("checkpoint"))
    elif isinstance(parent, str):
        parent_ref = parent
    device = spec.get("device") if isinstance(spec.get("device"), dict) else {}
    request = device.get("request", "auto")
    queue = spec.get("queue")
    queue = queue if isinstance(queue, dict) else ({} if queue else None)
    tags = meta.get("tags", [])
    tags = [str(t) for t in tags] if isinstance(tags, list) else []
    name = meta.get("name") or spec.get("name") or run_id
    return RunFiles(
        id=run_id,
        spec=spec,
        meta=meta,
        name=str(name),
        kind=str(spec.get("kind") or "unknown"),
        data=_text(spec.get("data")),
        created=_float(spec.get("created")),
        host=_text(spec.get("host")),
        parent_ref=parent_ref,
        parent_checkpoint=parent_ckpt,
        device_request=request if request in DEVICE_REQUESTS else "auto",
        gpus=_checked(check_gpus, max(0, _int(device.get("gpus"), 0)), run_dir / SPEC),
        queued=queue is not None,
        priority=_checked(check_priority, meta.get("priority", (queue or {}).get("priority")) or 0,
                          run_dir / (META if "priority" in meta else SPEC)),
        tags=list(dict.fromkeys(tags)),
        notes=str(meta.get("notes") or ""),
        has_events=_has_events(run_dir),
    )


def _has_events(run_dir: Path) -> bool:
    try:
        return (run_dir / EVENTS).stat().st_size > 0
    except OSError:
        return False
