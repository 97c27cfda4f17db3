"""Launch: one form per job kind (view.py; the kinds' forms in kinds.py, their fields in fields.py, the
cluster profiles dialog in cluster_settings.py, the import-a-model dialog in import_model.py) and the
feed that queues a spec (feed.py, Qt-free)."""
