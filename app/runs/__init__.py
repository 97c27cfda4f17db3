"""Runs: every run as one sortable, filterable table paged by the database (view.py, its Qt table model
in model.py) and the feed behind it: the page query and the edits (feed.py, Qt-free)."""
