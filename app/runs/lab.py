"""The run table's lab tools, beside the table: setting and metric columns (the chooser, collapsible sections),
groups, parallel coordinates and saved views. RunsView owns one RunsLab; the lab reads through the view's
pager, so every filter, sort and group runs in the database. In the window (a live hub) the column values and
the groups are read on the hub's reader thread, after each change and when the page or grouping changes, at
most once per refresh; the GUI thread only shows them."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPoint, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QInputDialog,
    QMenu,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QWidget,
)

from .columns import ColumnChooser
from .feed import LabRead, LabReads
from .groups import GroupsPanel
from .plot import ParallelPanel
from .saved import SavedViews, ViewState

NO_VIEW = "(no saved view)"


class RunsLab(QObject):
    """Buttons for columns, groups, the plot and saved views, and the panels they show."""

    compare = Signal(list)

    def __init__(self, view):
        super().__init__(view)
        self.view = view
        pager = view.pager
        self.saved = SavedViews(pager.store.workspace) if pager is not None else None
        self.sections: dict[str, str] = {}          # setting key -> section, read when the chooser opens
        self.chooser: ColumnChooser | None = None

        self.columns_button = QPushButton("Columns…")
        self.columns_button.setToolTip("Show any setting or metric as a column (search, only what varies)")
        self.columns_button.clicked.connect(self.choose_columns)
        self.group_button = QPushButton("Groups")
        self.group_button.setCheckable(True)
        self.group_button.setToolTip("Group the listed runs by settings: n, mean ± std, min and max of metrics")
        self.group_button.toggled.connect(self._show_groups)
        self.plot_button = QPushButton("Parallel coordinates")
        self.plot_button.setCheckable(True)
        self.plot_button.setToolTip("One line per run across settings and metrics; brush an axis to filter")
        self.plot_button.toggled.connect(self._show_plot)
        self.views = QComboBox()
        self.views.setToolTip("Saved views of this workspace: columns, query, sort, groups and plot axes")
        self.views.setMinimumWidth(160)
        self.save_button = QPushButton("Save view…")
        self.save_button.clicked.connect(self.save_view)
        self.delete_button = QPushButton("Delete view")
        self.delete_button.clicked.connect(self.delete_view)
        self.bar = QWidget()
        row = QHBoxLayout(self.bar)
        row.setContentsMargins(0, 0, 0, 0)
        for w in (self.columns_button, self.group_button, self.plot_button):
            row.addWidget(w)
        row.addStretch(1)
        for w in (self.views, self.save_button, self.delete_button):
            row.addWidget(w)

        self.groups = GroupsPanel(pager)
        self.groups.open_run.connect(view.open_run)
        self.reads = LabReads(pager.store) if pager is not None and view.hub is not None else None
        self.watch_name = f"runs-lab-{id(self)}"
        if self.reads is not None:
            self.groups.live = self.request
            view.hub.watch(self.watch_name, self.reads.read, self._show_read, paused=True)    # until shown
            view.installEventFilter(self)
        self.plot = ParallelPanel(pager, self.groups)
        self.plot.brushed.connect(self._brushed)
        self.plot.compare.connect(view.compare)
        self.groups.changed.connect(lambda: self.plot.isVisible() and self.plot.reload())
        self.stack = QStackedWidget()
        self.stack.addWidget(view.table)
        self.stack.addWidget(self.groups)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.stack)
        self.splitter.addWidget(self.plot)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.plot.hide()

        header = view.table.horizontalHeader()
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._header_menu)
        view.table.selectionModel().selectionChanged.connect(lambda *_: self.plot.plot.highlight(view.selected()))
        self._fill_views()
        self.views.currentIndexChanged.connect(self._view_chosen)

    # Columns.
    def choose_columns(self) -> None:
        """Open the chooser on the listed runs' settings and every metric."""
        if self.view.pager is None:
            return
        keys = self.view.pager.setting_keys()
        self.sections = dict(keys)
        if self.chooser is None:
            self.chooser = ColumnChooser(self.view)
            self.chooser.chosen_changed.connect(self.set_columns)
        self.chooser.set_keys(keys, self.view.pager.varying_keys(), self.view.model.extra_columns())
        self.chooser.show()
        self.chooser.raise_()

    def set_columns(self, columns: list[str]) -> None:
        if not self.sections and columns and self.view.pager is not None:
            self.sections = dict(self.view.pager.setting_keys())
        self.view.model.set_columns(columns, self.sections)
        self._hide_collapsed()
        self.refresh_values()

    def refresh_values(self) -> None:
        """The page's setting and metric column values: asked of the live hub, or read now without one."""
        model, pager = self.view.model, self.view.pager
        if self.reads is not None:
            self.request()
        elif pager is not None and model.extra_columns():
            model.set_values(pager.column_values(model.runs(), model.extra_columns()))

    # Reading on the live hub's thread.
    def request(self) -> None:
        """Ask the hub's reader for what the lab shows now (the page, its columns or the grouping changed)."""
        model = self.view.model
        by = self.groups.by if self.group_button.isChecked() else []
        self.reads.wanted = self.view.pager.wanted(model.runs(), model.extra_columns(), by, self.groups.metrics)
        self.view.hub.request(self.watch_name)

    def _show_read(self, read: LabRead) -> None:
        """On the GUI thread: show what the reader read, unless the lab has since asked for something else."""
        wanted = self.reads.wanted
        if read.values is not None and read.wanted.values_key() == wanted.values_key():
            self.view.model.set_values(read.values)
        if wanted.by and read.wanted.groups_key() == wanted.groups_key() \
                and (read.groups is not None or read.problem is not None):
            self.groups.show_groups(read.groups or [], read.problem)

    def eventFilter(self, watched, event) -> bool:
        """The Runs view hidden reads nothing (and once when shown again, if a change came); closed, never again."""
        if watched is self.view and self.reads is not None:
            kind = event.type()
            if kind == QEvent.Type.Show:
                self.view.hub.resume(self.watch_name)
            elif kind == QEvent.Type.Hide:
                self.view.hub.pause(self.watch_name)
            elif kind == QEvent.Type.Close:
                self.view.hub.unwatch(self.watch_name)
        return False

    def _header_menu(self, pos: QPoint) -> None:
        model = self.view.model
        header = self.view.table.horizontalHeader()
        section = model.section_of(header.logicalIndexAt(pos))
        sections = sorted({model.section_of(c) for c in range(len(model.COLUMNS), model.columnCount())} - {""})
        menu = QMenu(self.view)
        for name in sections:
            collapsed = name in model.collapsed
            action = menu.addAction(f"{'Expand' if collapsed else 'Collapse'} {name}",
                                    lambda n=name: self.toggle_section(n))
            if name == section:
                menu.setActiveAction(action)
        if not sections:
            menu.addAction("Columns…", self.choose_columns)
        menu.exec(header.mapToGlobal(pos))

    def toggle_section(self, section: str) -> None:
        """Show a section's columns as one (its first, headed '▸ section (n columns)'), or all again."""
        model = self.view.model
        model.collapsed ^= {section}
        self._hide_collapsed()
        model.headerDataChanged.emit(Qt.Orientation.Horizontal, 0, model.columnCount() - 1)

    def _hide_collapsed(self) -> None:
        model, table = self.view.model, self.view.table
        for column in range(len(model.COLUMNS), model.columnCount()):
            section = model.section_of(column)
            table.setColumnHidden(column, section in model.collapsed
                                  and column != model.section_columns(section)[0])

    # Groups and the plot.
    def _show_groups(self, on: bool) -> None:
        self.stack.setCurrentWidget(self.groups if on else self.view.table)
        if on:
            self.groups.apply()
        elif self.reads is not None:
            self.request()                      # hidden groups are not read

    def _show_plot(self, on: bool) -> None:
        self.plot.setVisible(on)
        if on:
            self.plot.reload()
        elif self.view.pager is not None and self.view.pager.brushes:
            self.plot.clear_brushes()           # a hidden brush would filter the table out of sight

    def _brushed(self, brushes: dict) -> None:
        if self.view.pager is not None:
            self.view.pager.brushes = brushes
            self.view.pager.offset = 0
            self.view.reload()

    def after_reload(self) -> None:
        """The table's page changed: its extra columns' values, the groups and the plot follow."""
        self.refresh_values()
        if self.group_button.isChecked() and self.reads is None:     # with a hub, refresh_values asked for both
            self.groups.reload()
        if self.plot.isVisible():
            self.plot.reload()
            self.plot.plot.highlight(self.view.selected())

    # Saved views.
    def state(self) -> ViewState:
        pager = self.view.pager
        return ViewState(columns=self.view.model.extra_columns(), query=self.view.query.text().strip(),
                         order_by=pager.order_by if pager else "created",
                         descending=pager.descending if pager else True,
                         group_by=self.groups.by if self.group_button.isChecked() else [],
                         metrics=self.groups.metrics,
                         axes=self.plot.axes() if self.plot_button.isChecked() else [],
                         color_by=self.plot.color_by(), collapsed=sorted(self.view.model.collapsed))

    def apply_state(self, state: ViewState) -> None:
        view = self.view
        view.model.collapsed = set(state.collapsed)
        self.set_columns(state.columns)
        view.query.setText(state.query)
        view.apply_query(state.query)
        names = view.model.column_names()
        if state.order_by in names:
            order = Qt.SortOrder.DescendingOrder if state.descending else Qt.SortOrder.AscendingOrder
            view.table.horizontalHeader().setSortIndicator(names.index(state.order_by), order)
        self.groups.set_grouping(state.group_by, state.metrics)
        self.group_button.setChecked(bool(state.group_by))
        self.plot.set_axes(state.axes, state.color_by)
        self.plot_button.setChecked(bool(state.axes))

    def _fill_views(self, current: str | None = None) -> None:
        self.views.blockSignals(True)
        self.views.clear()
        self.views.addItem(NO_VIEW, None)
        for name in self.saved.names() if self.saved else ():
            self.views.addItem(name, name)
        chosen = current if current is not None else (self.saved.last if self.saved else None)
        self.views.setCurrentIndex(max(0, self.views.findData(chosen)) if chosen else 0)
        self.views.blockSignals(False)
        self.delete_button.setEnabled(self.views.currentData() is not None)

    def restore_last(self) -> None:
        """Bring back the view used last in this workspace (on opening it)."""
        if self.saved and self.saved.last:
            self.apply_state(self.saved.views[self.saved.last])

    def _view_chosen(self, _index: int) -> None:
        if self.saved is None:
            return
        state = self.saved.use(self.views.currentData())
        self.delete_button.setEnabled(state is not None)
        if state is not None:
            self.apply_state(state)

    def save_view(self, name: str | None = None) -> None:
        if self.saved is None:
            return
        if name is None:
            name, ok = QInputDialog.getText(self.view, "Save view", "Name of this view:",
                                            text=self.views.currentData() or "")
            if not ok:
                return
        name = name.strip()
        if not name:
            self.view.say("A view needs a name; type one to save it.", error=True)
            return
        self.saved.save(name, self.state())
        self._fill_views(name)
        self.view.say(f"Saved the view “{name}” of this workspace.")

    def delete_view(self) -> None:
        name = self.views.currentData()
        if self.saved is not None and name is not None:
            self.saved.delete(name)
            self._fill_views()
