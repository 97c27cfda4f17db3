"""Finding the labelled image files of `folder:PATH` and `tiny-imagenet:PATH` layouts (no decoding here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})
TEST_FRACTION = 0.1


@dataclass
class FileList:
    """The image files of one split, in a fixed order, with their labels."""

    root: Path                 # cache keys use paths relative to it
    files: list[Path]
    labels: np.ndarray         # int64, one per file
    classes: list[str]
    notes: list[str] = field(default_factory=list)

    def subset(self, index: np.ndarray) -> FileList:
        return FileList(self.root, [self.files[i] for i in index], self.labels[index], self.classes, self.notes)


def _subfolders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_under(path: Path) -> list[Path]:
    """Image files anywhere below `path`, sorted, hidden files and folders left out."""
    found = [p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(path).parts)]
    return sorted(found)


def _by_class(split_dir: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        class_dir = split_dir / name
        if class_dir.is_dir():
            found = _images_under(class_dir)
            files += found
            labels += [label] * len(found)
    return files, labels


def _expect(root: Path) -> str:
    return f"expected {root}/train/<class>/*.png and {root}/test/<class>/*.png, or {root}/<class>/*.png"


def list_folder(root: Path, split: str, seed: int) -> FileList:
    """An image-folder layout: root/{train,test}/<class>/..., or root/<class>/... split by `seed`."""
    if not root.is_dir():
        raise DataError(f"Folder {root} does not exist; check the path in folder:{root}.")
    train_dir, test_dir = root / "train", root / "test"
    notes: list[str] = []
    if train_dir.is_dir() or test_dir.is_dir():
        if not train_dir.is_dir():
            raise DataError(f"Folder {root} has test/ but no train/ folder; {_expect(root)}.")
        classes = [p.name for p in _subfolders(train_dir)]
        split_dir = train_dir if split == "train" else test_dir
        if not split_dir.is_dir():
            raise DataError(f"Folder {split_dir} does not exist; add {split} images as {split_dir}/<class>/*.png, "
                            f"or put the class folders directly in {root} to have them split automatically.")
        extra = sorted({p.name for p in _subfolders(split_dir)} - set(classes))
        if extra:
            raise DataError(f"Class folder {split_dir / extra[0]} has no counterpart in {train_dir}; "
                            "rename or remove it, so that both splits have the same classes.")
        files, labels = _by_class(split_dir, classes)
        searched = split_dir
    else:
        classes = [p.name for p in _subfolders(root)]
        files, labels = _by_class(root, classes)
        files, labels = _seeded_split(files, labels, split, seed)
        notes.append(f"no train/test folders in {root}, so {TEST_FRACTION:.0%} of each class was held out "
                     f"as the test split (seed {seed})")
        searched = root
    if not files:
        raise DataError(f"Folder {searched} has no images in class subfolders; {_expect(root)}.")
    return FileList(root, files, np.asarray(labels, dtype=np.int64), classes, notes)


def _seeded_split(files: list[Path], labels: list[int], split: str, seed: int) -> tuple[list[Path], list[int]]:
    """Hold out TEST_FRACTION of each class (at least one image of a class with two or more) as test."""
    label_array = np.asarray(labels, dtype=np.int64)
    keep = np.zeros(len(files), dtype=bool)
    for label in np.unique(label_array):
        where = np.flatnonzero(label_array == label)
        n_test = max(1, round(len(where) * TEST_FRACTION)) if len(where) >= 2 else 0
        # One stream per class, so adding images to one class does not reshuffle the others.
        rng = np.random.default_rng([seed, 0x5B117, int(label)])
        test = where[rng.permutation(len(where))[:n_test]]
        keep[test] = True
    if split == "train":
        keep = ~keep
    index = np.flatnonzero(keep)
    return [files[i] for i in index], [labels[i] for i in index]


def tiny_imagenet_root(path: Path) -> Path:
    """The folder holding train/ and val/: PATH itself or PATH/tiny-imagenet-200."""
    if not path.is_dir():
        raise DataError(f"Folder {path} does not exist; point tiny-imagenet:PATH at the unzipped Tiny-ImageNet-200.")
    for candidate in (path, path / "tiny-imagenet-200"):
        if (candidate / "train").is_dir():
            return candidate
    raise DataError(f"Folder {path} has no train/ folder (nor tiny-imagenet-200/train/); "
                    "point tiny-imagenet:PATH at the unzipped Tiny-ImageNet-200.")


def list_tiny_imagenet(path: Path, split: str) -> FileList:
    """train/<wnid>/images/*.JPEG, and for "test" the labelled val/images/*.JPEG."""
    root = tiny_imagenet_root(path)
    classes = [p.name for p in _subfolders(root / "train")]
    if split == "train":
        files, labels = _by_class(root / "train", classes)
        if not files:
            raise DataError(f"Folder {root / 'train'} has no images; expected {root}/train/<wnid>/images/*.JPEG.")
        return FileList(root, files, np.asarray(labels, dtype=np.int64), classes)

    annotations = root / "val" / "val_annotations.txt"
    try:
        lines = annotations.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        raise DataError(f"Tiny-ImageNet labels {annotations} are missing or unreadable; "
                        "restore them from the original zip.") from None
    index = {name: i for i, name in enumerate(classes)}
    files, labels = [], []
    for number, line in enumerate(lines, start=1):
        fields = line.split("\t")
        if not line.strip():
            continue
        if len(fields) < 2 or fields[1].strip() not in index:
            raise DataError(f"Line {number} of {annotations} does not name a file and a class of "
                            f"{root / 'train'}; restore the file from the original zip.")
        # A listed file that is missing is skipped and reported like an unreadable one.
        files.append(root / "val" / "images" / fields[0].strip())
        labels.append(index[fields[1].strip()])
    if not files:
        raise DataError(f"Tiny-ImageNet labels {annotations} list no images; restore the file from the original zip.")
    return FileList(root, files, np.asarray(labels, dtype=np.int64), classes)
