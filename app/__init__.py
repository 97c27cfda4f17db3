"""The desktop app (Qt). Importing it first applies the process-wide settings of app.qt_runtime."""

from .qt_runtime import keep_singletons_alive, paint_on_gui_thread

keep_singletons_alive()
paint_on_gui_thread()
