"""The desktop app's entry point: `ddae-studio [--workspace DIR]` when installed, `python main.py` from a checkout.

Opens the workspace given, else the one open last time, else $DDAE_WORKSPACE or ~/ddae-workspace.
Closing the window leaves running jobs running; opening it again shows them live.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import sys

NO_QT = ("The desktop app needs Qt, which this installation lacks: install the `gui` extra "
         "(pip install 'ddae-studio[gui]', or ./bootstrap.sh in a checkout); the `ddae` command works without it.")


def parse_args(argv: list[str] | None, prog: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description="DDAE Studio, the desktop app.")
    parser.add_argument("--workspace", metavar="DIR", help="workspace folder to open (created if missing)")
    parser.add_argument("--cpu-slots", type=int, default=None, metavar="N",
                        help="CPU jobs the scheduler may run at once (default: the saved setting, 1)")
    parser.add_argument("--no-scheduler", action="store_true",
                        help="only show the workspace; leave queued jobs to `ddae queue serve`")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Start the app; the exit status is Qt's, 1 when Qt cannot start here, 2 when no workspace opens."""
    args = parse_args(argv, prog or os.path.basename(sys.argv[0]) or "ddae-studio")
    # A headless install (no `gui` extra) says what to install instead of an ImportError's traceback.
    if importlib.util.find_spec("PySide6") is None or importlib.util.find_spec("pyqtgraph") is None:
        print(NO_QT, file=sys.stderr)
        return 1

    # Before Qt loads its X11 plugin: missing system libraries are named with the command that installs
    # them, instead of Qt's plugin error and an abort.
    from app.qt_libs import problem

    missing = problem()
    if missing:
        print(missing, file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_window(args)


def run_window(args: argparse.Namespace) -> int:
    """The window on the chosen workspace, until it closes."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from app import workspace as workspaces
    from app.main_window import MainWindow, settle_heap

    app = QApplication(sys.argv[:1])
    app.setOrganizationName(workspaces.ORGANIZATION)
    app.setApplicationName(workspaces.APPLICATION)
    app.setStyle("Fusion")
    window = MainWindow(run_scheduler=not args.no_scheduler, cpu_slots=args.cpu_slots)
    path = workspaces.initial_workspace(args.workspace)
    if not window.open_workspace(path):
        chosen = workspaces.ask_workspace(window)
        if chosen is None or not window.open_workspace(chosen):
            QMessageBox.critical(window, "DDAE Studio", "No workspace could be opened; start again with "
                                 "--workspace DIR.")
            return 2
    window.show()
    settle_heap()
    # Ctrl+C or SIGTERM close the window as the close button does: threads stop, jobs keep running.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: window.close())
    wake = QTimer()
    wake.start(250)                 # Python only sees a signal when the interpreter runs
    wake.timeout.connect(lambda: None)
    return app.exec()
