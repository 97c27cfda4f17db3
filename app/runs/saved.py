"""Saved views of the run table, per workspace: columns, query, sort, grouping and parallel-coordinate axes
under a name, in the workspace's run_views.json; the last one used comes back on restart. Qt-free."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ddae_core.rundir import atomic_write_text

log = logging.getLogger(__name__)

FILE_NAME = "run_views.json"


@dataclass
class ViewState:
    """What a saved view keeps (names of columns, settings and metrics as the query line spells them)."""

    columns: list[str] = field(default_factory=list)        # extra columns, in order
    query: str = ""
    order_by: str = "created"
    descending: bool = True
    group_by: list[str] = field(default_factory=list)       # empty: no groups
    metrics: list[str] = field(default_factory=lambda: ["best"])
    axes: list[str] = field(default_factory=list)           # parallel coordinates; empty: hidden
    color_by: str = ""
    collapsed: list[str] = field(default_factory=list)      # sections shown as one column

    @classmethod
    def from_dict(cls, data: dict) -> ViewState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class SavedViews:
    """The named views of one workspace; every change is written at once (atomically)."""

    def __init__(self, workspace: Path):
        self.path = Path(workspace) / FILE_NAME
        self.views: dict[str, ViewState] = {}
        self.last: str | None = None
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.views = {str(name): ViewState.from_dict(view) for name, view in data.get("views", {}).items()}
            self.last = data.get("last") if data.get("last") in self.views else None
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("Ignoring the saved run-table views in %s (%s); saving a view writes it again.",
                        self.path, exc)

    def _write(self) -> None:
        data = {"last": self.last, "views": {name: asdict(view) for name, view in self.views.items()}}
        try:
            atomic_write_text(self.path, json.dumps(data, indent=1) + "\n")
        except OSError as exc:
            log.warning("Could not save the run-table views to %s (%s).", self.path, exc.strerror or exc)

    def names(self) -> list[str]:
        return sorted(self.views)

    def save(self, name: str, view: ViewState) -> None:
        """Keep `view` under `name` (replacing one of that name) and make it the last one used."""
        self.views[name] = view
        self.last = name
        self._write()

    def use(self, name: str | None) -> ViewState | None:
        """Make `name` the last view used (None: none) and return it."""
        self.last = name if name in self.views else None
        self._write()
        return self.views.get(name) if name else None

    def delete(self, name: str) -> None:
        self.views.pop(name, None)
        if self.last == name:
            self.last = None
        self._write()
