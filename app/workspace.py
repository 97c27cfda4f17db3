"""Choosing, opening and remembering the workspace folder.

The app's settings live in one QSettings INI file. $DDAE_STUDIO_SETTINGS names another file, so
tests and benchmarks never read or write the user's settings.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QWidget

from db import SchemaError, Store

ORGANIZATION = "DDAE"
APPLICATION = "DDAE Studio"
SETTINGS_ENV = "DDAE_STUDIO_SETTINGS"
LAST_KEY = "workspace/last"
RECENT_KEY = "workspace/recent"
MAX_RECENT = 8


class WorkspaceError(Exception):
    """A workspace folder that cannot be opened; str() is one sentence for the user."""


def settings() -> QSettings:
    """The app's settings: $DDAE_STUDIO_SETTINGS if set, else the user's INI file."""
    path = os.environ.get(SETTINGS_ENV)
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def default_workspace() -> Path:
    return Path(os.environ.get("DDAE_WORKSPACE") or Path.home() / "ddae-workspace").expanduser()


def last_workspace() -> Path | None:
    """The workspace the app had open last, if its folder still exists."""
    value = settings().value(LAST_KEY)
    if value and Path(str(value)).is_dir():
        return Path(str(value))
    return None


def recent_workspaces() -> list[Path]:
    values = settings().value(RECENT_KEY) or []
    if isinstance(values, str):         # QSettings gives a bare string for a one-item list
        values = [values]
    return [Path(v) for v in values if v and Path(v).is_dir()]


def remember(workspace: Path) -> None:
    """Make `workspace` the one opened next time and the first of the recent list."""
    s = settings()
    text = str(Path(workspace).resolve())
    recent = [text] + [str(p) for p in recent_workspaces() if str(p) != text]
    s.setValue(LAST_KEY, text)
    s.setValue(RECENT_KEY, recent[:MAX_RECENT])
    s.sync()


def initial_workspace(cli_value: str | None) -> Path:
    """--workspace wins, then the last one opened, then $DDAE_WORKSPACE or ~/ddae-workspace."""
    if cli_value:
        return Path(cli_value).expanduser()
    return last_workspace() or default_workspace()


def open_store(workspace: Path) -> Store:
    """Open (creating if needed) the workspace's index; WorkspaceError with one sentence if it cannot."""
    workspace = Path(workspace).expanduser()
    if workspace.exists() and not workspace.is_dir():
        raise WorkspaceError(f"{workspace} is a file, not a folder; choose a folder for the workspace.")
    try:
        return Store.open(workspace)
    except SchemaError as exc:
        raise WorkspaceError(f"{workspace} was written by a newer DDAE Studio ({exc}); update the app "
                             "or choose another workspace.") from None
    except OSError as exc:
        raise WorkspaceError(f"{workspace} cannot be opened ({exc.strerror or exc}); choose another "
                             "folder.") from None
    except Exception as exc:  # noqa: BLE001 - a corrupt database file, for instance: say so, never crash
        raise WorkspaceError(f"The index of {workspace} cannot be read ({exc.__class__.__name__}); run "
                             "`ddae reindex` there or choose another folder.") from None


def ask_workspace(parent: QWidget | None, start: Path | None = None) -> Path | None:
    """A folder dialog (which can also create a folder); None when cancelled."""
    folder = QFileDialog.getExistingDirectory(
        parent, "Open or create a workspace", str(start or default_workspace().parent),
        QFileDialog.Option.ShowDirsOnly)
    return Path(folder) if folder else None
