"""Missing X11 libraries for Qt's xcb plugin are named, with the one command that installs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app import qt_libs

LDD = """\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f7d)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibGL.so.1 => /lib/x86_64-linux-gnu/libGL.so.1 (0x00007f7d)
\tlibxcb-icccm.so.4 => not found
\tlibxkbcommon-x11.so.0 => not found
"""


def fake_ldd(output: str):
    def run(cmd, **kwargs):
        assert cmd[0] == "ldd"
        return subprocess.CompletedProcess(cmd, 0, stdout=output, stderr="")
    return run


def test_missing_libraries_become_one_apt_command(tmp_path):
    plugin = tmp_path / "libqxcb.so"
    plugin.write_bytes(b"")
    missing = qt_libs.missing_xcb_libraries(plugin, run=fake_ldd(LDD))
    assert missing == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxkbcommon-x11.so.0"]
    apt = {"apt-get": "/usr/bin/apt-get"}.get
    assert qt_libs.install_command(missing, has=apt) == \
        "sudo apt-get install -y libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0"
    dnf = {"dnf": "/usr/bin/dnf"}.get
    assert qt_libs.install_command(missing, has=dnf) == \
        "sudo dnf install -y xcb-util-wm xcb-util-keysyms libxkbcommon-x11"
    assert qt_libs.missing_xcb_libraries(plugin, run=fake_ldd(LDD.replace("not found", "/lib/x.so"))) == []


def test_only_an_xcb_start_is_checked():
    assert qt_libs.uses_xcb({"DISPLAY": ":0"}, "linux")
    assert not qt_libs.uses_xcb({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert qt_libs.uses_xcb({"QT_QPA_PLATFORM": "xcb"}, "linux")
    assert not qt_libs.uses_xcb({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"},
                                "linux")
    assert not qt_libs.uses_xcb({}, "linux") and not qt_libs.uses_xcb({"DISPLAY": ":0"}, "darwin")
    assert qt_libs.problem({"QT_QPA_PLATFORM": "offscreen"}) is None


def test_main_prints_the_command_instead_of_starting_qt(monkeypatch, capsys):
    import main

    monkeypatch.setattr(qt_libs, "missing_xcb_libraries", lambda: ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"])
    monkeypatch.setattr(qt_libs.shutil, "which", lambda name: "/usr/bin/apt-get" if name == "apt-get" else None)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    assert main.main([]) == 1
    err = capsys.readouterr().err
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1" in err
    assert err.strip().endswith("sudo apt-get install -y libxcb-icccm4 libxcb-keysyms1")


def test_the_real_plugin_is_found_and_read():
    if not sys.platform.startswith("linux"):
        return
    plugin = qt_libs.xcb_plugin()
    assert plugin is not None and plugin.name == "libqxcb.so"
    assert all(name.startswith("lib") for name in qt_libs.missing_xcb_libraries(Path(plugin)))
