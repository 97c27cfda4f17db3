"""Classify's lens on a real probed micro model: PCA pictures of the feature map and the clicked pixel's match."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from app.classify.feed import ClassifyFeed
from app.classify.view import ClassifyView
from app.live import LiveHub
from ddae_core.engine.evaluation.classify import Classifier
from ddae_core.engine.evaluation.lens import feature_map, pca_rgb
from ddae_core.engine.image_files import load_image
from tests.gui_fixtures import one_torch_thread

WAIT_MS = 60_000


@pytest.fixture(autouse=True)
def _no_thread_left(qapp):
    before = {t.ident for t in threading.enumerate()}
    with one_torch_thread():
        yield
    assert {t.ident for t in threading.enumerate() if t.is_alive()} <= before


@pytest.fixture
def pictures(tmp_path):
    square = np.full((32, 32, 3), 20, np.uint8)
    square[8:24, 8:24] = (230, 40, 40)
    disc = np.full((32, 32, 3), 200, np.uint8)
    yy, xx = np.mgrid[:32, :32]
    disc[(yy - 16) ** 2 + (xx - 12) ** 2 < 64] = (30, 30, 220)
    paths = [tmp_path / "square.png", tmp_path / "disc.png"]
    for path, array in zip(paths, (square, disc)):
        Image.fromarray(array).save(path)
    return paths


@pytest.fixture
def view(qtbot, gui_store, gui_workspace):
    widget = ClassifyView(ClassifyFeed(gui_store), LiveHub(gui_store), device="cpu")
    qtbot.addWidget(widget)
    widget.resize(1100, 800)
    widget.show()
    widget.hub.poll()
    widget.set_run(gui_workspace.train_a)
    yield widget
    widget.shutdown()


def test_lens_shows_pca_colours_of_the_feature_map_and_a_self_match_at_the_clicked_pixel(view, pictures):
    view.load_files(pictures)
    view.select_file(0)
    assert view.wait_idle(WAIT_MS) and view.lens.wait_idle(WAIT_MS)
    lens = view.lens
    shown = lens.shown()
    assert shown is not None and shown.error is None
    # The first picture's colours are the engine's PCA of the same feature map, computed here directly.
    clf = Classifier.from_run(view.current_head().run_dir, head="probe", device="cpu")
    image = load_image(pictures[0], clf.model.resolution).image
    fmap = feature_map(clf.model, image, view.noise_level, shown.layer)
    expected = (pca_rgb(fmap, 32).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(shown.colours[0], expected)
    assert not lens.picture("first_pca").isNull() and lens.picture("first_pca").width() == 32
    # Another layer is another picture.
    other = next(layer for layer in shown.layers if layer != shown.layer)
    lens.set_layer(other)
    assert lens.wait_idle(WAIT_MS) and lens.shown().layer == other
    assert not np.array_equal(lens.shown().colours[0], expected)
    # The image against itself: the clicked pixel is where it matches best, with cosine 1.
    lens.set_second(0)
    assert lens.wait_idle(WAIT_MS)
    lens.click(20, 9)
    assert lens.heat[20, 9] == pytest.approx(1.0, abs=1e-5) and lens.heat.max() <= 1.0 + 1e-5
    assert "pixel (20, 9) matches best" in lens.status.text()
    # A real click on the picture lands on the image pixel under the mouse.
    picture = lens.pictures["first"]
    pixmap = picture.pixmap()
    left, top = (picture.width() - pixmap.width()) / 2, (picture.height() - pixmap.height()) / 2
    scale = pixmap.width() / 32
    assert picture.pixel_at(left + 5.5 * scale, top + 3.5 * scale) == (3, 5)
