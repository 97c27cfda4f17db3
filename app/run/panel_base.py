"""What every tab of the Run view is: a widget that takes RunUpdates and changes its plots in place."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from .feed import RunUpdate


class Panel(QWidget):
    """A tab of the Run view. `keys` are the metric keys it shows (the rest go to All metrics)."""

    title = ""

    def keys(self) -> set[str]:
        return set()

    def apply(self, update: RunUpdate) -> None:
        raise NotImplementedError
