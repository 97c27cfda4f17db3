"""A per-pixel linear probe over layers x noise on builtin:shapes: how well each cell's feature map segments.

builtin:shapes' generator knows every pixel's class (data.builtin.generate_masks: background, or one of the ten
shapes), so a tap's unpooled feature map can be probed pixel by pixel: a 1x1 convolution to 11 classes on the
feature map upsampled (bilinear) to the image, trained with per-pixel cross-entropy for a few epochs. A 1x1
convolution and bilinear upsampling are both linear and the upsampling's weights sum to one, so the head runs at
the tap's own resolution and its logits are upsampled: the same function, at a fraction of the memory.

Each epoch draws fresh noise at t (one seeded draw per batch); the test pass draws it once. A cell's number is
the mean intersection-over-union over the classes present in the test pixels (mIoU), from one confusion matrix;
cells arrive as grid_cell events (their `accuracy` holds the mIoU), so the heatmap fills in as for a probe grid.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...rundir import ArtifactKind, RunStatus, atomic_write_text, read_json_dict
from ..data.base import balanced_subset, resize_images
from ..data.builtin import SHAPES, generate_masks, generate_shapes
from ..data.specs import parse_spec
from ..errors import UserError
from ..model import DDAEModel
from ..spec.run_spec import SegmentationSpec
from .common import open_context
from .features import Stopped
from .report import best_cell, format_grid, timestep_labels

log = logging.getLogger(__name__)

CLASSES = ("background", *SHAPES)
SEGMENTATION_FILE = "segmentation.json"
HEADS_FILE = "segmentation_heads.pt"     # {"layers", "classes", "heads": {t: PixelHeads state}}
MIOU_KEY = "segmentation/miou"


# The measure.
def confusion_matrix(predicted: torch.Tensor, target: torch.Tensor, classes: int) -> torch.Tensor:
    """(classes, classes) int64 counts: rows the true class, columns the predicted one."""
    index = target.reshape(-1).long() * classes + predicted.reshape(-1).long()
    return torch.bincount(index, minlength=classes * classes).reshape(classes, classes)


def mean_iou(confusion: torch.Tensor) -> float:
    """Mean over the classes present (in truth or prediction) of TP / (TP + FP + FN)."""
    confusion = confusion.double()
    tp = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = union > 0
    return float((tp[present] / union[present]).mean()) if present.any() else 0.0


# The data.
def shapes_with_masks(spec: str, split: str, limit: int | None, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images (N, 3, R, R), uint8 masks (N, R, R)) of a builtin:shapes split at the model's size R, the
    images as data.load_split picks and resizes them (its balanced subset for `limit`, data seed 0)."""
    parsed = parse_spec(spec)
    if parsed.kind != "shapes":
        raise UserError(f"Dataset {spec} has no masks; segmentation probes need builtin:shapes.")
    n = parsed.params["n_train" if split == "train" else "n_test"]
    images, labels = generate_shapes(n, parsed.params["seed"], split, texture=bool(parsed.params["texture"]))
    masks = generate_masks(n, parsed.params["seed"], split)
    if limit is not None and limit < n:
        keep = torch.from_numpy(balanced_subset(labels.numpy(), limit, 0))
        images, masks = images[keep], masks[keep]
    if masks.shape[-1] != resolution:
        images = resize_images(images, (resolution, resolution))
        masks = F.interpolate(masks[:, None].float(), size=(resolution, resolution), mode="nearest")[:, 0].to(
            torch.uint8)
    return images, masks


# The heads.
class PixelHeads(nn.Module):
    """One 1x1 convolution to the classes per layer; logits upsampled (bilinear) to the mask's size."""

    def __init__(self, channels: dict[str, int], classes: int):
        super().__init__()
        self.layers = list(channels)
        self.heads = nn.ModuleList(nn.Conv2d(c, classes, 1) for c in channels.values())

    def forward(self, acts: dict[str, torch.Tensor], size: int) -> dict[str, torch.Tensor]:
        return {name: F.interpolate(head(acts[name].float()), size=(size, size), mode="bilinear",
                                    align_corners=False)
                for name, head in zip(self.layers, self.heads)}


def _batches(model: DDAEModel, images: torch.Tensor, timestep: int, layers: Sequence[str], batch_size: int,
             seed: int, order: torch.Tensor, stop):
    """(indices, unpooled taps) per batch, each with its own seeded noise draw."""
    for number, start in enumerate(range(0, len(order), batch_size)):
        if stop is not None and stop():
            raise Stopped
        index = order[start:start + batch_size]
        batch = images[index].to(model.device).float() / 255
        gen = torch.Generator(device=model.device).manual_seed((seed * 1_000_003 + number) & 0x7FFF_FFFF)
        noise = torch.randn(batch.shape, generator=gen, device=model.device)
        with torch.no_grad():
            acts, _, _ = model.forward_pass(batch, timestep, layers, noise=noise)
        yield index, acts


Split = tuple[torch.Tensor, torch.Tensor]       # uint8 images (N, 3, H, W), uint8 masks (N, R, R)


def segment_timestep(model: DDAEModel, train: Split, test: Split,
                     timestep: int, layers: Sequence[str], *, epochs: int, batch_size: int, lr: float, seed: int,
                     stop=None, on_progress=None) -> tuple[dict[str, dict[str, float]], PixelHeads]:
    """({layer: {"miou", "pixel_accuracy"}}, the heads) of per-pixel heads trained at one noise level."""
    layers = model.net.order_taps(layers)
    torch.manual_seed(seed)
    heads = PixelHeads({name: model.net.tap_channels[name] for name in layers}, len(CLASSES)).to(model.device)
    optimiser = torch.optim.Adam(heads.parameters(), lr=lr)
    (train_images, train_masks), (test_images, test_masks) = train, test
    size = train_masks.shape[-1]
    total, done = epochs * len(train_images) + len(test_images), 0
    for epoch in range(epochs):
        order = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(seed + epoch))
        for index, acts in _batches(model, train_images, timestep, layers, batch_size, seed + 7919 * (epoch + 1),
                                    order, stop):
            target = train_masks[index].to(model.device).long()
            logits = heads(acts, size)
            loss = torch.stack([F.cross_entropy(value, target) for value in logits.values()]).sum()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            done += len(index)
            if on_progress is not None:
                on_progress(done, total)
    confusion = {name: torch.zeros(len(CLASSES), len(CLASSES), dtype=torch.long) for name in layers}
    with torch.no_grad():
        for index, acts in _batches(model, test_images, timestep, layers, batch_size, seed, torch.arange(
                len(test_images)), stop):
            target = test_masks[index].long()
            for name, value in heads(acts, size).items():
                confusion[name] += confusion_matrix(value.argmax(dim=1).cpu(), target, len(CLASSES))
            done += len(index)
            if on_progress is not None:
                on_progress(done, total)
    return {name: {"miou": mean_iou(c), "pixel_accuracy": float(c.diagonal().sum() / c.sum().clamp(min=1))}
            for name, c in confusion.items()}, heads


# The job.
def segmentation_run(spec: SegmentationSpec, run_dir: Path, reporter, workspace: Path) -> str:
    ctx = open_context(spec, run_dir, reporter, workspace)
    o, model = spec.options, ctx.model
    assert model is not None        # open_context loaded the parent's
    data = spec.data or "builtin:shapes"
    train = shapes_with_masks(data, "train", o.train_limit, model.resolution)
    test = shapes_with_masks(data, "test", o.test_limit, model.resolution)
    ctx.start(checkpoint=ctx.checkpoint_step)
    timesteps, layers = list(o.timesteps), model.net.order_taps(o.layers)
    labels = timestep_labels(model, timesteps)
    reporter.grid(timesteps, layers, {str(t): labels[t] for t in timesteps})
    cells: dict[int, dict[str, float]] = {}
    pixel: dict[int, dict[str, float]] = {}
    saved: dict[int, dict[str, torch.Tensor]] = {}
    status = RunStatus.DONE
    try:
        for i, t in enumerate(timesteps):
            def progress(done: int, total: int, i=i, t=t) -> None:
                reporter.progress(i * total + done, len(timesteps) * total, f"t={t}")
            result, heads = segment_timestep(model, train, test, t, layers, epochs=o.epochs, batch_size=o.batch_size,
                                      lr=o.lr, seed=ctx.seed, stop=ctx.stopped, on_progress=progress)
            cells[t] = {name: r["miou"] for name, r in result.items()}
            pixel[t] = {name: r["pixel_accuracy"] for name, r in result.items()}
            saved[t] = {k: v.cpu() for k, v in heads.state_dict().items()}
            for name in layers:
                reporter.grid_cell(name, t, cells[t][name])
    except Stopped:
        status = RunStatus.CANCELLED
    best = best_cell(timesteps, layers, cells)
    result_file = {"format": "ddae-segmentation", "checkpoint_step": ctx.checkpoint_step, "timesteps": timesteps,
                   "layers": layers, "labels": {str(t): labels[t] for t in timesteps}, "classes": list(CLASSES),
                   "train_images": len(train[0]), "test_images": len(test[0]),
                   "miou": {str(t): row for t, row in cells.items()},
                   "pixel_accuracy": {str(t): row for t, row in pixel.items()},
                   "best": {"timestep": best[0], "layer": best[1], "miou": best[2]} if best else None}
    torch.save({"layers": layers, "classes": len(CLASSES), "heads": saved}, Path(run_dir) / HEADS_FILE)
    reporter.artifact(ArtifactKind.FILE, Path(run_dir) / HEADS_FILE)
    path = Path(run_dir) / SEGMENTATION_FILE
    atomic_write_text(path, json.dumps(result_file, indent=1))
    reporter.artifact(ArtifactKind.FILE, path)
    log.info("mIoU (%):\n" + format_grid(timesteps, layers, cells, labels))
    if best:
        reporter.report(MIOU_KEY, best[2], ctx.checkpoint_step or 0)
        log.info(f"best cell: {labels[best[0]]}, {best[1]}: mIoU {100 * best[2]:.2f}%")
    reporter.status(status)
    return status


def read_segmentation(run_dir: Path) -> dict | None:
    """A segmentation run's segmentation.json, or None before it is written (or when it cannot be read)."""
    return read_json_dict(Path(run_dir) / SEGMENTATION_FILE)

