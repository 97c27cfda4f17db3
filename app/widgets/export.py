"""Export helpers shared by every plot: PNG and SVG of a pyqtgraph item, CSV of its data, and the menu.

Each widget names what to export (a PlotItem or a GraphicsLayout holding a plot and its colour bar)
and which rows make its CSV; the file dialogs and error sentences live here once. pyqtgraph's own
right-click "Export..." is replaced by the same entries, so there is one way to export, not two.

The dialog opens in the folder of the last export (remembered in the settings), else in the
workspace's exports/ folder; the file name starts with what the plot belongs to (the nearest
ancestor widget's `export_context`, e.g. the run's name); a saved file is named in the status bar.
"""

from __future__ import annotations

import csv
import math
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

import pyqtgraph as pg
import pyqtgraph.exporters as pg_exporters
from PySide6.QtGui import QAction, QImage
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMenu, QMessageBox, QToolButton, QWidget

LAST_FOLDER_KEY = "export/last_folder"
# Where the first export of a session goes when no folder is remembered: <workspace>/exports (set by the app).
default_folder: Path | None = None
last_saved: Path | None = None

PNG_WIDTH = 1600        # pixels: sharp enough for a slide, small enough to mail


def _target(path: str | Path) -> Path:
    path = Path(path)
    if not path.parent.is_dir():
        raise OSError(f"The folder {path.parent} does not exist; choose another place to save {path.name}.")
    return path


def export_png(item: pg.GraphicsObject | pg.GraphicsLayout, path: str | Path, width: int = PNG_WIDTH) -> Path:
    """Render `item` (a PlotItem, or a layout with a plot and its colour bar) to a PNG `width` px wide."""
    path = _target(path)
    exporter = pg_exporters.ImageExporter(item)
    params = exporter.parameters()
    if params["width"] > 0:
        # Keep the on-screen aspect ratio; the exporter links height to width.
        params["width"] = int(width)
    else:
        params["width"], params["height"] = int(width), int(width * 0.6)
    params["antialias"] = True
    exporter.export(str(path))
    if not path.is_file() or path.stat().st_size == 0:
        raise OSError(f"Could not write {path}; check the folder is writable.")
    return path


@contextmanager
def _svg_closepath_tolerant():
    """pyqtgraph 0.14's SVG exporter splits path data on "x,y" pairs and fails on the "Z" (close path)
    that Qt 6.12 writes for rectangles (legend frames, view boxes). Drop those tokens for the export:
    every such path already ends at its start point, and fills close implicitly in SVG.
    """
    module = sys.modules[pg_exporters.SVGExporter.__module__]
    original = module.correctCoordinates

    def correct(node, defs, item, options):
        for element in node.getElementsByTagName("path"):
            data = element.getAttribute("d")
            if "Z" in data or "z" in data:
                element.setAttribute("d", re.sub(r"\s*[Zz]\s*", " ", data).strip())
        return original(node, defs, item, options)

    module.correctCoordinates = correct
    try:
        yield
    finally:
        module.correctCoordinates = original


def export_svg(item: pg.GraphicsObject | pg.GraphicsLayout, path: str | Path) -> Path:
    """Write `item` as an SVG (vector: axes, curves and text stay editable)."""
    path = _target(path)
    with _svg_closepath_tolerant():
        pg_exporters.SVGExporter(item).export(str(path))
    return path


def export_qimage(image: QImage, path: str | Path) -> Path:
    """Save a QImage as PNG, pixel for pixel."""
    path = _target(path)
    if image.isNull() or not image.save(str(path), "PNG"):
        raise OSError(f"Could not write {path}; check the folder is writable.")
    return path


def _cell(value) -> str | int | float:
    """CSV text of one value: empty for missing/NaN, repr-precision for floats (no rounding)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(float(value))   # np.float64 reprs as "np.float64(...)"
    return value


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence]) -> Path:
    """Write rows under `header`; None and NaN become empty cells."""
    path = _target(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([_cell(v) for v in row] for row in rows)
    return path


FORMATS = {"png": "PNG image (*.png)", "svg": "SVG drawing (*.svg)", "csv": "CSV data (*.csv)"}


def make_export_button(owner: QWidget, basename: str | Callable[[], str],
                       exporters: dict[str, Callable[[Path], object]], text: str = "Export",
                       views: Sequence[pg.GraphicsView] = ()) -> QToolButton:
    """A tool button with one menu entry per format in `exporters` ("png", "svg", "csv" -> fn(path)).

    The entry asks for a file name, calls the function, and reports a failure as one sentence. The
    right-click menus of `views` (pyqtgraph's) get the same entries instead of pyqtgraph's exporter.
    """
    button = QToolButton(owner)
    button.setText(text)
    button.setToolTip("Save this chart as an image, or its full data as CSV")
    button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    menu = QMenu(button)
    for fmt, fn in exporters.items():
        action = menu.addAction(f"{fmt.upper()}…")
        action.triggered.connect(lambda _=False, fmt=fmt, fn=fn: ask_and_export(owner, basename, fmt, fn))
    button.setMenu(menu)
    for view in views:
        scene = view.scene()
        actions = []
        for fmt, fn in exporters.items():
            action = QAction(f"Export {fmt.upper()}…", scene)
            action.triggered.connect(lambda _=False, fmt=fmt, fn=fn: ask_and_export(owner, basename, fmt, fn))
            actions.append(action)
        scene.contextMenu = actions       # pyqtgraph appends these to every right-click menu of the scene
    return button


def export_context(widget: QWidget | None) -> str:
    """What `widget` belongs to, for file names: the nearest ancestor's `export_context` ('' if none)."""
    while widget is not None:
        context = getattr(widget, "export_context", None)
        if context:
            return str(context)
        widget = widget.parentWidget()
    return ""


def start_folder() -> Path:
    """The folder an export dialog opens in: the last export's, else the workspace's exports/, else home."""
    from ..workspace import settings

    last = settings().value(LAST_FOLDER_KEY)
    if last and Path(str(last)).is_dir():
        return Path(str(last))
    if default_folder is not None:
        try:
            default_folder.mkdir(parents=True, exist_ok=True)
            return default_folder
        except OSError:
            pass
    return Path.home()


def remember_folder(folder: Path) -> None:
    from ..workspace import settings

    settings().setValue(LAST_FOLDER_KEY, str(folder))


def confirm_saved(owner: QWidget, text: str) -> None:
    """Say in the window's status bar what was saved where."""
    window = owner.window()
    if isinstance(window, QMainWindow):
        window.statusBar().showMessage(text, 10000)


def ask_and_export(owner: QWidget, basename, fmt: str, fn: Callable[[Path], object]) -> Path | None:
    """Ask for a file (named after the plot and what it belongs to), export, and say where it went."""
    global last_saved
    name = basename() if callable(basename) else basename
    context = export_context(owner)
    if context and context not in name:
        name = f"{context} - {name}"
    start = start_folder() / f"{safe_filename(name)}.{fmt}"
    chosen, _ = QFileDialog.getSaveFileName(owner, f"Export {fmt.upper()}", str(start), FORMATS[fmt])
    if not chosen:
        return None
    path = Path(chosen)
    if path.suffix.lower() != f".{fmt}":
        path = path.with_name(path.name + f".{fmt}")
    try:
        fn(path)
    except OSError as exc:
        QMessageBox.warning(owner, "Export failed", str(exc) if str(exc).endswith(".")
                            else f"Could not write {path}: {exc.strerror or exc}.")
        return None
    remember_folder(path.parent)
    last_saved = path
    confirm_saved(owner, f"Saved {path}.")
    return path


def safe_filename(name: str) -> str:
    """`name` with only characters every file system accepts."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name.strip())
    return keep.strip("._") or "chart"
