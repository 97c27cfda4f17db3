"""Process-wide settings the app needs before Qt paints or is called: imported by `app/__init__.py`.

1. PySide6/shiboken6 6.12's abi3 wheels (tagged cp310-abi3) are built as for Python >= 3.12, where
   None, True and False are immortal: a Qt method that returns nothing (`pen.setWidth(1)`) or a bool
   hands them back without counting a reference. On Python 3.10 and 3.11 every such call takes one
   reference away for good; streaming two jobs into the window drops None's count by ~3,000 a
   second, and after 30-60 s Python aborts ("Fatal Python error: none_dealloc: deallocating None").
   Python 3.12 gave these objects a huge count; keep_singletons_alive does the same here.
2. Qt's raster engine splits large fills and translucent lines (every vertical grid line, one span
   a row) into chunks for its GUI thread pool and waits for them. On a machine whose cores are busy
   training, each wait is a scheduler slice: a plot repaint took 8-25 ms instead of 3-4 ms, most of
   the window's stalls. paint_on_gui_thread keeps those fills on the GUI thread (QT_NO_GUI_THREADPOOL,
   read by Qt when it first paints; a value already in the environment wins).

Imports no Qt, so it runs before Qt can start or abort (app.qt_libs relies on that).
"""

from __future__ import annotations

import ctypes
import os
import sys

_HEADROOM = 1 << 60     # ~1e18 references: lost at thousands a second, more than any process lives


def keep_singletons_alive() -> bool:
    """Raise the reference counts of None, True and False by _HEADROOM (CPython < 3.12); True if done."""
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False
    done = False
    for obj in (None, True, False):
        # ob_refcnt is the first field of a CPython object (not in Py_TRACE_REFS builds: then the
        # count read there differs from getrefcount's, and nothing is written). We hold the GIL.
        refcount = ctypes.c_ssize_t.from_address(id(obj))
        if refcount.value != sys.getrefcount(obj) - 1:
            continue
        if refcount.value < _HEADROOM:
            refcount.value += _HEADROOM
        done = True
    return done


def paint_on_gui_thread() -> None:
    """Qt paints without its GUI thread pool, unless QT_NO_GUI_THREADPOOL is already set (to anything)."""
    os.environ.setdefault("QT_NO_GUI_THREADPOOL", "1")
