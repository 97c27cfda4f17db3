"""The run table's parallel-coordinates panel: chosen settings and metrics as axes, lines coloured by a
column; a brush on an axis filters the table (through the pager, in the database) and the brushed runs
go to Compare."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from ..widgets.parallel import ParallelCoordinates
from .feed import QueryError, RunsPager
from .groups import GroupsPanel, names

COMPARE_AT_MOST = 12        # Compare overlays this many runs at most, readably


class ParallelPanel(QWidget):
    """Axes and colour fields over the plot; `brushed` carries the brushes for the pager."""

    brushed = Signal(dict)
    compare = Signal(list)
    changed = Signal()          # the axes or the colour column changed (a saved view keeps them)

    def __init__(self, pager: RunsPager | None, groups: GroupsPanel | None = None, parent=None):
        super().__init__(parent)
        self.pager = pager
        self.groups = groups
        self.per_group = QCheckBox("One line per group")
        self.per_group.setToolTip("Draw each group's values (its metrics' means) instead of each run's")
        self.per_group.toggled.connect(self._fields_changed)
        self.axes_edit = QLineEdit()
        self.axes_edit.setPlaceholderText("Axes, e.g. diffusion.n_T, lr, best, fid")
        self.axes_edit.returnPressed.connect(self._fields_changed)
        self.color_edit = QLineEdit()
        self.color_edit.setPlaceholderText("Colour by, e.g. best")
        self.color_edit.returnPressed.connect(self._fields_changed)
        self.compare_button = QPushButton("Compare brushed")
        self.compare_button.setToolTip(f"Overlay the brushed runs in Compare (the first {COMPARE_AT_MOST})")
        self.compare_button.clicked.connect(lambda: self.compare.emit(self.plot.brushed_ids()[:COMPARE_AT_MOST]))
        self.clear_button = QPushButton("Clear brushes")
        self.clear_button.clicked.connect(self.clear_brushes)
        self.message = QLabel()
        self.plot = ParallelCoordinates()
        self.plot.setMinimumHeight(220)
        self.plot.brushed.connect(self.brushed)
        fields = QHBoxLayout()
        fields.addWidget(QLabel("Axes"))
        fields.addWidget(self.axes_edit, 3)
        fields.addWidget(QLabel("Colour by"))
        fields.addWidget(self.color_edit, 1)
        fields.addWidget(self.per_group)
        fields.addWidget(self.clear_button)
        fields.addWidget(self.compare_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(fields)
        layout.addWidget(self.message)
        layout.addWidget(self.plot, 1)

    def axes(self) -> list[str]:
        return names(self.axes_edit.text())

    def color_by(self) -> str:
        return self.color_edit.text().strip()

    def set_axes(self, axes: list[str], color_by: str = "") -> None:
        self.axes_edit.setText(", ".join(axes))
        self.color_edit.setText(color_by)
        self.reload()

    def _fields_changed(self) -> None:
        self.reload()
        self.changed.emit()

    def reload(self) -> None:
        """Read every listed run's values on the axes (and the colour column) and draw them."""
        axes, color = self.axes(), self.color_by()
        if self.pager is None or not axes:
            self.plot.set_data([], [], [])
            self.message.setText("Name two or more axes (settings or metrics), then Enter.")
            return
        grouped = self.per_group.isChecked() and self.groups is not None and bool(self.groups.by)
        self.compare_button.setEnabled(not grouped)
        if grouped:
            self._draw_groups(axes, color)
            return
        try:
            data = self.pager.axes([*axes, color] if color and color not in axes else axes)
        except (QueryError, ValueError) as exc:
            self.message.setText(str(exc).splitlines()[0])
            return
        values = dict(zip(data.columns, data.values))
        self.plot.set_data(data.run_ids, axes, [values[a] for a in axes], values.get(color) if color else None)
        self.message.setText(f"{len(data.run_ids):,} runs; drag along an axis to keep a range, click it to clear"
                             + (f"; coloured by {color}" if color else ""))

    def _draw_groups(self, axes: list[str], color: str) -> None:
        """One line per group of the groups panel: a grouping column's value, a metric's mean."""
        panel = self.groups
        assert panel is not None

        def value(group, column: str):
            if column in panel.by:
                return group.values[panel.by.index(column)]
            stats = group.stats.get(column)
            return stats.mean if stats is not None else None

        labels = [", ".join(f"{k}={v}" for k, v in zip(panel.by, g.values)) for g in panel.groups]
        self.plot.set_data(labels, axes, [[value(g, a) for g in panel.groups] for a in axes],
                           [value(g, color) for g in panel.groups] if color else None)
        self.message.setText(f"{len(labels)} groups by {', '.join(panel.by)}; metrics at their means "
                             f"(axes other than the grouping and its metrics are empty)")

    def clear_brushes(self) -> None:
        for column in list(self.plot.brush_positions()):
            self.plot.clear_brush(column, emit=False)
        self.brushed.emit({})
