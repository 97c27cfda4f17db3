"""Classify: images through a run's probe or noisy-classifier head (view.py, input.py; inference on
worker.py's thread) and the feed that lists the runs that can classify on the live hub's reader thread
(feed.py, Qt-free)."""
