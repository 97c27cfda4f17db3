"""Run: one run, live (view.py; its tabs in panels.py, deferred_panel.py and unified.py) and the feeds that
read its new points and its checkpoints' results on the live hub's reader thread (feed.py, checkpoints.py;
Qt-free)."""
