"""The Classify view's inference thread: loads a run's classifier once, reads images, runs forward passes.

Requests describe the whole wanted state (head, files, selected file, noise level); only the newest
pending one is kept, so a fast-moving slider never queues work, and a result carries its request's
id so the view can drop any that is no longer the latest. The worker never touches a widget: it
emits plain numpy arrays and strings.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..background import Latest, Worker, running_workers
from .feed import HeadChoice

THUMB_BATCH = 32            # images per forward pass when classifying the thumbnails
MAX_CLASSIFIERS = 2         # models kept loaded (each is a full network)
IDLE_EXIT_S = 20.0          # an idle thread ends after this; caches stay with the object


def running_threads() -> list[Worker]:
    """Inference threads still running (tests assert none is left behind)."""
    return [w for w in running_workers() if isinstance(w, InferenceThread)]


@dataclass(frozen=True)
class Request:
    id: int
    head: HeadChoice
    paths: tuple[Path, ...]
    selected: int                       # index into paths, -1 for none
    timestep: int | None                # None: the head's own timestep
    thumbnails: bool                    # also classify every file at the head's timestep


@dataclass(frozen=True)
class ModelInfo:
    framework: str                      # "ddpm" | "edm"
    min_timestep: int
    max_timestep: int
    sigmas: tuple[float, ...]           # sigma (EDM) or its DDPM equivalent, indexed by timestep
    classes: tuple[str, ...]
    default_timestep: int
    head_timesteps: tuple[int, ...]     # probe heads exist at these; noisy heads take any
    resolution: int
    description: str


@dataclass
class FileOutcome:
    path: Path
    image: np.ndarray | None = None     # (R, R, 3) uint8: the model's input after resizing
    notes: tuple[str, ...] = ()
    error: str | None = None
    top1: tuple[str, float] | None = None
    tensor: object = field(default=None, repr=False)    # (3, R, R) float in [0, 1], worker side only


@dataclass
class Result:
    id: int
    error: str | None = None
    info: ModelInfo | None = None
    files: list[FileOutcome] = field(default_factory=list)
    selected: int = -1
    timestep: int | None = None
    head_timestep: int | None = None
    noisy: np.ndarray | None = None     # (R, R, 3) uint8
    denoised: np.ndarray | None = None
    top5: list[tuple[str, float]] = field(default_factory=list)


def _to_uint8(images) -> np.ndarray:
    """(B, 3, R, R) float tensor in [0, 1] -> (B, R, R, 3) uint8."""
    return (images.clamp(0, 1).mul(255).round().to("cpu").numpy().astype(np.uint8)).transpose(0, 2, 3, 1)


class InferenceThread(Worker):
    """Runs the newest submitted Request; emits resultReady(Result)."""

    def __init__(self, device: str = "auto", parent=None):
        super().__init__("ddae-classify", parent=parent)
        self.device = device
        self._requests: Latest[Request] = Latest()
        self._classifiers: dict[tuple, object] = {}
        self._images: dict[tuple, FileOutcome] = {}
        self._top1: dict[tuple, tuple[str, float]] = {}

    @property
    def resultReady(self):
        """Each Result, on the GUI thread (the Worker's `delivered`)."""
        return self.delivered

    def submit(self, request: Request) -> None:
        """Replace any pending request with this one (the older one is never run)."""
        if self._requests.put(request):
            self.wait()             # a loop that just went idle may still be returning
            self.start()

    def stop(self, timeout_ms: int = 30000) -> bool:
        """Ask the loop to end after the current forward pass, and wait for it."""
        self.request_stop()
        self._requests.close()
        return self.wait(timeout_ms)

    def _newer_pending(self, request: Request) -> bool:
        waiting = self._requests.waiting()
        return self.stopping or (waiting is not None and waiting.id > request.id)

    def work(self) -> None:
        # Idle for IDLE_EXIT_S: take() gives None and the thread ends (the next submit starts it
        # again), so no thread outlives its use even if the view is dropped without shutdown().
        try:
            while (request := self._requests.take(IDLE_EXIT_S)) is not None:
                result = self._process(request)
                if result is not None:
                    self.deliver(result)
        except BaseException:
            self._requests.abandoned()
            raise

    # Work.
    def _classifier(self, head: HeadChoice):
        from ddae_core.engine.evaluation.classify import Classifier

        clf = self._classifiers.get(head.key)
        if clf is None:
            clf = Classifier.from_run(head.run_dir, head=head.head, layer=head.layer, device=self.device)
            while len(self._classifiers) >= MAX_CLASSIFIERS:
                self._classifiers.pop(next(iter(self._classifiers)))
            self._classifiers[head.key] = clf
        return clf

    @staticmethod
    def _info(clf) -> ModelInfo:
        fw = clf.model.framework
        lo, hi = int(fw.min_timestep), int(fw.max_timestep)
        if fw.name in ("ddpm", "dit"):       # DiT's t = 0 is already noised (0-indexed)
            hi = min(hi, 1000)
            sigmas = tuple(fw.sigma_equivalent(t) if t > 0 or fw.name == "dit" else 0.0 for t in range(hi + 1))
        else:
            sigmas = (0.0,) + tuple(fw.sigma(t) for t in range(1, hi + 1))
        heads = tuple(sorted(clf.heads)) if clf.kind == "probe" else ()
        return ModelInfo(fw.name, lo, hi, sigmas, tuple(clf.classes), int(clf.default_timestep), heads,
                         int(clf.model.resolution), clf.describe())

    def _load(self, path: Path, resolution: int) -> FileOutcome:
        from ddae_core.engine.image_files import ImageFileError, load_image

        try:
            key = (path, resolution, path.stat().st_mtime_ns)
        except OSError:
            key = (path, resolution, None)
        outcome = self._images.get(key)
        if outcome is None:
            try:
                loaded = load_image(path, resolution)
                outcome = FileOutcome(path, _to_uint8(loaded.image[None])[0], tuple(loaded.notes),
                                      tensor=loaded.image)
            except ImageFileError as exc:
                outcome = FileOutcome(path, error=str(exc))
            self._images[key] = outcome
        return outcome

    @staticmethod
    def _noise(path: Path, shape: tuple[int, ...]):
        """The same noise for a file at every level, so the slider changes only how much of it is added
        (`shape`: the model's noise_shape, a DiT's latent one)."""
        import torch

        generator = torch.Generator().manual_seed(zlib.crc32(str(path).encode()))
        return torch.randn((1, *shape), generator=generator)

    def _process(self, request: Request) -> Result | None:
        from ddae_core.engine.errors import UserError

        result = Result(request.id)
        try:
            clf = self._classifier(request.head)
        except UserError as exc:
            result.error = str(exc)
            return result
        except Exception as exc:  # noqa: BLE001 - a damaged head or checkpoint: one sentence, not a crash
            result.error = (f"Could not load the classifier of run {request.head.run_id} "
                            f"({exc.__class__.__name__}: {str(exc)[:200]}); the run's files may be damaged.")
            return result
        info = result.info = self._info(clf)
        loaded = [self._load(p, info.resolution) for p in request.paths]
        if self._newer_pending(request):
            return None
        if request.thumbnails and not self._classify_thumbnails(clf, request, info, loaded):
            return None
        # Fresh records for the view: the cached ones stay the worker's alone.
        result.files = [replace(o, top1=self._top1.get((request.head.key, o.path, info.default_timestep)))
                        for o in loaded]
        if 0 <= request.selected < len(result.files) and result.files[request.selected].error is None:
            chosen = result.files[request.selected]
            t = info.default_timestep if request.timestep is None else request.timestep
            t = max(info.min_timestep, min(info.max_timestep, int(t)))
            prediction = clf.predict(chosen.tensor[None], t, noise=self._noise(chosen.path, clf.model.noise_shape))
            probs, order = prediction.probabilities[0].sort(descending=True)
            result.top5 = [(info.classes[int(i)], float(p)) for p, i in zip(probs[:5], order[:5])]
            result.noisy = _to_uint8(prediction.noisy)[0]
            result.denoised = _to_uint8(prediction.denoised)[0]
            result.timestep, result.head_timestep = t, clf.head_timestep(t)
        result.selected = request.selected
        return result

    def _classify_thumbnails(self, clf, request: Request, info: ModelInfo, files: list[FileOutcome]) -> bool:
        """Top-1 of every readable file at the head's timestep (cached); False when a newer request came."""
        import torch

        t = info.default_timestep
        todo = [o for o in files if o.error is None and (request.head.key, o.path, t) not in self._top1]
        for start in range(0, len(todo), THUMB_BATCH):
            chunk = todo[start:start + THUMB_BATCH]
            images = torch.stack([o.tensor for o in chunk])
            noise = torch.cat([self._noise(o.path, clf.model.noise_shape) for o in chunk])
            probabilities = clf.predict(images, t, noise=noise).probabilities
            best_p, best_i = probabilities.max(dim=1)
            for outcome, p, i in zip(chunk, best_p.tolist(), best_i.tolist()):
                self._top1[(request.head.key, outcome.path, t)] = (info.classes[i], p)
            if self._newer_pending(request):
                return False
        return True
