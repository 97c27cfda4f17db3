"""Classify images with a run's trained head, and show the denoised estimate from the same forward pass.

A head is a probe cell (a linear classifier on one layer at one timestep, from a probe run's heads.pt)
or a noisy classifier (noise-conditional MLP, from noisy_head.pt), or an aggregate probe's learned aggregation
(aggregate.py: one head over every probed (t, layer) cell, so one forward pass per probed noise level). One
forward pass at noise level t gives both the features the head reads and the network's clean-image estimate.

A probe head answers only where it was trained: a noise level outside the heads' timesteps is said so
(range_note). A file inside a folder named after a class carries that class beside the answer, and a
labelled folder's files add up to an accuracy (certainty.tally).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ...rundir import GRID, NOISY_HEAD, PROBE_HEADS, RUNS_DIR, SPEC, JobKind, find_run, read_spec, resolve_checkpoint
from ...rundir.figures import percent
from ..checkpoint import load_model, read_checkpoint
from ..device import resolve_device
from ..errors import UserError
from ..grids import save_png, to_uint8
from ..image_files import ImageFileError, load_image, printable
from ..model import DDAEModel, to_image_range
from .aggregate import load_head as load_aggregate_head
from .certainty import head_range_note, read_grid, tally, true_class
from .grid_axes import parse_timesteps
from .instant import stack
from .noisy import HEAD_FORMAT as NOISY_FORMAT, NoisyHead
from .probe import HEADS_FORMAT as PROBE_FORMAT


@dataclass
class Prediction:
    probabilities: torch.Tensor     # (B, K)
    noisy: torch.Tensor             # (B, 3, R, R) in [0, 1]: what the network saw, before its input scaling
    denoised: torch.Tensor          # (B, 3, R, R) in [0, 1]: its clean-image estimate
    timestep: int


@dataclass
class FileResult:
    path: Path
    top: list[tuple[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    truth: str | None = None            # the class its folder names, if any

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict:
        return {"file": str(self.path), "top5": [{"class": c, "probability": p} for c, p in self.top],
                "true_class": self.truth, "notes": self.notes, "error": self.error}

    def as_text(self) -> str:
        """One line, even for a file whose name holds a newline (escaped, so it cannot forge a result line)."""
        if self.error:
            return f"{printable(self.path.name)}: {printable(self.error)}"
        ranked = ", ".join(f"{c} {percent(p)}" for c, p in self.top)
        notes = f"  ({'; '.join(self.notes)})" if self.notes else ""
        truth = "" if self.truth is None else \
            f"  [true class {self.truth}: {'right' if self.top and self.top[0][0] == self.truth else 'wrong'}]"
        return f"{printable(self.path.name)}: {ranked}{truth}{notes}"


def _children(workspace: Path, run_id: str, kind: str) -> list[Path]:
    found = []
    for spec_path in sorted((workspace / RUNS_DIR).glob(f"*/{SPEC}"), reverse=True):
        if f"-{kind}-" not in spec_path.parent.name:
            continue
        spec = read_spec(spec_path.parent)
        if (spec.get("parent") or {}).get("run") == run_id:
            found.append(spec_path.parent)
    return found


def _grid_best(probe_dir: Path) -> float:
    try:
        return float(json.loads((probe_dir / GRID).read_text())["best"]["accuracy"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1.0


class Classifier:
    def __init__(self, model: DDAEModel, classes: list[str], kind: str, heads: dict, default_timestep: int,
                 layer: str, source: Path):
        self.model, self.classes, self.kind, self.heads = model, classes, kind, heads
        self.default_timestep, self.layer, self.source = default_timestep, layer, source

    @classmethod
    def from_run(cls, run_dir: Path, head: str = "probe", layer: str | None = None, timestep: int | None = None,
                 device: str = "auto") -> Classifier:
        """From a probe / noisy-classifier run, or from the train run they evaluated (its newest one)."""
        run_dir = Path(run_dir)
        workspace = run_dir.parent.parent
        spec = read_spec(run_dir)
        want = JobKind.NOISY_CLASSIFIER if head == "noisy" else JobKind.PROBE
        filename = NOISY_HEAD if head == "noisy" else PROBE_HEADS
        if spec.get("kind") != want:
            candidates = [d for d in _children(workspace, run_dir.name, want) if (d / filename).is_file()
                          and (head != "aggregate" or (read_grid(d) or {}).get("aggregate"))]
            if head != "noisy":
                # Its best grid, as the runs table and the Run view show (newest first among equals).
                candidates.sort(key=_grid_best, reverse=True)
            if not candidates:
                protocol = " --protocol aggregate" if head == "aggregate" else ""
                raise UserError(f"Run {run_dir.name} has no finished {want} run with a trained {head} head; "
                                f"run `ddae {want} --run {run_dir.name}{protocol}` first.")
            run_dir, spec = candidates[0], read_spec(candidates[0])
        if not (run_dir / filename).is_file():
            raise UserError(f"Run {run_dir.name} has no trained head ({filename}); it may not have finished.")
        saved = read_checkpoint(run_dir / filename)
        parent_dir = find_run(workspace, spec["parent"]["run"])
        step = saved.get("checkpoint_step") if head != "noisy" else None
        _, path = resolve_checkpoint(parent_dir,
                                     step if step is not None else spec["parent"].get("checkpoint", "latest"))
        model = load_model(path, device=resolve_device(device))
        if timestep is not None:        # 0 is a value too, and 5000 a traceback deep in the network
            timestep = parse_timesteps([timestep], model.config, "timestep")[0]
        if head == "aggregate":
            if saved.get("format") != PROBE_FORMAT or not saved.get("aggregate"):
                raise UserError(f"Probe run {run_dir.name} has no learned aggregation head; probe with "
                                f"--protocol aggregate to train one.")
            aggregate = saved["aggregate"]
            mixture = load_aggregate_head(aggregate).to(model.device)
            # The picture shown is at the noise level the mixture weighs most.
            weights = mixture.weights().detach().view(len(aggregate["timesteps"]), -1).sum(1)
            t_most = int(aggregate["timesteps"][int(weights.argmax())])
            return cls(model, saved["classes"], "aggregate",
                       {"net": mixture, "timesteps": aggregate["timesteps"], "layers": aggregate["layers"]},
                       t_most if timestep is None else timestep, "aggregate", run_dir)
        if head == "probe":
            if saved.get("format") != PROBE_FORMAT:
                raise UserError(f"{run_dir / filename} is not a probe-heads file.")
            # The cell the grid chose on its held-out images where it has them, else the best on test.
            held = (read_grid(run_dir) or {}).get("held_out_accuracy") or {}
            accuracy = {f"{t}/{k}": v for t, row in held.items() for k, v in row.items()} or saved["accuracy"]
            if layer is not None:
                cells = {k: v for k, v in accuracy.items() if k.split("/")[1] == layer}
                if not cells:
                    raise UserError(f"Probe run {run_dir.name} has no head for layer {layer}; "
                                    f"it probed {', '.join(saved['layers'])}.")
            else:
                cells = accuracy
            best = max(cells, key=cells.get)
            t_best, layer = int(best.split("/")[0]), best.split("/")[1]
            heads = {int(k.split("/")[0]): v for k, v in saved["heads"].items() if k.split("/")[1] == layer}
            return cls(model, saved["classes"], "probe", heads, t_best if timestep is None else timestep, layer,
                       run_dir)
        if saved.get("format") != NOISY_FORMAT:
            raise UserError(f"{run_dir / filename} is not a noisy-classifier head file.")
        net = NoisyHead(saved["dim"], len(saved["classes"]))
        net.load_state_dict(saved["state"])
        net.to(model.device).eval()
        default_t = model.config.feature_timestep if timestep is None else timestep
        return cls(model, saved["classes"], "noisy", {"net": net}, default_t, saved["layer"], run_dir)

    def describe(self) -> str:
        if self.kind == "aggregate":
            return (f"learned aggregation over {len(self.heads['layers'])} layers x timesteps "
                    f"{self.heads['timesteps']} (run {self.source.name})")
        if self.kind == "probe":
            return f"probe head on {self.layer} (run {self.source.name}), timesteps {sorted(self.heads)}"
        return f"noisy classifier on {self.layer} (run {self.source.name})"

    def range_note(self, t: int | None = None) -> str:
        """A warning when t (default: the classifier's own) is outside the probed heads' timesteps, else ''."""
        t = self.default_timestep if t is None else t
        return head_range_note(sorted(self.heads), t) if self.kind == "probe" else ""

    def head_timestep(self, t: int) -> int:
        """The probed timestep whose head applies at t (the nearest one; noisy heads take any t)."""
        return min(self.heads, key=lambda k: (abs(k - t), k)) if self.kind == "probe" else t

    @torch.no_grad()
    def predict(self, images: torch.Tensor, timestep: int | None = None, noise: torch.Tensor | None = None,
                ) -> Prediction:
        """images (B, 3, R, R) in [0, 1] -> class probabilities, noisy input and denoised estimate, one pass."""
        t = int(timestep if timestep is not None else self.default_timestep)
        if self.kind == "aggregate":
            return self._predict_aggregate(images, t, noise)
        acts, noisy, denoised = self.model.forward_pass(images, t, [self.layer], noise=noise, need_denoised=True)
        features = acts[self.layer].float().mean(dim=(2, 3))
        if self.kind == "probe":
            head = self.heads[self.head_timestep(t)]
            logits = F.linear(features, head["weight"].to(features.device), head["bias"].to(features.device))
        else:
            logits = self.heads["net"](features, torch.full((len(features),), t, device=features.device))
        # EDM's noisy image x + sigma*eps is shown as is; DDPM's x_t already has the image's scale.
        return Prediction(F.softmax(logits, -1).cpu(), to_image_range(noisy).cpu(), to_image_range(denoised).cpu(), t)


    def _predict_aggregate(self, images: torch.Tensor, t: int, noise: torch.Tensor | None) -> Prediction:
        """The mixture over every probed cell: one forward pass per probed timestep (same noise), the picture at t."""
        net, layers = self.heads["net"], list(self.heads["layers"])
        _, noisy, denoised = self.model.forward_pass(images, t, [], noise=noise, need_denoised=True)
        width = max(net.channels)
        cells = torch.cat([stack(self.model.features(images, int(tt), layers, noise=noise), layers, width)
                           for tt in self.heads["timesteps"]])
        logits = net(cells.to(self.model.device))
        return Prediction(F.softmax(logits, -1).cpu(), to_image_range(noisy).cpu(), to_image_range(denoised).cpu(), t)


def classify_files(classifier: Classifier, paths: list[str | Path], save_dir: str | Path | None = None,
                   seed: int = 0, timestep: int | None = None) -> list[FileResult]:
    """Top-5 classes per file; a bad file gets its one sentence and the others are still classified."""
    results = []
    res = classifier.model.resolution
    out = None if save_dir is None else _save_folder(save_dir)
    for path in map(Path, paths):
        result = FileResult(path)
        try:
            loaded = load_image(path, res)
        except ImageFileError as exc:
            result.error = str(exc)
            results.append(result)
            continue
        result.notes = loaded.notes
        result.truth = true_class(path, classifier.classes)
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn((1, *classifier.model.noise_shape), generator=gen)
        pred = classifier.predict(loaded.image[None], timestep, noise=noise)
        probs, order = pred.probabilities[0].sort(descending=True)
        result.top = [(classifier.classes[int(i)], float(p)) for p, i in zip(probs[:5], order[:5])]
        if out is not None:
            save_png(to_uint8(pred.noisy[0]), out / f"{path.stem}_noisy_t{pred.timestep}.png")
            save_png(to_uint8(pred.denoised[0]), out / f"{path.stem}_denoised_t{pred.timestep}.png")
        results.append(result)
    return results


def expand_images(paths: list[str | Path]) -> list[Path]:
    """Files as given; a folder gives its files and those of its subfolders (a labelled folder's class folders)."""
    out: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            out.append(path)
            continue
        inside = sorted(path.iterdir())
        found = [p for p in inside if p.is_file() and not p.name.startswith(".")]
        for sub in (p for p in inside if p.is_dir()):
            found += sorted(p for p in sub.iterdir() if p.is_file() and not p.name.startswith("."))
        out += found or [path]          # an empty folder is named for what it is, not skipped in silence
    return list(dict.fromkeys(out))


def accuracy_line(results: list[FileResult]) -> str:
    """'7 of 10 right (70.0%) ...' over the files whose folder names a class, or '' when none does."""
    right, n = tally((r.top[0][0] if r.top else None, r.truth) for r in results if r.ok)
    if not n:
        return ""
    return f"accuracy: {right} of {n} right ({percent(right / n)}) on the files whose folder names their class"


def _save_folder(save_dir: str | Path) -> Path:
    """The --save folder, created; one sentence, before any image is classified, when it cannot be."""
    out = Path(save_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"--save {out} is a file, not a folder; give a folder (it is created if missing).")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--save folder {out} cannot be created ({exc.strerror or exc}); choose another.") from None
    if not os.access(out, os.W_OK):
        raise UserError(f"--save folder {out} is not writable; choose another.")
    return out
