"""Getting data out: a run's curves and probe grid as CSV files."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path

from ddae_core.rundir import atomic_write

from .store import Store

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _number(value: float | None) -> str:
    return "" if value is None else repr(float(value))   # shortest text that reads back exactly


def csv_name(key: str) -> str:
    """File name of a metric key: 'loss/train' -> 'loss_train.csv' (other odd characters -> '_')."""
    return (_UNSAFE.sub("_", key.replace("/", "_")).strip("._") or "metric") + ".csv"


def _write_csv(path: Path, header: tuple[str, ...], rows: Iterable) -> None:
    def write(fh) -> None:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    atomic_write(path, write, fsync=False)


def export_run_csv(store: Store, run: str, out_dir: str | Path) -> list[Path]:
    """One CSV per metric key (step,value,time) and grid.csv (timestep,layer,accuracy); the paths written.

    Rows are sorted by step, and grid rows by the run's grid axes (timestep-major), so the same data
    always gives the same bytes. A failure (a full disk) leaves none of this export's files behind.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        _export(store, run, out_dir, written)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written


def _export(store: Store, run: str, out_dir: Path, written: list[Path]) -> None:
    used: set[str] = set()
    for key in store.metric_keys(run):
        name = csv_name(key)
        stem, n = name[:-4], 2
        while name in used:                  # 'loss/train' and 'loss_train' both exist
            name, n = f"{stem}-{n}.csv", n + 1
        used.add(name)
        history = store.metric_history(run, key)
        path = out_dir / name
        _write_csv(path, ("step", "value", "time"),
                   zip(history.steps, map(_number, history.values), map(_number, history.times)))
        written.append(path)
    cells = store.grid_cells(run)
    if cells:
        axes = store.grid_axes(run)
        t_rank = {t: i for i, t in enumerate(axes.timesteps)} if axes else {}
        l_rank = {layer: i for i, layer in enumerate(axes.layers)} if axes else {}
        # Known axes first in their announced order, then anything else sorted.
        cells = sorted(cells, key=lambda c: (t_rank.get(c.timestep, len(t_rank)), c.timestep,
                                             l_rank.get(c.layer, len(l_rank)), c.layer))
        path = out_dir / "grid.csv"
        _write_csv(path, ("timestep", "layer", "accuracy"), ((c.timestep, c.layer, _number(c.accuracy)) for c in cells))
        written.append(path)
