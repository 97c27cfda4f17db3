"""The main window and its dialogs: it fits the screen whatever it shows, and the quit dialog's Cancel stays."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication, QMainWindow, QMessageBox

from app.widgets.curves import CurvePlot
from db import testing as fake
from tests.app_support import (  # noqa: F401
    answer_next_box,
    app_settings,
    compare_runs,
    compare_view,
    no_leftovers,
    press,
    studio,
)

LONG = "a run whose name goes on and on " * 8


def _fits(window) -> bool:
    """The window and what its contents need are no wider than its screen's available area."""
    QApplication.processEvents()
    area = window.screen().availableGeometry()
    return window.width() <= area.width() and window.minimumSizeHint().width() <= area.width()


def test_the_window_never_grows_past_the_screen(studio, qtbot, tmp_path):
    ws = tmp_path / "ws"
    a = fake.write_run(ws, fake.run_id("train", 1), name=LONG + "one", events=fake.training_events(40))
    b = fake.write_run(ws, fake.run_id("train", 2), name=LONG + "two", events=fake.training_events(40))
    window = studio(ws)
    assert _fits(window)
    qtbot.waitUntil(lambda: window.runs_view.model.row_of(b.name) is not None, timeout=10_000)

    # A run with a very long name: its title elides, the tooltip names it in full with its id.
    window.show_run(a.name)
    title = window.run_view.header.title
    assert title.text() == LONG + "one" and title.elided_text().endswith("…")
    assert title.toolTip() == f"{LONG}one\n{a.name}"
    assert _fits(window)
    # Hovering a curve fills its readout with text; the readout elides, the window stays.
    for plot in window.run_view.findChildren(CurvePlot):
        plot.readout.setText("step 12345: " + ", ".join(f"loss/train {i}.0" for i in range(40)))
    assert _fits(window)

    # Queue and the Run header show one time left: they read one estimate.
    assert window.queue_view.model.remaining is window.run_view.header.remaining

    window.compare_runs([a.name, b.name])
    assert window.tabs.currentWidget() is window.compare_view
    tabs = window.compare_view.findChild(type(window.tabs))
    for i in range(tabs.count()):
        tabs.setCurrentIndex(i)
        assert _fits(window), tabs.tabText(i)


def test_a_saved_geometry_larger_than_the_screen_is_restored_within_it(qtbot, app_settings):
    from app import workspace as workspaces
    from app.main_window import MainWindow

    big = QMainWindow()
    qtbot.addWidget(big)
    big.setGeometry(3000, 2000, 4000, 3000)         # as saved on a larger screen, or after growing past it
    workspaces.settings().setValue("window/geometry", big.saveGeometry())
    window = MainWindow(None, run_scheduler=False)
    qtbot.addWidget(window)
    window.show()
    area = window.screen().availableGeometry()
    assert area.contains(window.geometry()), (area, window.geometry())
    window.resize(area.width() + 500, area.height())        # a later resize cannot pass the screen either
    assert window.width() <= area.width()


def test_cancel_and_escape_in_the_quit_dialog_keep_the_app_open(studio, qtbot, tmp_path, monkeypatch):
    from PySide6.QtCore import Qt

    from app.main_window import MainWindow

    window = studio(tmp_path / "ws", run_scheduler=False)
    monkeypatch.setattr(MainWindow, "quit_notice", lambda self: "1 job keeps running after you quit (“x”).")
    closed = []
    QApplication.instance().lastWindowClosed.connect(lambda: closed.append(True))

    shown = answer_next_box(qtbot, press(QMessageBox.StandardButton.Cancel))
    assert window.quit() is False
    assert shown == ["1 job keeps running after you quit (“x”)."] and window.isVisible()

    shown = answer_next_box(qtbot, lambda box: qtbot.keyClick(box, Qt.Key.Key_Escape))
    assert window.quit() is False and shown and window.isVisible()

    # The window manager's close button asks the same question, after its close event (never inside it).
    class FromWindowManager(type(_close_event())):
        def spontaneous(self):
            return True

    shown = answer_next_box(qtbot, press(QMessageBox.StandardButton.Cancel))
    event = FromWindowManager()
    window.closeEvent(event)
    assert not event.isAccepted()
    qtbot.waitUntil(lambda: bool(shown), timeout=5_000)
    qtbot.wait(100)
    assert window.isVisible() and not closed

    shown = answer_next_box(qtbot, press(QMessageBox.StandardButton.Ok))
    assert window.quit() is True and not window.isVisible()


def _close_event():
    from PySide6.QtGui import QCloseEvent

    return QCloseEvent()


def test_compares_grids_scroll_in_a_small_window(qtbot, gui_workspace, gui_store, app_settings):

    view = compare_view(qtbot, gui_store)
    view.resize(460, 520)
    view.show()
    ws = gui_workspace
    compare_runs(view, [ws.probe_a, ws.probe_b, ws.train_a, ws.train_b])
    for panel in (view.grids, view.samples):
        view.tabs.setCurrentWidget(panel)
        QApplication.processEvents()
        holder = panel.scroll.widget()
        assert holder.minimumSizeHint().width() > panel.scroll.viewport().width()     # more than fits ...
        assert panel.scroll.horizontalScrollBar().maximum() > 0                        # ... scrolls to it
        assert holder.width() >= holder.minimumSizeHint().width()                      # nothing squeezed


def test_a_narrow_curve_plot_wraps_its_toolbar_inside_its_width(qtbot):
    plot = CurvePlot()
    qtbot.addWidget(plot)
    plot.set_series("loss/train", [1, 2, 3], [1.0, 0.5, 0.3])
    plot.readout.setText("step 3: loss/train 0.3000, smoothed 0.3100, and a good deal more text besides")
    heights = {}
    for width in (700, 260):
        plot.resize(width, 260)
        plot.show()
        QApplication.processEvents()
        bar = plot._toolbar
        items = [bar.itemAt(i).geometry() for i in range(bar.count())]
        assert all(0 <= g.left() and g.right() < width for g in items), (width, items)
        heights[width] = bar.geometry().height()
        assert plot.plot_widget.geometry().top() >= max(g.bottom() for g in items)     # no overlap with the plot
    assert heights[260] > heights[700]                                                # it wrapped
    assert plot.minimumSizeHint().width() < 260
