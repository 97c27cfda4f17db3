"""Editors of the launch forms: one row per spec field, each able to show its own error sentence.

Numbers are typed into line edits, not spin boxes: blank means "the preset's value", and a bad
value reaches the engine's validation, which names the field in the same words as the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ddae_core.engine.errors import ConfigError

ERROR_STYLE = "color: #c62828;"
INVALID_STYLE = "border: 1px solid #c62828; border-radius: 3px;"


@dataclass(frozen=True)
class Field:
    """One form field. `name` is the spec keyword, which is also what ConfigError.field says.

    A job option's Field is made from its model's field (launch_kinds.option_field); the few fields of
    the form itself (preset, overrides, parent, priority, the sweep group) are written out.
    """

    name: str
    label: str
    kind: str = "text"          # text | int | float | choice | check | data | yaml | lines | parent | checkpoint
    default: Any = None
    choices: tuple = ()         # (value, text) pairs for kind "choice"
    tip: str = ""
    placeholder: str = ""


def parse_number(field: str, text: str, integer: bool) -> int | float | None:
    """'' -> None; else the number, or ConfigError naming the field."""
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text.replace("_", ""))
        if integer:
            if not value.is_integer():
                raise ValueError
            return int(value)
        return value
    except ValueError:
        what = "a whole number" if integer else "a number"
        raise ConfigError(field, f"must be {what} (got {text!r})") from None


class DataChooser(QWidget):
    """Built-in shapes, CIFAR-10/100, an image folder or Tiny-ImageNet, as a data spec string."""

    CHOICES = (
        ("parent", "Same data as the parent run"),
        ("builtin", "Built-in shapes (offline)"),
        ("cifar10", "CIFAR-10"),
        ("cifar100", "CIFAR-100"),
        ("folder", "Image folder…"),
        ("tiny-imagenet", "Tiny-ImageNet…"),
    )
    changed = Signal()

    def __init__(self, allow_parent: bool, descriptions: list[tuple[str, str]] | None = None, parent=None):
        super().__init__(parent)
        self.combo = QComboBox()
        for value, text in self.CHOICES:
            if value != "parent" or allow_parent:
                self.combo.addItem(text, value)
        self.spec = QLineEdit()
        self.spec.setPlaceholderText("the parent run's data" if allow_parent else "builtin:shapes")
        self.spec.setToolTip("\n".join(f"{s}: {d}" for s, d in descriptions or []))
        self.browse = QPushButton("Browse…")
        self.browse.setToolTip("Choose the dataset's folder")
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.combo, 2)
        row.addWidget(self.browse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addLayout(row)
        layout.addWidget(self.spec)
        self.combo.currentIndexChanged.connect(self._on_choice)
        self.spec.textEdited.connect(self._on_text)
        self.browse.clicked.connect(self._pick_folder)
        self._on_choice()

    def value(self) -> str | None:
        text = self.spec.text().strip()
        return text or None

    def set_value(self, spec: str | None) -> None:
        self.spec.setText(spec or "")
        self._on_text()

    def _on_choice(self) -> None:
        kind = self.combo.currentData()
        self.browse.setEnabled(kind in ("folder", "tiny-imagenet"))
        current = self.spec.text().strip()
        if kind == "parent":
            self.spec.setText("")
        elif kind == "builtin":
            if not current.startswith("builtin:"):
                self.spec.setText("builtin:shapes")
        elif kind in ("cifar10", "cifar100"):
            self.spec.setText(kind)
        elif not current.startswith(f"{kind}:"):
            self.spec.setText(f"{kind}:")
        self.changed.emit()

    def _on_text(self) -> None:
        text = self.spec.text().strip()
        kind = text.partition(":")[0].lower() if text else "parent"
        kind = {"builtin": "builtin"}.get(kind, kind)
        index = self.combo.findData(kind)
        if index >= 0 and index != self.combo.currentIndex():
            self.combo.blockSignals(True)      # a binding: setting the combo must not rewrite the text
            self.combo.setCurrentIndex(index)
            self.combo.blockSignals(False)
            self.browse.setEnabled(kind in ("folder", "tiny-imagenet"))
        self.changed.emit()

    def _pick_folder(self) -> None:
        kind = self.combo.currentData()
        start = self.spec.text().partition(":")[2] or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Choose the dataset folder", start)
        if folder:
            self.spec.setText(f"{kind}:{folder}")
            self.changed.emit()


class FieldRow(QWidget):
    """An editor for one Field plus the sentence that says what is wrong with it."""

    changed = Signal()          # its text changed (typed or set): the form recounts its grid

    def __init__(self, field: Field, editor: QWidget | None = None, parent=None):
        super().__init__(parent)
        self.field = field
        self.editor = editor or self._make_editor(field)
        self.error = QLabel()
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.editor)
        layout.addWidget(self.error)
        if field.tip:
            self.editor.setToolTip(field.tip)
        self._clear_on_edit()
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def _clear_on_edit(self) -> None:
        """Editing a marked field takes its mark away; the next submit judges it again."""
        e = self.editor
        clear = lambda *_: self.show_error(None)  # noqa: E731
        if isinstance(e, QLineEdit):
            e.textChanged.connect(self.changed)
        elif isinstance(e, QPlainTextEdit):
            e.textChanged.connect(self.changed)
        elif isinstance(e, QComboBox):
            e.editTextChanged.connect(self.changed)
        if isinstance(e, DataChooser):
            e.changed.connect(clear)
        elif isinstance(e, QLineEdit):
            e.textEdited.connect(clear)
        elif isinstance(e, QPlainTextEdit):
            e.textChanged.connect(clear)
        elif isinstance(e, QComboBox):
            e.currentIndexChanged.connect(clear)
            e.editTextChanged.connect(clear)
        elif isinstance(e, QCheckBox):
            e.toggled.connect(clear)

    @staticmethod
    def _make_editor(field: Field) -> QWidget:
        if field.kind == "choice":
            combo = QComboBox()
            combo.setEditable(True)          # a list of its values (cpu, cuda) queues a grid sweep
            combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
            for value, text in field.choices:
                combo.addItem(text, value)
            if field.default is not None:
                combo.setCurrentIndex(max(0, combo.findData(field.default)))
            return combo
        if field.kind == "check":
            box = QCheckBox(field.placeholder)
            box.setChecked(bool(field.default))
            return box
        if field.kind in ("yaml", "lines"):
            edit = QPlainTextEdit()
            edit.setPlaceholderText(field.placeholder)
            edit.setTabChangesFocus(True)
            edit.setMaximumHeight(90)
            return edit
        if field.kind in ("parent", "checkpoint"):
            combo = QComboBox()
            combo.setEditable(field.kind == "checkpoint")
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(24)
            return combo
        edit = QLineEdit()
        if field.default is not None:
            edit.setText(str(field.default))
        edit.setPlaceholderText(field.placeholder)
        return edit

    def text(self) -> str:
        e = self.editor
        if isinstance(e, QLineEdit):
            return e.text()
        if isinstance(e, QPlainTextEdit):
            return e.toPlainText()
        if isinstance(e, QComboBox):
            return e.currentText()
        return ""

    def value(self) -> Any:
        """The value for the spec: parsed numbers, None for blank, or ConfigError naming the field."""
        e, kind = self.editor, self.field.kind
        if isinstance(e, DataChooser):
            return e.value()
        if isinstance(e, QCheckBox):
            return e.isChecked()
        if kind == "choice":
            return self._choice(e)
        if kind == "parent":
            return e.currentData()
        if kind == "checkpoint":
            text = e.currentText().strip()
            return e.currentData() if e.currentData() is not None and text == e.itemText(e.currentIndex()) \
                else (text or "latest")
        if kind in ("int", "float"):
            return parse_number(self.field.name, self.text(), kind == "int")
        text = self.text().strip()
        return text or None

    def _choice(self, combo: QComboBox) -> Any:
        """The chosen item's value; a value or item typed in its place counts as chosen."""
        text = combo.currentText().strip()
        if combo.currentIndex() >= 0 and text == combo.itemText(combo.currentIndex()):
            return combo.currentData()
        for index in range(combo.count()):
            if text.lower() in (combo.itemText(index).lower(), str(combo.itemData(index)).lower()):
                return combo.itemData(index)
        named = ", ".join(str(combo.itemData(i)) for i in range(combo.count()) if combo.itemData(i))
        raise ConfigError(self.field.name, f"must be one of {named}, or a list of them (got {text!r})")

    def set_text(self, text: str) -> None:
        e = self.editor
        if isinstance(e, DataChooser):
            e.set_value(text)
        elif isinstance(e, QLineEdit):
            e.setText(text)
        elif isinstance(e, QPlainTextEdit):
            e.setPlainText(text)
        elif isinstance(e, QCheckBox):
            e.setChecked(bool(text))
        elif isinstance(e, QComboBox):
            index = e.findData(text)
            if index < 0:
                index = e.findText(text)
            if index >= 0:
                e.setCurrentIndex(index)
            elif e.isEditable():
                e.setEditText(text)

    def set_placeholder(self, text: str) -> None:
        if isinstance(self.editor, (QLineEdit, QPlainTextEdit)):
            self.editor.setPlaceholderText(text)

    def show_error(self, sentence: str | None) -> None:
        """Mark the field with one sentence, or clear the mark (None)."""
        target = self.editor.spec if isinstance(self.editor, DataChooser) else self.editor
        if sentence:
            self.error.setText(sentence)
            self.error.show()
            target.setStyleSheet(INVALID_STYLE)
            target.setProperty("invalid", True)
        else:
            self.error.clear()
            self.error.hide()
            target.setStyleSheet("")
            target.setProperty("invalid", False)

    @property
    def error_text(self) -> str:
        return self.error.text() if not self.error.isHidden() else ""


def sentence(label: str, message: str) -> str:
    """'Steps' + 'must be at least 1 (got 0)' -> 'Steps must be at least 1 (got 0).'"""
    message = message.strip()
    if message[:1].islower():
        text = f"{label} {message}"
    else:
        text = message if message[:1].isupper() else f"{label}: {message}"
    return text if text.endswith((".", "?", "!")) else text + "."


def align_labels(rows: list[QLabel]) -> None:
    for label in rows:
        label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)


def message_of(exc: ConfigError) -> str:
    """The engine's sentence without the field name it starts with (the form shows it at the field)."""
    text = str(exc)
    prefix = f"{exc.field}: "
    return text[len(prefix):] if text.startswith(prefix) else text
