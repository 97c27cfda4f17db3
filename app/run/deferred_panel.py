"""A Run view tab whose panel is built only when the tab is first shown (or asked for).

Building a train run's panels took most of opening it (two runs: 270-680 ms on the GUI thread, each
pyqtgraph plot ~20 ms); most of them sit in tabs nobody has opened yet. The panels deferred here
take only snapshot fields of a RunUpdate (the grid, samples, evaluations, checkpoints: each a whole
new value when it changes), so the newest value of each field, applied once when the panel is built,
shows exactly what applying every update in turn would have shown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget

from .feed import RunUpdate
from .panels import Panel

SNAPSHOT_FIELDS = ("axes", "cells", "grid_source", "grid_protocol", "baselines", "grid_work", "grid_file", "images",
                   "children", "checkpoints", "checkpoint_rows", "movie", "result_file",
                   "readme_row")


class DeferredPanel(QWidget):
    """Stands in its tab for a panel of class `cls` (made by `factory`) until `build_me` builds it."""

    def __init__(self, cls: type[Panel], factory: Callable[[], Panel]):
        super().__init__()
        self.cls, self.factory, self.title = cls, factory, cls.title
        self.pending: RunUpdate | None = None
        self.build_me: Callable[[DeferredPanel], object] | None = None     # the view's: build and swap in
        self.holding = False            # set by the view while it swaps tabs: a show then builds nothing

    def apply(self, update: RunUpdate) -> None:
        """Keep the newest record and the newest value of each snapshot field (the curves' points are not used)."""
        if self.pending is None:
            self.pending = replace(update, appended={}, replaced={})
            return
        newest = {name: getattr(update, name) for name in SNAPSHOT_FIELDS if getattr(update, name) is not None}
        self.pending = replace(self.pending, record=update.record, **newest)

    def build(self) -> Panel:
        """The panel, with everything it missed applied."""
        panel = self.factory()
        if self.pending is not None:
            panel.apply(self.pending)
            self.pending = None
        return panel

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self.holding and self.build_me is not None:
            # Not from inside this show: building swaps this widget out of its tab.
            QTimer.singleShot(0, self, lambda: self.build_me and self.build_me(self))
