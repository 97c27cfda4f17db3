"""Bundled example runs: a pretrained model that knows something, shipped with the tool.

An example is a small family of run directories (a train run and the probe grid of its last checkpoint)
kept under `resources/examples/<name>/`, packed compactly: the EMA weights of the last checkpoint in fp16
(no raw weights, no optimizer: an example is for evaluating, not for training on), xz-compressed; the full
event log, xz-compressed (so its loss curve shows); a few of its sample grids (the first, the last and
evenly between); and the probe's grid.json and heads. All examples together stay under BUNDLE_LIMIT.
`install` copies the family into a workspace under the same run ids, decompressing what was compressed,
where the ingester indexes it like any run;
its meta.json marks it read-only and tags it `example`. `pack` rebuilds an example from runs trained by
the recipe beside it (`resources/examples/recipe.sh`).
"""

from __future__ import annotations

import gzip
import json
import lzma
import shutil
from importlib import resources
from pathlib import Path

from ..engine.checkpoint import FORMAT, FORMAT_VERSION, atomic_torch_save, read_checkpoint
from ..engine.errors import UserError
from ..rundir import (
    EVENTS,
    GRID,
    META,
    PROBE_HEADS,
    RUNS_DIR,
    SAMPLES_DIR,
    SPEC,
    ArtifactKind,
    EventType,
    JobKind,
    atomic_write_text,
    find_run,
    list_checkpoints,
    read_spec,
)

MANIFEST = "example.json"
BASELINES = "baselines"         # cached baseline results (as <workspace>/data/baselines/)
EXAMPLE_TAGS = ["example", "read-only"]
DEMO_EXAMPLE = "shapes"         # what `ddae demo` and the app's first-run demo import and probe
CLASSIFY_EXAMPLE = "cifar10"    # what the demo opens the Classify view on: photos get a meaningful answer
BUNDLE_LIMIT = 10 * 2**20       # bytes, all bundled examples together (10 MiB)
SAMPLE_GRIDS = 3                # sample grids shipped per train run
# Compressed on packing, decompressed on install (gzip: examples packed before xz).
PACKED = {".xz": lzma.open, ".gz": gzip.open}
# Standardised heads, 30 epochs: layers' features differ in scale, so this is the protocol that shows what
# each layer holds within a demo's minutes (labelled as such wherever its numbers appear).
DEMO_PROBE = {"protocol": "standardized", "epochs": 30}


def examples_dir() -> Path:
    return Path(str(resources.files("resources") / "examples"))


def available(root: Path | None = None) -> dict[str, dict]:
    """name -> manifest of every bundled example (of `root`, default the bundled ones)."""
    root = root or examples_dir()
    found = {}
    for manifest in sorted(root.glob(f"*/{MANIFEST}")) if root.is_dir() else []:
        found[manifest.parent.name] = json.loads(manifest.read_text())
    return found


def manifest(name: str, root: Path | None = None) -> dict:
    examples = available(root)
    if name not in examples:
        known = ", ".join(examples) or "none are bundled with this copy"
        raise UserError(f"There is no bundled example {name!r}; choose one of: {known}.")
    return examples[name]


def install(workspace: Path, name: str, root: Path | None = None) -> list[Path]:
    """Copy example `name` into the workspace (once; a second call finds it there); its run dirs, train run first."""
    info, source = manifest(name, root), (root or examples_dir()) / name
    # Baselines measured for the example's grid: a later probe for which they were measured exactly (same options,
    # precision, batch, device and probe code; evaluation/baselines.py) reads them, not a second grid. Entries
    # packed before the cache kept its key can match no grid, and are left out.
    for cached in sorted((source / BASELINES).glob("*.json")):
        dest = workspace / "data" / BASELINES / cached.name
        if not dest.exists() and "key" in json.loads(cached.read_text()):
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cached, dest)
    installed = []
    # Earlier stages of a run trained further (`--init-from`) first: the train run's parent is indexed before it.
    for run in [*info.get("ancestors", []), *info["runs"]]:
        dest = workspace / RUNS_DIR / run["id"]
        if not dest.exists():
            _install_run(source / run["id"], dest, run.get("name"))
        if run in info["runs"]:
            installed.append(dest)
    return installed


def _install_run(source: Path, dest: Path, name: str | None) -> None:
    # Built beside its final name and renamed into place, so a workspace never holds half an example.
    tmp = dest.with_name(f".{dest.name}.installing")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(*(f"*{suffix}" for suffix in PACKED)))
        for packed in sorted(source.rglob("*")):
            if packed.suffix in PACKED and packed.is_file():
                out = tmp / packed.relative_to(source).with_suffix("")
                out.parent.mkdir(parents=True, exist_ok=True)
                with PACKED[packed.suffix](packed, "rb") as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        meta = {"tags": EXAMPLE_TAGS, "read_only": True, **({"name": name} if name else {})}
        atomic_write_text(tmp / META, json.dumps(meta))
        tmp.rename(dest)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"Could not copy the example into {dest.parent} ({exc.strerror or exc}); "
                        "check that the workspace is writable and has space.") from None


# Packing (the recipe's last step).
def pack(workspace: Path, train_ref: str, probe_ref: str, name: str, title: str, out_root: Path | None = None) -> Path:
    """Write example `name` from a finished train run and a probe of its last checkpoint; returns its folder."""
    train_dir, probe_dir = find_run(workspace, train_ref), find_run(workspace, probe_ref)
    grid = json.loads((probe_dir / GRID).read_text())
    if grid.get("parent_run") != train_dir.name:
        raise UserError(f"Probe run {probe_dir.name} evaluates {grid.get('parent_run')}, not {train_dir.name}.")
    checkpoints = list_checkpoints(train_dir)
    if not checkpoints:
        raise UserError(f"Train run {train_dir.name} has no checkpoint to pack.")
    step, path = checkpoints[-1]
    if grid.get("checkpoint_step") != step:
        raise UserError(f"Probe run {probe_dir.name} probed step {grid.get('checkpoint_step')}, "
                        f"not the last checkpoint ({step}); probe the last one.")
    dest = (out_root or examples_dir()) / name
    shutil.rmtree(dest, ignore_errors=True)
    train_out, probe_out = dest / train_dir.name, dest / probe_dir.name
    _pack_checkpoint(path, train_out / f"{path.relative_to(train_dir)}.xz")
    _pack_samples(train_dir, train_out)
    for file in (GRID, PROBE_HEADS):
        _copy(probe_dir / file, probe_out / file)
    cache = (grid.get("baselines") or {}).get("cache")
    if cache and (workspace / "data" / BASELINES / cache).is_file():
        _copy(workspace / "data" / BASELINES / cache, dest / BASELINES / cache)
    for run_dir, out in ((train_dir, train_out), (probe_dir, probe_out)):
        _copy(run_dir / SPEC, out / SPEC)
        _pack_events(run_dir / EVENTS, out / f"{EVENTS}.xz", keep_checkpoint=path.relative_to(train_dir))
    ancestors = _pack_ancestors(train_dir, dest, title)
    spec = read_spec(train_dir)
    info = {
        "name": name, "title": title, **({"ancestors": ancestors} if ancestors else {}),
        "runs": [{"id": train_dir.name, "kind": JobKind.TRAIN, "name": f"example: {title}"},
                 {"id": probe_dir.name, "kind": JobKind.PROBE, "name": f"example: {title}, probe grid"}],
        "data": spec.get("data"), "steps": step, "protocol": grid.get("protocol"),
        "best": grid.get("best"), "baselines": grid.get("baselines"),
        "recipe": "resources/examples/recipe.sh",
    }
    atomic_write_text(dest / MANIFEST, json.dumps(info, indent=1))
    return dest


def _pack_ancestors(train_dir: Path, dest: Path, title: str) -> list[dict]:
    """The earlier stages of a run trained further from another (`--init-from`), oldest first: their specs,
    event logs and sample grids, not their checkpoints, so the model's whole history shows in its curves."""
    ancestors: list[dict] = []
    spec = read_spec(train_dir)
    while (spec.get("options") or {}).get("init_from") and (spec.get("parent") or {}).get("run"):
        run_dir = train_dir.parent / spec["parent"]["run"]
        out = dest / run_dir.name
        _copy(run_dir / SPEC, out / SPEC)
        _pack_samples(run_dir, out)
        _pack_events(run_dir / EVENTS, out / f"{EVENTS}.xz", keep_checkpoint=None)
        ancestors.insert(0, {"id": run_dir.name, "kind": JobKind.TRAIN, "name": f"example: {title}, earlier stage"})
        spec = read_spec(run_dir)
    return ancestors


def _pack_samples(run_dir: Path, out: Path) -> None:
    """SAMPLE_GRIDS of the run's sample grids, first and last included, evenly spaced between."""
    grids = sorted((run_dir / SAMPLES_DIR).glob("*.png"))
    if len(grids) > SAMPLE_GRIDS:
        last = len(grids) - 1
        grids = [grids[round(i * last / (SAMPLE_GRIDS - 1))] for i in range(SAMPLE_GRIDS)]
    for png in grids:
        _copy(png, out / png.relative_to(run_dir))


def bundle_size(root: Path | None = None) -> int:
    """Bytes of every file of the bundled examples."""
    root = root or examples_dir()
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) if root.is_dir() else 0


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)


def _pack_checkpoint(src: Path, dest: Path) -> None:
    """The EMA weights in fp16 with the config and step: all that evaluating, sampling and classifying read."""
    data = read_checkpoint(src)
    if data.get("format") != FORMAT:
        raise UserError(f"{src} is not a DDAE Studio checkpoint; only runs trained here can be packed.")
    ema = {k: (v.half() if v.is_floating_point() else v) for k, v in data["ema"].items()}
    plain = dest.with_suffix("")
    atomic_torch_save({"format": FORMAT, "version": FORMAT_VERSION, "config": data["config"], "step": data["step"],
                       "epoch": data.get("epoch"), "ema": ema, "ema_updates": data.get("ema_updates")}, plain)
    _xz(plain, dest)


def _xz(src: Path, dest: Path) -> None:
    """src compressed into dest (xz, the best ratio the standard library has), src removed."""
    with open(src, "rb") as fh, lzma.open(dest, "wb", preset=9 | lzma.PRESET_EXTREME) as out:
        shutil.copyfileobj(fh, out)
    src.unlink()


def _pack_events(src: Path, dest: Path, keep_checkpoint: Path | None) -> None:
    """The event log, less artifact lines of checkpoints that are not shipped (their files would be missing)."""
    keep = str(keep_checkpoint) if keep_checkpoint is not None else None
    lines = []
    for line in src.read_text().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("type") == EventType.ARTIFACT and event.get("kind") == ArtifactKind.CHECKPOINT \
                and event.get("path") != keep:
            continue
        lines.append(line)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with lzma.open(dest, "wt", preset=9) as out:
        out.write("\n".join(lines) + "\n")

