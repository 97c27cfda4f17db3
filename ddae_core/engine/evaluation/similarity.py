"""How alike two models' layers are: linear CKA and mutual k-NN alignment between every pair of taps.

Both models see the same images with the same noise (one seeded draw per batch, identical for both, see
features.extract_features), and each tap is globally average-pooled, as the probe grid pools it.

- Linear CKA (Kornblith et al. 2019): with column-centred X (n, p) and Y (n, q),
  CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F). It is computed through centred Gram matrices
  (<K_X, K_Y>_F over their norms, the same number), so that all layer pairs cost one n x n product each.
- Mutual k-NN (Huh et al. 2024, the Platonic representation paper; REPA reports it with k=10): each row's
  k nearest other rows by cosine similarity in X and in Y; the score is the mean fraction they share.

The result is similarity.json in the run folder (layers of A as rows, of B as columns) and, for the
index, a few metrics and the file as an artifact. "Where does B hold what A's best cell holds?": the row of
A's best probe cell (when A has a probe grid), and its argmax over B's layers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...rundir import ArtifactKind, RunStatus, atomic_write_text, find_run, read_json_dict, resolve_checkpoint
from ..checkpoint import load_model
from ..errors import UserError
from ..model import DDAEModel
from ..spec.run_spec import SimilaritySpec
from .common import open_context
from .features import Stopped, extract_features
from .sources import random_init_model

log = logging.getLogger(__name__)

SIMILARITY_FILE = "similarity.json"
FORMAT = "ddae-similarity"
RANDOM_INIT = "random init"      # what the second model is called when it is the network at initialisation


# The measures.
def centred_gram(x: torch.Tensor) -> torch.Tensor:
    """The centred Gram matrix H X X^T H of rows x (n, p), scaled to unit Frobenius norm, in float64."""
    x = x.double()
    x = x - x.mean(dim=0, keepdim=True)
    gram = x @ x.T
    norm = torch.linalg.matrix_norm(gram)
    return gram / norm if norm > 0 else gram


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two representations of the same n rows, x (n, p) and y (n, q): 0..1, 1 for x == y."""
    if len(x) != len(y):
        raise ValueError(f"CKA needs the same rows in both representations (got {len(x)} and {len(y)})")
    return float((centred_gram(x) * centred_gram(y)).sum())


def cka_matrix(feats_a: Mapping[str, torch.Tensor], feats_b: Mapping[str, torch.Tensor]) -> np.ndarray:
    """CKA of every layer of A (rows, in the mapping's order) with every layer of B (columns)."""
    grams_b = [centred_gram(y) for y in feats_b.values()]
    out = np.zeros((len(feats_a), len(grams_b)))
    for r, x in enumerate(feats_a.values()):
        gram_a = centred_gram(x)
        for c, gram_b in enumerate(grams_b):
            out[r, c] = float((gram_a * gram_b).sum())
    return out


def nearest_neighbours(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k nearest other rows of each row of x (n, p) by cosine similarity, (n, k) indices."""
    x = F.normalize(x.double(), dim=1)
    similarity = x @ x.T
    similarity.fill_diagonal_(-torch.inf)          # a row is not its own neighbour
    return similarity.topk(min(k, len(x) - 1), dim=1).indices


def _shared_fraction(knn_a: torch.Tensor, knn_b: torch.Tensor) -> float:
    n, k = knn_a.shape
    mask_a = torch.zeros(n, n, dtype=torch.bool)
    mask_b = torch.zeros(n, n, dtype=torch.bool)
    rows = torch.arange(n)[:, None]
    mask_a[rows, knn_a] = True
    mask_b[rows, knn_b] = True
    return float((mask_a & mask_b).sum(dim=1).double().div(k).mean())


def mutual_knn(x: torch.Tensor, y: torch.Tensor, k: int = 10) -> float:
    """Mutual k-NN alignment of two representations of the same rows: the mean fraction of shared neighbours."""
    if len(x) != len(y):
        raise ValueError(f"mutual k-NN needs the same rows in both representations (got {len(x)} and {len(y)})")
    if len(x) < 2:
        raise ValueError("mutual k-NN needs at least two rows")
    return _shared_fraction(nearest_neighbours(x, k), nearest_neighbours(y, k))


def mutual_knn_matrix(feats_a: Mapping[str, torch.Tensor], feats_b: Mapping[str, torch.Tensor],
                      k: int = 10) -> np.ndarray:
    """Mutual k-NN of every layer of A (rows) with every layer of B (columns)."""
    knn_b = [nearest_neighbours(y, k) for y in feats_b.values()]
    out = np.zeros((len(feats_a), len(knn_b)))
    for r, x in enumerate(feats_a.values()):
        knn_a = nearest_neighbours(x, k)
        for c, other in enumerate(knn_b):
            out[r, c] = _shared_fraction(knn_a, other)
    return out


def best_match(result: Mapping, layer: str, measure: str = "cka") -> tuple[str, float] | None:
    """(B's layer, value) that holds most of what A's `layer` holds: the argmax of its row; None if absent."""
    if layer not in result["layers_a"]:
        return None
    row = np.asarray(result[measure][result["layers_a"].index(layer)])
    c = int(np.argmax(row))
    return result["layers_b"][c], float(row[c])


def read_similarity(run_dir: Path) -> dict | None:
    """A similarity run's similarity.json, or None before it is written (or when it cannot be read)."""
    result = read_json_dict(Path(run_dir) / SIMILARITY_FILE)
    return result if result is not None and result.get("format") == FORMAT else None


# The job.
def _second_model(spec: SimilaritySpec, workspace: Path, model: DDAEModel, device: torch.device
                  ) -> tuple[DDAEModel, dict]:
    """Model B and how the result names it: another run's (or this run's other) checkpoint, or random init."""
    o = spec.options
    assert spec.parent is not None          # open_context refused a spec without one
    if o.random_init:
        return random_init_model(model), {"run": None, "checkpoint": None, "name": RANDOM_INIT}
    run_dir = find_run(workspace, o.other or spec.parent.run)
    step, path = resolve_checkpoint(run_dir, str(o.other_checkpoint or "latest"))
    other = load_model(path, device=device)
    if other.resolution != model.resolution:
        raise UserError(f"Run {run_dir.name} works at {other.resolution}x{other.resolution} pixels and run "
                        f"{spec.parent.run} at {model.resolution}x{model.resolution}; compare models of one size.")
    other.amp_dtype = model.amp_dtype
    return other, {"run": run_dir.name, "checkpoint": step, "name": f"{run_dir.name} @ {step}"}


def compare_models(model_a: DDAEModel, model_b: DDAEModel, images: torch.Tensor, timestep: int,
                   layers_a: Sequence[str], layers_b: Sequence[str], *, k: int = 10, batch_size: int = 128,
                   seed: int = 0, stop=None, on_progress=None) -> dict:
    """{"cka", "mutual_knn": (layers_a x layers_b) lists, "layers_a", "layers_b"}: the same images, the same noise."""
    feats = []
    for i, (model, layers) in enumerate(((model_a, layers_a), (model_b, layers_b))):
        def progress(done: int, n: int, i=i) -> None:
            if on_progress is not None:
                on_progress(i * n + done, 2 * n)
        feats.append(extract_features(model, images, timestep, layers, batch_size=batch_size, seed=seed,
                                      stop=stop, on_progress=progress))
    return {"layers_a": list(feats[0]), "layers_b": list(feats[1]),
            "cka": cka_matrix(feats[0], feats[1]).round(6).tolist(),
            "mutual_knn": mutual_knn_matrix(feats[0], feats[1], k=k).round(6).tolist()}


def similarity_run(spec: SimilaritySpec, run_dir: Path, reporter, workspace: Path) -> str:
    ctx = open_context(spec, run_dir, reporter, workspace)
    o = spec.options
    assert ctx.model is not None and spec.parent is not None     # open_context loaded the parent's
    model_b, second = _second_model(spec, workspace, ctx.model, ctx.device)
    ctx.start(checkpoint=ctx.checkpoint_step)
    images = ctx.data("test", o.images).images
    try:
        result = compare_models(ctx.model, model_b, images, int(o.timestep), o.layers, o.layers, k=o.k,
                                batch_size=o.batch_size, seed=ctx.seed, stop=ctx.stopped,
                                on_progress=lambda done, n: reporter.progress(done, n, "extract"))
    except Stopped:
        reporter.status(RunStatus.CANCELLED)
        return RunStatus.CANCELLED
    result = {"format": FORMAT, "timestep": int(o.timestep), "images": len(images), "k": o.k,
              "a": {"run": spec.parent.run, "checkpoint": ctx.checkpoint_step,
                    "name": f"{spec.parent.run} @ {ctx.checkpoint_step}"},
              "b": second, "best_cell": o.best_cell, **result}
    path = run_dir / SIMILARITY_FILE
    atomic_write_text(path, json.dumps(result, indent=1))
    reporter.artifact(ArtifactKind.FILE, path)
    cka = np.asarray(result["cka"])
    reporter.report("similarity/cka_mean", float(cka.mean()), 0)
    reporter.report("similarity/mutual_knn_mean", float(np.mean(result["mutual_knn"])), 0)
    if o.best_cell and (match := best_match(result, o.best_cell["layer"])) is not None:
        reporter.report("similarity/best_cell_cka", match[1], 0)
        log.info(f"A's best cell {o.best_cell['layer']} (t={o.best_cell['timestep']}) is held most by B's "
                 f"{match[0]} (CKA {match[1]:.3f})")
    for layer, row in zip(result["layers_a"], result["cka"]):
        log.info(f"{layer:<8} CKA " + " ".join(f"{v:.2f}" for v in row))
    reporter.status(RunStatus.DONE)
    return RunStatus.DONE
