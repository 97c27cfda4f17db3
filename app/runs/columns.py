"""The column chooser: every setting of the listed runs and every metric, by section, with a search box and
"only what varies"; checking a key adds its column to the run table."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
)

from .feed import METRICS, SETTING_SECTIONS

METRICS_SECTION = "metrics"
KEY_ROLE = Qt.ItemDataRole.UserRole


class ColumnChooser(QDialog):
    """Sections (metrics first, then network, diffusion, training, data, evaluation) of checkable keys."""

    chosen_changed = Signal(list)       # the extra columns, in the order they were chosen

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Columns")
        self.resize(420, 560)
        self._chosen: list[str] = []
        self._varying: set[str] = set()
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search settings and metrics…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._refilter)
        self.only_varying = QCheckBox("Only what varies among the listed runs")
        self.only_varying.toggled.connect(self._refilter)
        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.itemChanged.connect(self._item_changed)
        self.hint = QLabel()
        self.hint.setStyleSheet("color: #555;")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        for w in (self.search, self.only_varying, self.tree, self.hint, buttons):
            layout.addWidget(w)

    def set_keys(self, keys: Sequence[tuple[str, str]], varying: Sequence[str], chosen: Sequence[str]) -> None:
        """The settings (key, section) to offer, those that vary among the listed runs, those shown now."""
        self._chosen = list(chosen)
        self._varying = set(varying)
        blocker = QSignalBlocker(self.tree)
        self.tree.clear()
        sections = {s: self._section_item(s) for s in (METRICS_SECTION, *SETTING_SECTIONS)}
        for name, metric in METRICS.items():
            self._key_item(sections[METRICS_SECTION], name, metric.label)
        for key, section in keys:
            self._key_item(sections.get(section) or sections["training"], key, key)
        for item in sections.values():
            if item.childCount() == 0:
                self.tree.invisibleRootItem().removeChild(item)
        del blocker
        self._refilter()

    def _section_item(self, section: str) -> QTreeWidgetItem:
        item = QTreeWidgetItem(self.tree, [section])
        item.setFlags(Qt.ItemFlag.ItemIsEnabled)
        item.setExpanded(True)
        font = item.font(0)
        font.setBold(True)
        item.setFont(0, font)
        return item

    def _key_item(self, section: QTreeWidgetItem, key: str, text: str) -> None:
        item = QTreeWidgetItem(section, [text])
        item.setData(0, KEY_ROLE, key)
        item.setToolTip(0, key)
        item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(0, Qt.CheckState.Checked if key in self._chosen else Qt.CheckState.Unchecked)

    def _refilter(self, *_) -> None:
        words = self.search.text().strip().lower().split()
        only = self.only_varying.isChecked()
        shown = 0
        for s in range(self.tree.topLevelItemCount()):
            section = self.tree.topLevelItem(s)
            visible = 0
            for k in range(section.childCount()):
                item = section.child(k)
                key = item.data(0, KEY_ROLE)
                text = f"{key} {item.text(0)} {section.text(0)}".lower()
                hide = (bool(words) and not all(w in text for w in words)) or \
                    (only and section.text(0) != METRICS_SECTION and key not in self._varying)
                item.setHidden(hide)
                visible += not hide
            section.setHidden(visible == 0)
            shown += visible
        self.hint.setText(f"{shown} shown; {len(self._chosen)} chosen")

    def visible_keys(self) -> list[str]:
        return [section.child(k).data(0, KEY_ROLE) for s in range(self.tree.topLevelItemCount())
                if not (section := self.tree.topLevelItem(s)).isHidden()
                for k in range(section.childCount()) if not section.child(k).isHidden()]

    def check(self, key: str, on: bool = True) -> None:
        """Tick or untick `key` as a click would."""
        for s in range(self.tree.topLevelItemCount()):
            section = self.tree.topLevelItem(s)
            for k in range(section.childCount()):
                if section.child(k).data(0, KEY_ROLE) == key:
                    section.child(k).setCheckState(0, Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def _item_changed(self, item: QTreeWidgetItem, _column: int) -> None:
        key = item.data(0, KEY_ROLE)
        if key is None:
            return
        on = item.checkState(0) == Qt.CheckState.Checked
        if on and key not in self._chosen:
            self._chosen.append(key)
        elif not on and key in self._chosen:
            self._chosen.remove(key)
        self._refilter()
        self.chosen_changed.emit(list(self._chosen))
