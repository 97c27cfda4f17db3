"""Importing a model from the app: a checkpoint dropped on the window (or File > Import a model…) opens the import
dialog, which names the format it found and queues the same `import` job as `ddae import`."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from ddae_core.rundir import JobKind
from tests.app_support import app_settings, no_leftovers, studio  # noqa: F401
from tests.test_import_diffusers import SMALL, make_folder

pytest.importorskip("diffusers")


def drop(window, path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)


def test_a_dropped_diffusers_folder_opens_the_import_dialog_and_queues_its_import(studio, qtbot, tmp_path):
    folder = tmp_path / "ddpm-small"
    make_folder(folder, {**SMALL, "sample_size": 32})
    window = studio(tmp_path / "ws", run_scheduler=False)
    opened = []
    window.import_model = lambda source=None, _open=window.import_model: opened.append(_open(source)) or opened[-1]
    drop(window, folder)
    dialog = opened[-1]
    assert "diffusers" in dialog.format.text() and not dialog.config.isEnabled()
    assert dialog.import_button.isEnabled()
    dialog.data.setText("builtin:shapes?n_train=64&n_test=32")
    run_id = dialog.submit()
    assert run_id is not None and dialog.error.text() == ""
    record = window.store.get_run(run_id)
    assert record.kind == JobKind.IMPORT and record.name == "ddpm-small"
    assert record.spec["options"]["format"] == "diffusers" and len(record.spec["options"]["sha256"]) == 64
    assert [e.run for e in window.store.queued_jobs()] == [run_id]


def test_the_import_dialog_names_what_is_wrong_and_queues_nothing(studio, qtbot, tmp_path):
    window = studio(tmp_path / "ws", run_scheduler=False)
    dialog = window.import_model(str(tmp_path / "missing.pth"))
    assert "does not exist" in dialog.format.text() and not dialog.import_button.isEnabled()
    official = tmp_path / "model_800.pth"
    official.write_bytes(b"not a checkpoint")
    dialog.source.setText(str(official))
    assert "official DDAE checkpoint" in dialog.format.text() and dialog.config.isEnabled()
    assert dialog.submit() is None
    assert "config" in dialog.error.text() and "\n" not in dialog.error.text()
    assert window.store.queued_jobs() == []


def test_dropped_images_still_go_to_classify(studio, qtbot, tmp_path):
    from PIL import Image

    image = tmp_path / "cat.png"
    Image.new("RGB", (32, 32), (120, 40, 40)).save(image)
    window = studio(tmp_path / "ws", run_scheduler=False)
    drop(window, image)
    assert window.tabs.currentWidget() is window.classify_view
