"""DDAE Studio: `python main.py [--workspace DIR]`.

Opens the workspace given, else the one open last time, else $DDAE_WORKSPACE or ~/ddae-workspace.
Closing the window leaves running jobs running; opening it again shows them live.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="main.py", description="DDAE Studio, the desktop app.")
    parser.add_argument("--workspace", metavar="DIR", help="workspace folder to open (created if missing)")
    parser.add_argument("--cpu-slots", type=int, default=None, metavar="N",
                        help="CPU jobs the scheduler may run at once (default: the saved setting, 1)")
    parser.add_argument("--no-scheduler", action="store_true",
                        help="only show the workspace; leave queued jobs to `ddae queue serve`")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    # Before Qt loads its X11 plugin: missing system libraries are named with the command that installs
    # them, instead of Qt's plugin error and an abort.
    from app.qt_libs import problem

    missing = problem()
    if missing:
        print(missing, file=sys.stderr)
        return 1

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


if __name__ == "__main__":
    sys.exit(main())
