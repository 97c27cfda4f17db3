"""ddae_core.engine.data on real files: generated shapes, the cifar10-mini image folder, small folders built here."""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddae_core.engine.data import (
    BatchSampler,
    ImageData,
    augment_batch,
    builtin,
    check_data_spec,
    describe_specs,
    load_split,
)
from ddae_core.engine.errors import DataError, UserError

CIFAR_MINI = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-mini"
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
needs_cifar_mini = pytest.mark.skipif(not CIFAR_MINI.is_dir(), reason=f"real test data {CIFAR_MINI} is absent")


@pytest.fixture(autouse=True)
def _no_user_workspace(tmp_path, monkeypatch):
    """Tests never touch the user's ~/ddae-workspace, even where a test forgets data_root."""
    monkeypatch.setenv("DDAE_WORKSPACE", str(tmp_path / "workspace"))


def _row_hashes(images: torch.Tensor) -> set[bytes]:
    return {hashlib.sha1(row.tobytes()).digest() for row in images.numpy().reshape(len(images), -1)}


def _save(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


def _rgb(h: int, w: int, value: int) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


# builtin:shapes
def test_shapes_default_splits_are_balanced_and_disjoint():
    train = load_split("builtin:shapes", "train")
    test = load_split("builtin:shapes", "test")
    assert isinstance(train, ImageData) and (len(train), len(test)) == (10_000, 2_000)
    assert train.images.shape == (10_000, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.images.is_contiguous() and train.labels.dtype == torch.int64
    assert train.classes == list(builtin.SHAPES) and len(set(train.classes)) == 10
    assert torch.bincount(train.labels).tolist() == [1000] * 10
    assert torch.bincount(test.labels).tolist() == [200] * 10
    assert (train.spec, train.split, train.note) == ("builtin:shapes", "train", None)
    assert not _row_hashes(train.images) & _row_hashes(test.images)
    # Not flat: shapes and textures use the whole range.
    assert train.images.float().std() > 40


def test_shapes_are_deterministic_per_seed():
    spec = "builtin:shapes?n_train=300&n_test=100&seed=7"
    first = load_split(spec, "train")
    first.images[0] = 0  # callers get copies: this must not leak into the next load
    builtin._cached.cache_clear()
    again = load_split(spec, "train")
    assert torch.equal(load_split(spec, "train").images, again.images)
    assert torch.equal(again.images[1:], first.images[1:]) and again.images[0].any()
    other = load_split("builtin:shapes?n_train=300&n_test=100&seed=8", "train")
    assert not torch.equal(other.images, again.images)


def test_shapes_without_texture_keep_every_shape_on_a_plain_background():
    textured = load_split("builtin:shapes?n_train=200&n_test=10", "train")
    plain = load_split("builtin:shapes?n_train=200&n_test=10&texture=0", "train")
    assert torch.equal(plain.labels, textured.labels) and plain.spec.endswith("texture=0")
    # The top rows rarely hold the shape: there, only pixel noise (sigma <= 0.05) varies on a plain background.
    corner = lambda data: data.images[:, :, :2, :].float().flatten(2).std(2).median()  # noqa: E731
    assert corner(plain) < 0.05 * 255 and corner(textured) > 1.5 * corner(plain)
    with pytest.raises(DataError, match="texture"):
        load_split("builtin:shapes?texture=2", "train")


def test_shapes_generation_is_fast():
    builtin._cached.cache_clear()
    start = time.perf_counter()
    builtin.generate_shapes(10_000, 123, "train")
    builtin.generate_shapes(2_000, 123, "test")
    assert time.perf_counter() - start < 10  # ~1.5 s idle; the bound only catches a pathological slowdown


def test_limit_keeps_a_balanced_deterministic_subset_and_resolution_resizes():
    data = load_split("builtin:shapes?n_train=500", "train", limit=50, seed=3)
    assert len(data) == 50 and torch.bincount(data.labels).tolist() == [5] * 10
    assert torch.equal(load_split("builtin:shapes?n_train=500", "train", limit=50, seed=3).images, data.images)
    small = load_split("builtin:shapes?n_train=500", "train", limit=20, resolution=16)
    assert small.images.shape == (20, 3, 16, 16) and small.images.dtype == torch.uint8
    assert small.note == "resized from 32x32 to 16x16"
    assert load_split("builtin:shapes?n_train=500", "train", limit=20, resolution=32).note is None


@pytest.mark.parametrize("spec, words", [
    ("xyz", "Unknown dataset 'xyz'; use builtin:shapes, cifar10, cifar100, folder:PATH or tiny-imagenet:PATH."),
    ("builtin:shapes?n_train=10&colour=red", "'colour'"),
    ("builtin:shapes?n_train=ten", "n_train"),
    ("builtin:shapes?n_test=0", "n_test"),
    ("builtin:shapes?seed", "'seed' needs a value"),
    ("builtin:squares", "'squares'"),
    ("folder:", "needs a folder"),
    ("tiny-imagenet", "tiny-imagenet:PATH"),
    ("", "No dataset"),
])
def test_bad_specs_raise_one_sentence(spec, words):
    for call in (lambda: check_data_spec(spec), lambda: load_split(spec, "train")):
        with pytest.raises(DataError) as caught:
            call()
        message = str(caught.value)
        assert words in message and message.endswith(".")
        assert ". " not in message.replace("e.g. ", ""), "one sentence"


def test_check_data_spec_accepts_good_specs_and_checks_folders(tmp_path):
    for spec in ("builtin:shapes", "builtin:shapes?n_train=2000&n_test=500&seed=3", "cifar10", "CIFAR100",
                 f"folder:{tmp_path}"):
        check_data_spec(spec)
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "nope"))):
        check_data_spec(f"folder:{tmp_path / 'nope'}")
    with pytest.raises(DataError, match="train/"):
        check_data_spec(f"tiny-imagenet:{tmp_path}")
    assert issubclass(DataError, UserError)
    assert all(isinstance(example, str) and description for example, description in describe_specs())
    for example, _ in describe_specs():
        if example.startswith(("builtin", "cifar")):
            check_data_spec(example)


def test_bad_arguments_raise_data_errors():
    for kwargs in ({"limit": 0}, {"resolution": -1}, {"seed": -1}):
        with pytest.raises(DataError):
            load_split("builtin:shapes?n_train=10", "train", **kwargs)
    with pytest.raises(DataError, match="'val'"):
        load_split("builtin:shapes?n_train=10", "val")


# cifar10 through torchvision
def test_missing_cifar10_fails_fast_naming_the_folder(tmp_path):
    from ddae_core.engine.data.torchvision_sets import _reachable
    if _reachable("www.cs.toronto.edu", 5):
        pytest.skip("the CIFAR host is reachable, so this would download CIFAR-10 instead of failing")
    start = time.perf_counter()
    with pytest.raises(DataError) as caught:
        load_split("cifar10", "train", data_root=tmp_path / "data")
    assert time.perf_counter() - start < 20
    assert str(tmp_path / "data" / "cifar10") in str(caught.value) and "folder:PATH" in str(caught.value)


# folder: with the real cifar10-mini
@pytest.fixture(scope="module")
def mini_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mini-data")


@needs_cifar_mini
def test_cifar_mini_full_splits_then_from_cache(mini_root):
    spec = f"folder:{CIFAR_MINI}"
    train = load_split(spec, "train", data_root=mini_root)
    test = load_split(spec, "test", data_root=mini_root)
    assert (len(train), len(test)) == (10_000, 2_000) and train.classes == CIFAR_CLASSES
    assert train.images.shape[1:] == (3, 32, 32) and train.note is None
    assert torch.bincount(train.labels).tolist() == [1000] * 10
    assert torch.bincount(test.labels).tolist() == [200] * 10
    with Image.open(CIFAR_MINI / "train" / "cat" / "0000.jpg") as first_cat:
        expected = np.asarray(first_cat.convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(train.images[train.labels == 3][0].numpy(), expected)

    assert len(list((mini_root / "cache").glob("*.json"))) == 2
    start = time.perf_counter()
    cached = load_split(spec, "train", data_root=mini_root)
    assert time.perf_counter() - start < 2
    assert torch.equal(cached.images, train.images) and torch.equal(cached.labels, train.labels)
    assert cached.images.is_contiguous() and cached.classes == CIFAR_CLASSES


@needs_cifar_mini
def test_cifar_mini_limited_and_resized(tmp_path):
    data = load_split(f"folder:{CIFAR_MINI}", "test", data_root=tmp_path, limit=40, resolution=16)
    assert data.images.shape == (40, 3, 16, 16) and torch.bincount(data.labels).tolist() == [4] * 10
    assert data.note == "resized from 32x32 to 16x16"


# folder: with small folders built here
@pytest.fixture
def messy_folder(tmp_path) -> Path:
    """train/ with mixed sizes, a grayscale PNG, an RGBA PNG and a corrupt JPEG; test/ with two images."""
    root = tmp_path / "messy"
    for i in range(3):
        _save(root / "train" / "bird" / f"{i}.png", _rgb(8, 8, 40 + i))
    _save(root / "train" / "bird" / "big.jpg", _rgb(16, 16, 200))
    _save(root / "train" / "cat" / "gray.png", np.full((8, 8), 90, dtype=np.uint8), "L")
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., :3], rgba[:4, :, 3], rgba[4:, :, 3] = 255, 255, 0  # top half opaque white, bottom transparent
    _save(root / "train" / "cat" / "alpha.png", rgba, "RGBA")
    (root / "train" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "train" / "cat" / "notes.txt").write_text("not an image, not counted")
    _save(root / "test" / "bird" / "t.png", _rgb(8, 8, 10))
    _save(root / "test" / "cat" / "t.bmp", _rgb(8, 8, 20))
    return root


def test_folder_mixed_sizes_modes_and_a_corrupt_file(messy_folder, tmp_path):
    data = load_split(f"folder:{messy_folder}", "train", data_root=tmp_path / "data")
    assert data.classes == ["bird", "cat"] and data.labels.tolist() == [0, 0, 0, 0, 1, 1]
    assert data.images.shape == (6, 3, 8, 8)  # the most common size
    assert "resized 1 of 6 images of mixed sizes to 8x8" in data.note
    assert f"skipped 1 unreadable file, e.g. {messy_folder / 'train' / 'cat' / 'broken.jpg'}" in data.note
    alpha, gray = data.images[4], data.images[5]  # sorted: alpha.png, gray.png
    assert (gray == 90).all()
    assert (alpha[:, :4] == 255).all() and (alpha[:, 4:] == 0).all()
    assert abs(int(data.images[3].float().mean()) - 200) <= 3  # big.jpg, scaled down
    at_16 = load_split(f"folder:{messy_folder}", "train", data_root=tmp_path / "data", resolution=16)
    assert at_16.images.shape == (6, 3, 16, 16) and "resized 5 of 6 images" in at_16.note

    test = load_split(f"folder:{messy_folder}", "test", data_root=tmp_path / "data")
    assert test.labels.tolist() == [0, 1] and test.note is None


def test_folder_cache_follows_file_changes_and_survives_an_unwritable_root(messy_folder, tmp_path):
    spec, data_root = f"folder:{messy_folder}", tmp_path / "data"
    assert load_split(spec, "test", data_root=data_root).images[0, 0, 0, 0] == 10
    _save(messy_folder / "test" / "bird" / "t.png", _rgb(8, 8, 77))
    os.utime(messy_folder / "test" / "bird" / "t.png", ns=(1, 1))  # even with an old mtime, the size key differs
    assert load_split(spec, "test", data_root=data_root).images[0, 0, 0, 0] == 77
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("the cache cannot go here")
    assert load_split(spec, "test", data_root=not_a_folder).images[0, 0, 0, 0] == 77


def test_folder_without_train_test_gets_a_seeded_stratified_split(tmp_path):
    root = tmp_path / "flat"
    for name, value in (("b", 1), ("a", 2), ("c", 3)):
        for i in range(20):
            _save(root / name / f"{i:02d}.png", _rgb(4, 4, value * 50 + i))
    spec, data_root = f"folder:{root}", tmp_path / "data"
    train, test = load_split(spec, "train", data_root=data_root), load_split(spec, "test", data_root=data_root)
    assert train.classes == ["a", "b", "c"] and (len(train), len(test)) == (54, 6)
    assert torch.bincount(test.labels).tolist() == [2, 2, 2] and "10% of each class" in test.note
    assert not _row_hashes(train.images) & _row_hashes(test.images)
    assert len(_row_hashes(train.images) | _row_hashes(test.images)) == 60
    assert torch.equal(load_split(spec, "test", data_root=data_root, seed=0).images, test.images)
    other = load_split(spec, "test", data_root=data_root, seed=1)
    assert _row_hashes(other.images) != _row_hashes(test.images)


def test_folder_problems_name_the_folder(tmp_path):
    with pytest.raises(DataError, match=re.escape(f"Folder {tmp_path / 'missing'} does not exist")):
        load_split(f"folder:{tmp_path / 'missing'}", "train")
    empty = tmp_path / "empty"
    (empty / "train" / "cat").mkdir(parents=True)
    (empty / "test").mkdir()
    with pytest.raises(DataError, match="has no images in class subfolders; expected"):
        load_split(f"folder:{empty}", "train")
    only_train = tmp_path / "only-train"
    _save(only_train / "train" / "cat" / "x.png", _rgb(4, 4, 1))
    with pytest.raises(DataError, match=re.escape(str(only_train / "test"))):
        load_split(f"folder:{only_train}", "test")
    stray = tmp_path / "stray"
    _save(stray / "train" / "cat" / "x.png", _rgb(4, 4, 1))
    _save(stray / "test" / "dog" / "x.png", _rgb(4, 4, 1))
    with pytest.raises(DataError, match="dog"):
        load_split(f"folder:{stray}", "test")
    junk = tmp_path / "junk"
    (junk / "cat").mkdir(parents=True)
    (junk / "cat" / "a.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="could be read"):
        load_split(f"folder:{junk}", "train", data_root=tmp_path / "data")


# tiny-imagenet:
def test_tiny_imagenet_layout(tmp_path):
    root = tmp_path / "download" / "tiny-imagenet-200"
    wnids = ["n02", "n01", "n03"]
    for k, wnid in enumerate(wnids):
        for i in range(2):
            _save(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", _rgb(64, 64, 60 * k + 10 * i))
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("ignored")
    lines = []
    for i, wnid in enumerate(["n03", "n01", "n03", "n02"]):
        _save(root / "val" / "images" / f"val_{i}.JPEG", _rgb(64, 64, 30 * i))
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")

    spec = f"tiny-imagenet:{tmp_path / 'download'}"
    check_data_spec(spec)
    train = load_split(spec, "train", data_root=tmp_path / "data")
    assert train.classes == ["n01", "n02", "n03"] and train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert train.images.shape == (6, 3, 64, 64) and train.note is None
    test = load_split(spec, "test", data_root=tmp_path / "data", resolution=32)
    assert test.labels.tolist() == [2, 0, 2, 1] and test.images.shape == (4, 3, 32, 32)
    assert test.note == "resized from 64x64 to 32x32"
    assert abs(int(test.images[3].float().mean()) - 90) <= 3

    (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99\n")
    with pytest.raises(DataError, match="Line 1 of"):
        load_split(spec, "test", data_root=tmp_path / "data")


# augment_batch
def _pattern(batch: int, h: int = 8, w: int = 8) -> torch.Tensor:
    """Images with no zero pixel and no mirror symmetry, each different."""
    values = torch.arange(batch * 3 * h * w).reshape(batch, 3, h, w) % 250 + 1
    return values.to(torch.uint8)


def test_augment_without_flip_or_crop_is_exact():
    images = _pattern(5)
    out = augment_batch(images, flip=False)
    assert out.dtype == torch.float32 and out.device == images.device
    assert torch.equal(out, images.float() / 255)


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_augment_range_dtype_device(device):
    images = _pattern(16).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    out = augment_batch(images, flip=True, crop_padding=2, generator=generator)
    assert out.dtype == torch.float32 and out.device.type == device and out.shape == images.shape
    assert out.is_contiguous()
    # Each image is its uint8 self / 255, padded with zeros, cropped and maybe flipped: every value is one of
    # the image's own (or the zero padding), exactly.
    assert torch.equal(out * 255, (out * 255).round())
    for image, augmented in zip(images.float() / 255, out):
        assert set((augmented * 255).round().unique().tolist()) <= set((image * 255).unique().tolist()) | {0.0}


def test_augment_flip_mirrors_about_half_deterministically():
    images = _pattern(2000)
    out = augment_batch(images, flip=True, generator=torch.Generator().manual_seed(1))
    plain = torch.all((out == images.float() / 255).flatten(1), dim=1)
    mirrored = torch.all((out == images.flip(3).float() / 255).flatten(1), dim=1)
    assert torch.all(plain ^ mirrored)
    assert 0.45 < mirrored.float().mean() < 0.55
    again = augment_batch(images, flip=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


@pytest.mark.parametrize("flip", [False, True])
def test_augment_crop_shifts_content_and_pads_with_zeros(flip):
    pad, h, w = 3, 8, 8
    images = _pattern(300, h, w)
    out = augment_batch(images, flip=flip, crop_padding=pad, generator=torch.Generator().manual_seed(2))
    out = (out * 255).round().to(torch.uint8)
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    offsets = set()
    for b in range(len(images)):
        candidates = [padded[b]] + ([padded[b].flip(2)] if flip else [])
        found = [(mirror, top, left) for mirror, source in enumerate(candidates)
                 for top in range(2 * pad + 1) for left in range(2 * pad + 1)
                 if torch.equal(out[b], source[:, top:top + h, left:left + w])]
        assert found, f"image {b} is not a zero-padded shift of its input"
        offsets.add(found[0][1:])
    assert len(offsets) == (2 * pad + 1) ** 2  # every offset 0..2*pad occurs in both axes
    # A shifted image shows a zero border where the padding came in.
    assert (out == 0).any()


# BatchSampler
def test_batch_sampler_covers_each_epoch_and_resumes():
    sampler = BatchSampler(n=10, batch_size=4, seed=5)
    assert sampler.steps_per_epoch == 3
    for epoch in range(3):
        batches = [sampler.batch(epoch * 3 + i) for i in range(3)]
        assert [len(b) for b in batches] == [4, 4, 2]
        assert sorted(torch.cat(batches).tolist()) == list(range(10))
        assert all(b.dtype == torch.int64 for b in batches)
    assert sampler.epoch_of(5) == 1 and sampler.epoch_of(6) == 2
    assert not torch.equal(torch.cat([sampler.batch(i) for i in range(3)]),
                           torch.cat([sampler.batch(i) for i in range(3, 6)]))

    resumed = BatchSampler(n=10, batch_size=4, seed=5)
    assert torch.equal(resumed.batch(7), sampler.batch(7))  # a fresh sampler, jumping straight to step 7
    assert torch.equal(sampler.batch(1), BatchSampler(10, 4, seed=5).batch(1))
    assert not torch.equal(torch.cat([BatchSampler(10, 4, seed=6).batch(i) for i in range(3)]),
                           torch.cat([sampler.batch(i) for i in range(3)]))
    batch = sampler.batch(0)
    batch[:] = -1
    assert (sampler.batch(0) >= 0).all()


def test_a_stored_folder_spec_is_absolute_or_relative_to_the_workspace_data(tmp_path, monkeypatch):
    """Workers run in their run folder: a path typed relative to the shell's folder is stored absolute, one inside
    the workspace's data folder relative to it, so a moved workspace (the bundled CIFAR-10 example) finds it."""
    from ddae_core.engine.data import load_split, stored_spec

    data_root = tmp_path / "ws" / "data"
    inside = data_root / "pets"
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (inside / split / cls).mkdir(parents=True)
            Image.new("RGB", (8, 8), (200, 10, 10) if cls == "cat" else (10, 10, 200)).save(inside / split / cls / "a.png")
    monkeypatch.chdir(data_root)
    assert stored_spec("folder:pets", data_root) == "folder:pets"
    monkeypatch.chdir(tmp_path)
    assert stored_spec("folder:ws/data/pets", data_root) == "folder:pets"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert stored_spec("folder:elsewhere", data_root) == f"folder:{elsewhere}"
    assert stored_spec("builtin:shapes?n_train=10", data_root) == "builtin:shapes?n_train=10"
    # The workspace moved: its stored relative spec still reads the same images, from any working folder.
    moved = tmp_path / "moved"
    (tmp_path / "ws").rename(moved)
    monkeypatch.chdir(elsewhere)
    loaded = load_split("folder:pets", "train", data_root=moved / "data")
    assert loaded.classes == ["cat", "dog"] and len(loaded.labels) == 2
