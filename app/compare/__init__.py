"""Compare: runs side by side (view.py; panels.py, tables.py, picker.py) and the feed that reads them on
the live hub's reader thread (feed.py, Qt-free)."""
