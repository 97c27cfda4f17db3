"""Before Qt starts: find the system libraries Qt's X11 (xcb) plugin needs and are missing.

On a fresh Debian or Ubuntu machine the PySide6 wheel runs, but its xcb plugin needs a few X11
libraries the desktop may lack (libxcb-icccm4 and libxcb-keysyms1 on Debian 12). Qt then aborts
with a long plugin error that names none of them. `ldd` on the plugin names them; this module turns
them into the one command that installs them. It imports no Qt, so it runs before Qt can abort.

`python -m app.qt_libs` prints that command (exit status 1) or nothing (0).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

# Fedora and friends name these libraries differently; Debian's names follow from the soname.
DNF_PACKAGES = {
    "libxcb-icccm.so.4": "xcb-util-wm", "libxcb-keysyms.so.1": "xcb-util-keysyms",
    "libxcb-image.so.0": "xcb-util-image", "libxcb-render-util.so.0": "xcb-util-renderutil",
    "libxcb-cursor.so.0": "xcb-util-cursor", "libxcb-util.so.1": "xcb-util",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11",
}
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)


def xcb_plugin() -> Path | None:
    """PySide6's libqxcb.so (found without importing Qt), or None."""
    spec = importlib.util.find_spec("PySide6")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        plugin = Path(folder) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        if plugin.is_file():
            return plugin
    return None


def uses_xcb(env: Mapping[str, str] = os.environ, platform: str = sys.platform) -> bool:
    """True when Qt would load its xcb plugin: Linux with an X display, unless another platform is asked for."""
    if not platform.startswith("linux"):
        return False
    asked = env.get("QT_QPA_PLATFORM", "")
    if asked:
        return asked.split(";")[0].split(":")[0] == "xcb"
    if env.get("WAYLAND_DISPLAY") and env.get("XDG_SESSION_TYPE") == "wayland":
        return False                # Qt 6 prefers its Wayland plugin there
    return bool(env.get("DISPLAY"))


def not_found(ldd_output: str) -> list[str]:
    """The sonames `ldd` reports as 'not found', once each, in its order."""
    return list(dict.fromkeys(_NOT_FOUND.findall(ldd_output)))


def debian_package(soname: str) -> str:
    """'libxcb-icccm.so.4' -> 'libxcb-icccm4'; a name ending in a digit gets a hyphen ('libxkbcommon-x11-0')."""
    base, _, version = soname.partition(".so.")
    version = version.split(".")[0]
    return (base + ("-" if base[-1:].isdigit() else "") + version).lower()


def install_command(sonames: list[str], has: Callable[[str], str | None] = shutil.which) -> str:
    """The one command that installs the packages holding `sonames` on this system."""
    if has("apt-get"):
        return "sudo apt-get install -y " + " ".join(dict.fromkeys(debian_package(s) for s in sonames))
    if has("dnf"):
        return "sudo dnf install -y " + " ".join(dict.fromkeys(DNF_PACKAGES.get(s, s) for s in sonames))
    return "install the packages that provide " + ", ".join(sonames)


def missing_xcb_libraries(plugin: Path | None = None, run: Callable = subprocess.run) -> list[str]:
    """Sonames the xcb plugin needs that the system lacks (empty when all are there or ldd cannot tell)."""
    plugin = plugin or xcb_plugin()
    if plugin is None or shutil.which("ldd") is None and run is subprocess.run:
        return []
    try:
        result = run(["ldd", str(plugin)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return not_found(result.stdout or "")


def problem(env: Mapping[str, str] = os.environ) -> str | None:
    """One sentence and the command to run when Qt's xcb plugin would fail to load here; None when fine."""
    if not uses_xcb(env):
        return None
    missing = missing_xcb_libraries()
    if not missing:
        return None
    return (f"The desktop app needs system libraries Qt's X11 plugin cannot find ({', '.join(missing)}); "
            f"install them with:\n    {install_command(missing)}")


if __name__ == "__main__":
    text = problem()
    if text:
        print(text, file=sys.stderr)
    sys.exit(1 if text else 0)
