"""ClassifyView on a real probed micro model: drops, paste, the noise slider, bad files, no thread left behind."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QApplication

from app.classify.feed import ClassifyFeed
from app.classify.view import ClassifyView
from app.classify.worker import Result, running_threads
from app.live import LiveHub
from tests.gui_fixtures import one_torch_thread

WAIT_MS = 60_000


@pytest.fixture(autouse=True)
def _no_thread_left(qapp):
    """Fail a test that leaves an inference thread (or any Python thread) running."""
    before = {t.ident for t in threading.enumerate()}
    with one_torch_thread():
        yield
    assert running_threads() == [], "an inference thread is still running"
    assert {t.ident for t in threading.enumerate() if t.is_alive()} <= before


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = {name: folder / name for name in
             ("square.png", "photo.jpg", "gray.png", "transparent.png", "notes.txt", "truncated.png", "huge.png")}
    square = np.full((32, 32, 3), 20, np.uint8)
    square[8:24, 8:24] = (230, 40, 40)
    Image.fromarray(square).save(paths["square.png"])
    Image.fromarray((rng.random((200, 300, 3)) * 255).astype(np.uint8)).save(paths["photo.jpg"])
    Image.fromarray((rng.random((64, 64)) * 255).astype(np.uint8), "L").save(paths["gray.png"])
    rgba = np.zeros((48, 48, 4), np.uint8)
    rgba[10:38, 10:38] = (0, 0, 255, 255)
    Image.fromarray(rgba, "RGBA").save(paths["transparent.png"])
    paths["notes.txt"].write_text("not an image")
    raw = paths["square.png"].read_bytes()
    paths["truncated.png"].write_bytes(raw[:len(raw) // 2])
    Image.new("1", (8000, 6000)).save(paths["huge.png"])      # 48 megapixels, a few kB on disk
    return paths


@pytest.fixture
def view(qtbot, gui_store, gui_workspace) -> ClassifyView:
    widget = ClassifyView(ClassifyFeed(gui_store), LiveHub(gui_store), device="cpu")
    qtbot.addWidget(widget)
    widget.resize(1000, 650)
    widget.show()
    widget.hub.poll()           # the runs that can classify, read as the hub's reader would
    widget.set_run(gui_workspace.train_a)
    yield widget
    widget.shutdown()


def drop(widget, paths: list[Path]) -> QDropEvent:
    """Send a drag-enter and a drop of local files, as a file manager would."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)
    return event


def test_drop_valid_image_is_classified_from_one_forward_pass(view, qtbot, images):
    with qtbot.waitSignal(view.predictionShown, timeout=WAIT_MS) as blocker:
        event = drop(view, [images["square.png"]])
    assert event.isAccepted()
    shown = blocker.args[0]
    assert shown["file"] == str(images["square.png"]) and len(shown["top5"]) == 5
    assert view.top5_labels and len(set(view.top5_labels)) == 5
    probabilities = view.top5_probabilities
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0 + 1e-6
    assert view.noise_level == 11                       # the best probe cell's timestep
    assert view.status_message == "square.png: classified as it is."
    pictures = view.shown_images()
    assert all(not image.isNull() and image.width() == 32 for image in pictures.values())
    assert view.thumbnails.count() == 1 and "%" in view.thumbnails.item(0).text()


def test_drop_non_image_gets_one_sentence_not_a_crash(view, qtbot, images):
    drop(view, [images["notes.txt"]])
    assert view.wait_idle(WAIT_MS)
    assert view.status_message == "notes.txt is not an image PIL can read; use a PNG, JPEG, BMP or WebP file."
    assert view.top5 == [] and view.shown_images()["noisy"].isNull()
    assert "not readable" in view.thumbnails.item(0).text()
    # A drop that carries no file at all is refused at the door.
    mime = QMimeData()
    mime.setText("hello")
    enter = QDragEnterEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view, enter)
    assert not enter.isAccepted()


def test_unreadable_file_clears_the_previous_pictures(view, qtbot, images):
    view.load_files([images["square.png"]])
    assert view.wait_idle(WAIT_MS)
    assert not view.pictures["noisy"].pixmap().isNull()
    view.load_files([images["notes.txt"]])              # selected at once: its error is shown alone
    assert view.wait_idle(WAIT_MS)
    assert "not an image" in view.status_message
    for name, picture in view.pictures.items():
        assert picture.pixmap().isNull(), f"the {name} picture still shows the previous image"
    assert view.top5 == []


def test_classify_slider_changes_noise_level_and_prediction(view, qtbot, images):
    view.load_files([images["square.png"]])
    assert view.wait_idle(WAIT_MS)
    view.set_noise_level(0)
    assert view.wait_idle(WAIT_MS)
    clean_noisy = view.shown_images()["noisy"]
    clean_probabilities = view.top5
    assert view.noise_level == 0
    # Move the slider itself, as a user would.
    with qtbot.waitSignal(view.predictionShown, timeout=WAIT_MS):
        view.noise.slider.setValue(700)
    assert view.noise_level == round(1000 * 0.7 ** 2) == view.noise.timestep()
    assert view.shown_images()["noisy"] != clean_noisy
    assert view.top5 != clean_probabilities
    assert view.noise.label.text().startswith(f"t = {view.noise_level} (σ ≈")
    assert "head of t=51" in view.noise.label.text()   # the nearest probed timestep's head answers
    # Past the heads (t=11..51), said plainly beside the slider and in the status line.
    assert view.noise.warning_text().startswith(f"t={view.noise_level} is outside the heads' range (t=11..51)")
    assert "nearest head, t=51" in view.noise.warning_text() and view.noise.warning_text() in view.status_message
    view.set_noise_level(11)
    assert view.wait_idle(WAIT_MS)
    assert view.noise.warning_text() == "" and "outside" not in view.status_message


def test_classify_a_dropped_labelled_folder_shows_true_classes_and_the_accuracy(view, qtbot, tmp_path):
    folder = tmp_path / "labelled"
    for shape, colour in (("circle", (200, 30, 30)), ("square", (30, 200, 30)), ("star", (30, 30, 200))):
        (folder / shape).mkdir(parents=True)
        Image.new("RGB", (32, 32), colour).save(folder / shape / f"{shape}.png")
    drop(view, [folder])
    assert view.wait_idle(WAIT_MS)
    assert [p.parent.name for p in view.files()] == ["circle", "square", "star"]
    qtbot.waitUntil(lambda: "right" in view.thumb_label.text(), timeout=WAIT_MS)
    right, n = view.folder_tally()
    assert n == 3 and view.thumb_label.text().endswith(f": {right} of 3 right ({100 * right / 3:.0f}%)")
    texts = [view.thumbnails.item(i).text() for i in range(3)]
    assert sum(text.endswith("✓") for text in texts) == right
    assert all(text.endswith("✓") or text.endswith(f"✗ ({shape})") for text, shape in
               zip(texts, ("circle", "square", "star")))
    assert "True class (its folder): circle, " in view.status_message


def test_classify_shows_only_the_latest_request(view, qtbot, images):
    view.load_files([images["square.png"]])
    assert view.wait_idle(WAIT_MS)
    for t in (100, 200, 300, 400):
        view.set_noise_level(t)
    assert view.wait_idle(WAIT_MS)
    assert view.noise_level == 400
    # A late answer to an older request is dropped, never shown.
    stale = Result(id=view._latest_id - 1, timestep=5, top5=[("x", 1.0)])
    shown_before = view.top5
    view._on_result(stale)
    assert view.top5 == shown_before and view.noise_level == 400 and view.dropped_results >= 1


def test_classify_several_files_grid_with_notes_for_odd_images(view, qtbot, images):
    names = ["square.png", "photo.jpg", "gray.png", "transparent.png", "truncated.png", "huge.png"]
    view.load_files([images[n] for n in names])
    assert view.wait_idle(WAIT_MS)
    texts = [view.thumbnails.item(i).text() for i in range(view.thumbnails.count())]
    assert len(texts) == 6
    assert all("%" in text for text in texts[:4]) and all("not readable" in text for text in texts[4:])
    expected = {
        "photo.jpg": "centre-cropped from 300x200 to 200x200; resized from 200x200 to 32x32, the model's size",
        "gray.png": "grayscale, converted to RGB",
        "transparent.png": "transparent areas were filled with white",
        "truncated.png": "truncated.png is damaged or truncated",
        "huge.png": "huge.png is 8000x6000 pixels, too large to classify",
    }
    for index, name in enumerate(names[1:], start=1):
        view.select_file(index)
        assert view.wait_idle(WAIT_MS)
        assert expected[name] in view.status_message
        assert view.status_message.count("\n") == 0


def test_classify_paste_of_image_data_and_run_choices(view, qtbot, gui_workspace, images):
    mime = QMimeData()
    mime.setImageData(QImage(str(images["square.png"])))
    assert view.accept_mime(mime)
    assert view.wait_idle(WAIT_MS)
    assert view.files()[0].name.startswith("pasted_") and len(view.top5) == 5
    QApplication.clipboard().setMimeData(mime_with_file(images["gray.png"]))
    view.paste()
    # The clipboard owns that QMimeData now; empty it while Qt is alive, or the interpreter's exit
    # frees it twice (exit code 139 after the tests passed).
    QApplication.clipboard().clear()
    assert view.wait_idle(WAIT_MS)
    assert [p.name for p in view.files()][-1] == "gray.png"
    # The run chooser offers train runs with heads first, then the head runs themselves.
    run_ids = [view.run_combo.itemData(i) for i in range(view.run_combo.count())]
    assert run_ids[:2] == [gui_workspace.train_b, gui_workspace.train_a]
    assert {gui_workspace.probe_a, gui_workspace.probe_b, gui_workspace.noisy_a} <= set(run_ids)
    heads = [view.head_combo.itemData(i) for i in range(view.head_combo.count())]
    assert [h.head for h in heads].count("noisy") == 1 and heads[0].layer is None
    view.set_head([h.head for h in heads].index("noisy"))
    assert view.wait_idle(WAIT_MS)
    assert len(view.top5) == 5 and view.noise_level == 11


def mime_with_file(path: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    return mime


def test_classify_run_without_heads_says_so(view, gui_workspace):
    view.set_run("no-such-run")
    assert view.status_message == "Run no-such-run has no trained classifier head to use."


def test_classify_worker_thread_ends_when_idle_and_restarts(view, qtbot, images, monkeypatch):
    import app.classify.worker as worker_module

    monkeypatch.setattr(worker_module, "IDLE_EXIT_S", 0.2)
    view.load_files([images["square.png"]])
    assert view.wait_idle(WAIT_MS)
    qtbot.waitUntil(lambda: not view._worker.isRunning(), timeout=30_000)
    view.set_noise_level(60)                          # starts it again, with the model still cached
    assert view.wait_idle(WAIT_MS) and view.noise_level == 60


def test_classify_opens_on_a_preferred_run_once_it_can_classify(view, gui_workspace):
    """The demo asks for the bundled CIFAR-10 model: chosen at once when listed, kept wanted until then."""
    view.prefer_run("not-indexed-yet")
    view.hub.poll()
    assert view.run_combo.currentData() == gui_workspace.train_a      # nothing to open yet: the choice stays
    view.prefer_run(gui_workspace.train_b)
    assert view.run_combo.currentData() == gui_workspace.train_b
    assert view.current_head() is not None and view.current_head().run_id in {gui_workspace.probe_b,
                                                                             gui_workspace.noisy_a}
