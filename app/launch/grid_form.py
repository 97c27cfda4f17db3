"""The launch form's grid sweep: the fields that hold a list or a range, the seeds count, the config grid,
and the specs they make (through jobs.grid_sweep, as `ddae train --grid` makes them)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

from ddae_core.engine.errors import ConfigError
from ddae_core.engine.spec.grid import Axis, is_grid, parse_values
from ddae_core.jobs.grid_sweep import GRID_KINDS, grid_specs, parse_grid, value_kind

from .fields import FieldRow, parse_number
from .kinds import KindForm, gpus_for, point_build

log = logging.getLogger(__name__)


def grid_rows(kind: KindForm, rows: Mapping[str, FieldRow]) -> list[str]:
    """The kind's option fields (a number or a choice) whose text is a list or a range."""
    options = kind.options.model_fields
    return [name for name, row in rows.items()
            if name in options and row.field.kind in GRID_KINDS and is_grid(row.text()) and not _an_item(row)]


def _an_item(row: FieldRow) -> bool:
    """A choice whose text is one of its items ("k-NN: no training, a grid in seconds"), not a list."""
    return row.field.kind == "choice" and row.editor.findText(row.text()) >= 0


def form_axes(kind: KindForm, rows: Mapping[str, FieldRow]) -> list[Axis]:
    """The grid's axes in the form's order: its list fields, then the config grid's lines; ConfigError
    naming the field (the config grid's as `grid`)."""
    axes = []
    for name in grid_rows(kind, rows):
        field_kind, choices = value_kind(kind.name, name)
        axes.append(Axis(name, parse_values(name, rows[name].text(), field_kind, choices)))
    if "grid" in rows:
        lines = [line.strip() for line in rows["grid"].text().splitlines() if line.strip()]
        try:
            axes += parse_grid(kind.name, lines)
        except ConfigError as exc:
            raise at_grid(exc) from None
    return axes


def at_grid(exc: ConfigError) -> ConfigError:
    """An error of one of the config grid's keys, shown at the config grid: "`diffusion.nT` is not ..."."""
    message = str(exc).removeprefix(f"{exc.field}: ")
    return ConfigError("grid", message if exc.field == "grid" else f"`{exc.field}` {message}")


def seeds_of(rows: Mapping[str, FieldRow]) -> int | None:
    """The seeds count (None when blank); ConfigError naming `seeds`."""
    if "seeds" not in rows:
        return None
    seeds = parse_number("seeds", rows["seeds"].text(), integer=True)
    if seeds is not None and seeds < 1:
        raise ConfigError("seeds", f"must be at least 1 (got {seeds})")
    return None if seeds is None else int(seeds)


def run_count(axes: list[Axis], seeds: int | None) -> int:
    return math.prod(len(a.values) for a in axes) * (seeds or 1)


def grid_launch_specs(kind: KindForm, values: dict, axes: list[Axis], seeds: int | None, workspace: Path) -> list[dict]:
    """Every point's spec (validated), as grid_specs makes it for the CLI. A config key the preset lacks is
    marked at the config grid."""
    config_keys = {axis.key for axis in axes if axis.key not in kind.options.model_fields}
    try:
        return grid_specs(point_build(kind, values, workspace), kind.name, kind.values_for_spec(values), axes, seeds)
    except ConfigError as exc:
        if exc.field in config_keys:
            raise at_grid(exc) from None
        raise


def summary(axes: list[Axis], seeds: int | None) -> str:
    """`Queues 6 runs: n_T (3) x 2 seeds` for the line beside the submit button."""
    count = run_count(axes, seeds)
    parts = [f"{axis.label} ({len(axis.values)})" for axis in axes]
    if seeds and seeds > 1:
        parts.append(f"{seeds} seeds")
    return f"Queues {count} run{'s' if count != 1 else ''}" + (f": {' x '.join(parts)}" if parts else "")


class GridSweepForm:
    """The launch form's part that queues a grid sweep: its specs, the count beside the button, the queueing.

    Mixed into LaunchForm, whose kind, rows, launcher, values(), build_spec(), mark() and messages it uses."""

    def build_specs(self) -> list[dict]:
        """The specs the form queues: one, or every point of its grid sweep (lists, ranges, seeds)."""
        axes, seeds = form_axes(self.kind, self.rows), seeds_of(self.rows)
        if not axes and (seeds or 1) == 1:
            return [self.build_spec()]
        values = self.values()
        specs = grid_launch_specs(self.kind, values, axes, seeds,
                                  self.launcher.workspace if self.launcher else Path("."))
        for spec in specs:
            spec["device"]["gpus"] = gpus_for(spec["device"]["request"], values.get("gpus"))
        return specs

    def _update_count(self) -> None:
        """'Queues 6 runs: n_T (3) x 2 seeds' while the form holds a grid; the button says how many."""
        try:
            axes, seeds = form_axes(self.kind, self.rows), seeds_of(self.rows)
        except ConfigError:
            axes, seeds = [], None           # marked when submitted; until then the count stays out
        count = run_count(axes, seeds)
        self.count.setText(summary(axes, seeds) if count > 1 else "")
        self.submit_button.setText(f"Queue {count} runs" if count > 1 else "Queue job")

    def _submit_sweep(self, specs: list[dict]) -> str | None:
        """Queue a grid's specs as one sweep (tagged sweep:NAME); returns its first run's id."""
        name = (self.values().get("grid_name") or "").strip() or None
        queued = self.queueing(lambda: self.launcher.submit_sweep(
            specs, name, form_axes(self.kind, self.rows), seeds_of(self.rows),
            priority=int(self.values().get("priority") or 0), cluster=self.run_on.currentData()),
            "Nothing more was queued")
        if queued is None:
            return None
        tag, run_ids = queued
        where = f" for cluster {self.run_on.currentData()}" if self.run_on.currentData() else ""
        self.show_message(f"Queued {len(run_ids)} runs as one sweep, tagged {tag}{where}.")
        for run_id in run_ids:
            self.queued.emit(run_id)
        return run_ids[0]
