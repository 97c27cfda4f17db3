"""A probe job from start to end: the grid (probe.py) run, its baselines measured or read from the cache, grid.json
and the heads written, and the result told in the log.

grid.json holds the cells, the best cell and how it was chosen, the axes (timesteps, layers, each row's label, the
noise schedule, every tap's order), the baselines, the k-NN grid and the aggregate head's result; the heads file
(`ddae-probe-heads`) holds every cell's linear head for Classify.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ...rundir import GRID, PROBE_HEADS, ArtifactKind, RunStatus, atomic_write_text
from ...rundir.figures import percent, points
from ..spec.run_spec import ProbeSpec
from . import baselines as baseline_cache
from .aggregate import aggregate_summary, export_head as export_aggregate
from .certainty import edge_note, selection_words
from .common import open_context
from .features import Stopped
from .grid_axes import TIMESTEP_CONVENTIONS, noise_axis_json, tap_order, timestep_range
from .preview import preview_words
from .probe import HEADS_FORMAT, ProbeGrid
from .protocols import BASELINE_KEYS, PROTOCOLS
from .report import format_grid, timestep_labels
from .sources import PIXEL_TIMESTEP, PIXELS, RANDOM_INIT_SEED, NetworkSource, PixelSource, random_init_model

log = logging.getLogger(__name__)


def save_grid(grid: ProbeGrid, labels: dict[int, str], baselines: dict | None = None) -> dict:
    """Write grid.json (and the heads, when the protocol trains any) into the run directory; the result as saved."""
    best = grid.best()
    result = {
        "protocol": grid.options.protocol,
        "protocol_label": PROTOCOLS[grid.options.protocol],
        "standardized": grid.standardize,
        "parent_run": grid.ctx.parent_dir.name if grid.ctx.parent_dir else None,
        "checkpoint_step": grid.ctx.checkpoint_step,
        "framework": grid.model.config.framework,
        "timesteps": grid.timesteps,
        "layers": grid.layers,
        "labels": {str(t): labels[t] for t in grid.timesteps},
        "accuracy": {str(t): row for t, row in grid.cells.items()},
        "best": {"timestep": best[0], "layer": best[1], "accuracy": best[2]} if best else None,
        "complete": len(grid.cells) == len(grid.timesteps),
        "classes": list(grid.train.classes),
        "train_images": len(grid.train), "test_images": len(grid.test),
        "selection": grid.selection(),
        "held_out_accuracy": {str(t): row for t, row in grid.held_cells.items()} if grid.held else None,
        "timestep_range": list(timestep_range(grid.model.config)),
        "timestep_convention": TIMESTEP_CONVENTIONS[grid.model.config.framework],
        "noise_axis": noise_axis_json(grid.model.config),      # the schedule: each row's log-SNR
        "tap_order": tap_order(grid.model.config),             # every tap, for each layer's relative depth
        "baselines": baselines,
        "knn": grid.knn_grid,
        "aggregate": grid.aggregate,
    }
    atomic_write_text(grid.ctx.run_dir / GRID, json.dumps(result, indent=1))
    grid.ctx.reporter.artifact(ArtifactKind.FILE, grid.ctx.run_dir / GRID)
    if grid.heads:
        from ..checkpoint import atomic_torch_save

        atomic_torch_save({"format": HEADS_FORMAT, "timesteps": sorted(grid.cells), "layers": grid.layers,
                           "classes": list(grid.train.classes), "heads": grid.heads,
                           "accuracy": {f"{t}/{k}": v for t, row in grid.cells.items() for k, v in row.items()},
                           "parent_run": result["parent_run"], "checkpoint_step": grid.ctx.checkpoint_step,
                           "aggregate": None if grid.aggregate_head is None else
                           export_aggregate(grid.aggregate_head, grid.timesteps, grid.layers)},
                          grid.ctx.run_dir / PROBE_HEADS)
        grid.ctx.reporter.artifact(ArtifactKind.FILE, grid.ctx.run_dir / PROBE_HEADS)
    return result


def run_baselines(grid: ProbeGrid) -> dict:
    """The two numbers a grid is read against, each with the grid's own protocol, data, views and epochs.

    raw pixels: one head on the flattened (augmented) images; random init: the whole grid again on the same
    network at a fixed random initialisation (its best cell). Neither depends on the trained weights, so the
    result is kept in the workspace (data/baselines/, baselines.py) and a later grid for which they were measured
    exactly reads it instead of paying for a second grid; the result says which (`cached`, `measured`).
    Reported as metrics either way.
    """
    ctx, data, step = grid.ctx, (grid.train, grid.test, grid.held), grid.ctx.checkpoint_step or 0
    key = baseline_cache.cache_key(grid)
    cache = baseline_cache.cache_path(ctx.workspace, key)
    entry = baseline_cache.read_cached(cache, key)
    if entry is None:
        pixels = ProbeGrid(ctx, PixelSource(tuple(grid.train.images.shape[1:]), ctx.device),
                           timesteps=[PIXEL_TIMESTEP], emit=False, data=data, stage="baseline: raw pixels, ")
        pixels.run()
        random = type(grid)(ctx, NetworkSource(random_init_model(ctx.model), grid.layers, grid.precision),
                            emit=False, data=data, stage="baseline: random init, ")
        random.run()
        t, layer, acc = random.best()
        entry = baseline_cache.new_entry({"accuracy": pixels.cells[PIXEL_TIMESTEP][PIXELS]},
                                    {"accuracy": acc, "timestep": t, "layer": layer, "seed": RANDOM_INIT_SEED,
                                     "cells": {str(t): row for t, row in random.cells.items()}}, key)
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cache, json.dumps(entry))
        except OSError as exc:      # a read-only or full workspace: the grid is still right, only slower next time
            log.info(f"note: could not keep the baselines in {cache.parent} ({exc.strerror or exc})")
        result = {"pixels": entry["pixels"], "random_init": entry["random_init"], "cached": False}
    else:
        result = {"pixels": entry["pixels"], "random_init": entry["random_init"], "cached": True}
    result.update(measured=entry.get("measured"), cache=cache.name)
    log.info(baseline_cache.provenance(result))
    ctx.reporter.report(BASELINE_KEYS["pixels"], result["pixels"]["accuracy"], step)
    ctx.reporter.report(BASELINE_KEYS["random_init"], result["random_init"]["accuracy"], step)
    return result


def baseline_summary(best: float, baselines: dict | None) -> str:
    """`raw pixels P%, random init R%` (how far the best cell stands above each; measured in this run, or read from
    the cache and from when), or '' without them."""
    if not baselines:
        return ""
    p, r = baselines["pixels"]["accuracy"], baselines["random_init"]["accuracy"]
    return (f"raw pixels {percent(p)}, random init {percent(r)} "
            f"(best cell {points(best - p)} over pixels, {points(best - r)} over random init; "
            f"{baseline_cache.provenance(baselines)})")


def probe_run(spec: ProbeSpec, run_dir: Path, reporter, workspace: Path,
              grid_class: type[ProbeGrid] = ProbeGrid) -> str:
    """A probe job; `grid_class`: LatentProbeGrid for protocol dit-official (dit_probe.dit_probe_run)."""
    ctx = open_context(spec, run_dir, reporter, workspace)
    ctx.start(checkpoint=ctx.checkpoint_step)
    grid = grid_class(ctx)
    labels = timestep_labels(ctx.model, grid.timesteps)
    reporter.grid(grid.timesteps, grid.layers, {str(t): labels[t] for t in grid.timesteps})
    status, baselines = RunStatus.DONE, None
    try:
        grid.run()
        if spec.options.baselines:
            baselines = run_baselines(grid)
    except Stopped:
        status = RunStatus.CANCELLED
    result = save_grid(grid, labels, baselines)
    log.info(format_grid(grid.timesteps, grid.layers, grid.cells, labels))
    if spec.options.protocol not in ("fast", "official"):
        log.info(f"(protocol: {PROTOCOLS[spec.options.protocol]})")
    if result["best"]:
        b = result["best"]
        reporter.report("probe/accuracy", b["accuracy"], ctx.checkpoint_step or 0)
        log.info(f"best cell: {labels[b['timestep']]}, {b['layer']}: {100 * b['accuracy']:.2f}% "
                 f"({selection_words(result)})")
        if result["complete"] and (note := edge_note(grid.timesteps, b["timestep"], result["timestep_range"][1])):
            log.info(note)
        if baselines:
            log.info(baseline_summary(b["accuracy"], baselines))
    if result["knn"] and result["knn"]["best"]:
        k = result["knn"]["best"]
        log.info(f"k-NN (as soon as the features were cached): best cell {labels[k['timestep']]}, {k['layer']}: "
                 f"{percent(k['accuracy'])}")
        if (shown := result["knn"].get("preview_grid")) and shown["best"]:
            p = shown["best"]
            log.info(f"{preview_words(shown)}, before that: best cell {labels[p['timestep']]}, {p['layer']}: "
                     f"{percent(p['accuracy'])} (best on its test images)")
    if result["aggregate"]:
        log.info(aggregate_summary(result["aggregate"], baselines))
    reporter.status(status)
    return status
