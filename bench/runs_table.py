"""Benchmark of the lab's run table: 10,000 runs with 60 setting columns (python -m bench.runs_table).

A temporary index filled in bulk through the db layer (runs, their setting rows, a loss and a probe grid
each). Each figure is the median of several runs of what the Runs view does on a change: filter (a query
with `or` and a range: count plus the first page of 200 with its setting columns), sort (the first page by
a setting), group (two settings, mean +- std of two metrics) and parallel coordinates (every matching run's
values on six axes, laid out and handed to the plot). Today's fixed-column list is timed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

from db import Store
from db.models import GridCellRow, MetricSummaryRow, Run, RunSetting
from db.settings import setting_rows
from db.testing import run_id

from .results import record

GOAL_MS = {"filter": 150.0, "sort": 150.0, "group": 150.0, "parallel coordinates": 100.0}
PAGE = 200
QUERY = "diffusion.n_T <= 256 and best > 0.6 or lr in 1e-4..3e-4"
SHOWN = ["diffusion.n_T", "diffusion.beta_1", "network.ch", "network.ch_mults", "lr", "batch_size", "seed",
         "fid", "best_t", "gain_pixels"]
AXES = ["diffusion.n_T", "network.ch", "lr", "seed", "model_type", "best"]


def spec_of(rng: random.Random, i: int) -> dict:
    """A train spec of 60 settings: 12 network, 8 diffusion, 10 data and model, 30 options."""
    network = {"ch": rng.choice([32, 64, 128]), "ch_mults": rng.choice([[1, 2], [1, 2, 2], [1, 2, 2, 2]]),
               "n_blocks": rng.choice([1, 2]), "dropout": rng.choice([0.0, 0.1]),
               "is_attn": [False, True], "use_res_for_updown": rng.random() < 0.5}
    network.update({f"extra_{k}": rng.randint(0, 3) for k in range(6)})
    diffusion = {"n_T": rng.choice([1000, 512, 256, 64]), "beta_1": rng.choice([1e-4, 5e-4]),
                 "beta_T": rng.choice([0.02, 0.01])}
    diffusion.update({f"d_{k}": rng.random() for k in range(5)})
    config = {"network": network, "diffusion": diffusion, "model_type": rng.choice(["DDPM", "EDM"]),
              "net_type": "UNet", "dataset": "cifar10", "classes": 10, "flip": True}
    config.update({f"c_{k}": rng.choice(["a", "b", "c"]) for k in range(5)})
    options = {"lr": rng.choice([1e-4, 2e-4, 5e-4, 1e-3]), "batch_size": rng.choice([64, 128]), "seed": i % 5}
    options.update({f"o_{k}": rng.choice([0, 1, 2.5, "x", "y"]) for k in range(27)})
    return {"config": config, "options": options}


def fill(store: Store, n_runs: int) -> int:
    """Bulk insert `n_runs` train runs with their settings, a loss and a 2x3 probe grid; the settings per run."""
    rng = random.Random(0)
    runs, settings, summaries, cells = [], [], [], []
    for i in range(n_runs):
        rid = run_id("train", i, stamp=f"20260101-{i // 60:04d}{i % 60:02d}")
        spec = spec_of(rng, i)
        grid = {(layer, t): rng.random() for layer in ("out_3", "out_6") for t in (11, 51, 101)}
        best = max(grid.values())
        runs.append({"id": rid, "name": f"run {i}", "kind": "train", "status": "done", "spec": json.dumps(spec),
                     "data": "builtin:shapes", "created": 1.7e9 + i, "tags": "[]", "best_accuracy": best,
                     "best_grid": rid, "best_protocol": "fast", "baseline_pixels": 0.3, "baseline_random": 0.2,
                     "last_loss": rng.random()})
        settings += setting_rows(rid, spec, "train")
        summaries.append({"run": rid, "key": "loss/train", "count": 1, "latest_step": 1,
                          "latest_value": runs[-1]["last_loss"], "latest_time": 0.0})
        cells += [{"run": rid, "layer": layer, "timestep": t, "accuracy": a} for (layer, t), a in grid.items()]
    with store._write() as (session, _):
        for table, rows in ((Run, runs), (RunSetting, settings), (MetricSummaryRow, summaries),
                            (GridCellRow, cells)):
            session.execute(insert(table), rows)
    return len(settings) // n_runs


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def page(store: Store, where: str | None = None, order_by: str = "created", columns=SHOWN) -> int:
    """What the Runs view reads for a page: the count, the first page, its setting and metric columns."""
    total = store.count_runs(where=where)
    rows = store.list_runs(where=where, order_by=order_by, limit=PAGE)
    if columns:
        store.column_values([r.id for r in rows], columns)
    return total


def parallel(store: Store, plot) -> None:
    axes = store.axes(AXES)
    plot.set_data(axes.run_ids, axes.columns, axes.values, color_values=axes.values[AXES.index("best")])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from app.widgets.parallel import ParallelCoordinates

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory(prefix="ddae-bench-runs-table-") as tmp, Store.open(Path(tmp)) as store:
        started = time.perf_counter()
        n_columns = fill(store, args.runs)
        print(f"filled {args.runs:,} runs with {n_columns} settings each in {time.perf_counter() - started:.1f} s")
        matching = page(store, QUERY)
        plot = ParallelCoordinates()
        plot.resize(900, 400)
        times = {
            "fixed-column list": median_ms(lambda: page(store, columns=()), args.repeat),
            "filter": median_ms(lambda: page(store, QUERY), args.repeat),
            "sort": median_ms(lambda: page(store, order_by="diffusion.n_T"), args.repeat),
            "group": median_ms(lambda: store.group_runs(["diffusion.n_T", "network.ch"], ["best", "loss"]),
                               args.repeat),
            "parallel coordinates": median_ms(lambda: parallel(store, plot), args.repeat),
        }
        app.processEvents()
    print(f"filter {QUERY!r}: {matching:,} of {args.runs:,} runs match; pages of {PAGE} with {len(SHOWN)} "
          f"setting and metric columns; parallel coordinates on {len(AXES)} axes; medians of {args.repeat}")
    for name, goal in GOAL_MS.items():
        verdict = "ok" if times[name] < goal else "OVER"
        print(f"  {name}: {times[name]:.1f} ms (goal < {goal:.0f} ms) {verdict}")
    load = os.getloadavg()[0]
    print(f"machine load while measuring: {load:.1f} on {os.cpu_count()} cores (other work slows every figure)")
    print(f"today's fixed-column list (10 columns, count and first page of {PAGE}, newest first): "
          f"{times['fixed-column list']:.1f} ms")
    record("runs_table", f"runs table ({args.runs} runs, {n_columns} columns): filter {times['filter']:.0f} ms, "
                         f"sort {times['sort']:.0f} ms, group {times['group']:.0f} ms, "
                         f"parallel coordinates {times['parallel coordinates']:.0f} ms",
           note=f"load average {load:.1f} on {os.cpu_count()} cores while measuring")


if __name__ == "__main__":
    main()
