"""Queue: what runs, waits and just finished (view.py, its Qt table model in model.py) and the feed that
reads those rows on the live hub's reader thread and carries out cancel/resume/priority (feed.py, Qt-free)."""
