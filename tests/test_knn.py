"""The k-NN protocol: the classifier against a brute-force reference, and a `--protocol knn` grid end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ddae_core.cli import build_parser
from ddae_core.engine.device import extraction_batch_size
from ddae_core.engine.evaluation.certainty import read_knn
from ddae_core.engine.evaluation.common import open_context
from ddae_core.engine.evaluation.knn import knn_accuracy, knn_grid_accuracy, knn_predict
from ddae_core.engine.evaluation.probe import _seed, knn_train_seed
from ddae_core.engine.evaluation.protocols import PROTOCOL_TAGS, PROTOCOLS, accuracy_text
from ddae_core.engine.evaluation.sources import NetworkSource
from ddae_core.engine.reporting import Reporter
from ddae_core.engine.spec.run_spec import load_spec
from ddae_core.jobs.eval_specs import probe_spec
from ddae_core.jobs.specs import create_job, execute, train_spec

from .fixtures import micro_config


def brute_force(train, train_labels, test, k, temperature, num_classes):
    """Plain Python: cosine similarity to every training row, the k largest, exp(s/T) votes, first best class."""
    def unit(row):
        norm = math.sqrt(sum(v * v for v in row))
        return [v / norm for v in row]
    train = [unit(r) for r in train.tolist()]
    predictions = []
    for row in test.tolist():
        q = unit(row)
        sims = sorted(((sum(a * b for a, b in zip(q, r)), i) for i, r in enumerate(train)), reverse=True)[:k]
        scores = [0.0] * num_classes
        for s, i in sims:
            scores[int(train_labels[i])] += math.exp(s / temperature)
        predictions.append(max(range(num_classes), key=lambda c: (scores[c], -c)))
    return predictions


@pytest.mark.parametrize("k, temperature, batch", [(20, 0.07, 1024), (5, 0.5, 7), (1, 0.07, 3), (200, 0.07, 16)])
def test_knn_predictions_equal_a_brute_force_reference(k, temperature, batch):
    gen = torch.Generator().manual_seed(k)
    train, test = torch.randn(120, 9, generator=gen), torch.randn(40, 9, generator=gen)
    labels = torch.randint(0, 4, (120,), generator=gen)
    predicted = knn_predict(train, labels, test, num_classes=4, k=k, temperature=temperature, batch_size=batch)
    assert predicted.tolist() == brute_force(train, labels, test, min(k, 120), temperature, 4)
    truth = torch.randint(0, 4, (40,), generator=gen)
    assert knn_accuracy(train, labels, test, truth, k=k, temperature=temperature, num_classes=4, batch_size=batch) \
        == pytest.approx((predicted == truth).float().mean().item())


def test_knn_separates_a_separable_set_and_ignores_feature_scale():
    gen = torch.Generator().manual_seed(0)
    centres = torch.eye(3) * 10
    labels, test_labels = torch.arange(3).repeat(30), torch.arange(3).repeat(10)
    train = centres[labels] + torch.randn(90, 3, generator=gen)
    test = centres[test_labels] + torch.randn(30, 3, generator=gen)
    assert knn_accuracy(train, labels, test, test_labels, num_classes=3) == 1.0
    assert knn_accuracy(train * 1000, labels, test * 0.001, test_labels, num_classes=3) == 1.0    # cosine
    assert knn_accuracy(train, labels, test, (test_labels + 1) % 3, num_classes=3) == 0.0


def test_knn_is_a_named_protocol_with_its_tag_and_a_cli_choice():
    assert PROTOCOL_TAGS["knn"] == "k-NN" and accuracy_text(0.5, "knn") == "50.0% (k-NN)"
    assert PROTOCOLS["knn"] == "k-NN (k=20, cosine, T=0.07; no training)"
    assert build_parser().parse_args(["probe", "--run", "some-run", "--protocol", "knn"]).protocol == "knn"


DATA = "builtin:shapes?n_train=96&n_test=48"


def test_knn_probe_grid_cells_equal_knn_on_the_same_features(tmp_path):
    ws = tmp_path
    spec = train_spec(config=micro_config(), data=DATA, steps=4, batch_size=16, device="cpu")
    parent = create_job(ws, spec)
    assert execute(parent, ws, handle_signals=False) == "done"
    probe = create_job(ws, probe_spec(parent, timesteps="11,51", layers="out_1,out_3", protocol="knn",
                                      train_limit=64, test_limit=48, device="cpu"))
    assert execute(probe, ws, handle_signals=False) == "done"
    grid = json.loads((probe / "grid.json").read_text())
    assert grid["protocol"] == "knn" and grid["protocol_label"].startswith("k-NN") and grid["complete"]
    assert not (probe / "heads.pt").exists()
    lines = [json.loads(line) for line in (probe / "events.jsonl").read_text().splitlines()]
    cells = {(e["timestep"], e["layer"]): e["accuracy"] for e in lines if e["type"] == "grid_cell"}
    assert set(cells) == {(11, "out_1"), (11, "out_3"), (51, "out_1"), (51, "out_3")}
    base = grid["baselines"]
    assert 0 <= base["pixels"]["accuracy"] <= 1 and 0 <= base["random_init"]["accuracy"] <= 1

    # The same features, extracted again through the model's sources at the grid's seeds, through knn_accuracy.
    ctx = open_context(load_spec(probe), probe, Reporter(probe, enabled=False), ws)
    train, test = ctx.data("train", 64), ctx.data("test", 48)
    source, batch = NetworkSource(ctx.model, ["out_1", "out_3"], "auto"), extraction_batch_size(ctx.device)
    for t in (11, 51):
        reference = source.extract(train.images, t, batch_size=batch, seed=knn_train_seed(ctx.seed, t))
        queries = source.extract(test.images, t, batch_size=batch, seed=_seed(ctx.seed, 17, t))
        for layer in ("out_1", "out_3"):
            expected = knn_accuracy(reference[layer], train.labels, queries[layer], test.labels, num_classes=10)
            assert cells[(t, layer)] == pytest.approx(expected, abs=1e-5)
            assert grid["accuracy"][str(t)][layer] == expected

    # With held-out training images the best cell is chosen on them by k-NN too, and quoted on test.
    chosen = create_job(ws, probe_spec(parent, timesteps="11,51", layers="out_1,out_3", protocol="knn",
                                       train_limit=64, holdout=24, test_limit=48, device="cpu", baselines=False))
    assert execute(chosen, ws, handle_signals=False) == "done"
    grid = json.loads((chosen / "grid.json").read_text())
    assert grid["train_images"] == 40 and grid["selection"]["on"] == "held-out"
    held = {(int(t), layer): acc for t, row in grid["held_out_accuracy"].items() for layer, acc in row.items()}
    (t, layer), _ = max(held.items(), key=lambda kv: (kv[1], -kv[0][0]))
    assert (grid["best"]["timestep"], grid["best"]["layer"]) == (t, layer)


def test_a_whole_row_at_once_equals_knn_cell_by_cell():
    gen = torch.Generator().manual_seed(5)
    widths, labels = (4, 9, 6), torch.randint(0, 5, (70,), generator=gen)
    train, test = [torch.randn(70, c, generator=gen) for c in widths], [torch.randn(33, c, generator=gen) for c in widths]
    truth = torch.randint(0, 5, (33,), generator=gen)
    padded_train, padded_test = torch.zeros(3, 70, 9), torch.zeros(3, 33, 9)
    for i, c in enumerate(widths):
        padded_train[i, :, :c], padded_test[i, :, :c] = train[i], test[i]
    row = knn_grid_accuracy(padded_train, labels, padded_test, truth, num_classes=5, batch_size=8)
    assert row == [pytest.approx(knn_accuracy(a, labels, b, truth, num_classes=5)) for a, b in zip(train, test)]


def test_a_fast_grid_fills_every_cell_by_knn_before_any_head_and_keeps_both(tmp_path):
    ws = tmp_path
    parent = create_job(ws, train_spec(config=micro_config(), data=DATA, steps=4, batch_size=16, device="cpu"))
    assert execute(parent, ws, handle_signals=False) == "done"
    probe = create_job(ws, probe_spec(parent, timesteps="11,51", layers="out_1,out_3", protocol="fast", epochs=2,
                                      train_limit=64, test_limit=48, device="cpu", baselines=False))
    assert execute(probe, ws, handle_signals=False) == "done"
    events = [json.loads(line) for line in (probe / "events.jsonl").read_text().splitlines()]
    kinds = [e["type"] for e in events if e["type"] == "grid_cell" or e.get("path", "").endswith("knn_grid.json")]
    assert kinds == ["artifact"] + ["grid_cell"] * 4          # the k-NN heatmap first, whole, then the heads' cells
    knn, grid = read_knn(probe), json.loads((probe / "grid.json").read_text())
    assert grid["knn"] == knn and knn["label"] == "k-NN" and set(knn["accuracy"]) == {"11", "51"}
    # The same cached training features (the first augmented view) and test pass, re-extracted, through knn_accuracy.
    ctx = open_context(load_spec(probe), probe, Reporter(probe, enabled=False), ws)
    train, test = ctx.data("train", 64), ctx.data("test", 48)
    source, batch = NetworkSource(ctx.model, ["out_1", "out_3"], "auto"), extraction_batch_size(ctx.device)
    for t in (11, 51):
        reference = source.extract(train.images, t, batch_size=batch, flip=True, crop_padding=4,
                                   seed=_seed(ctx.seed, 41, t, 0))
        queries = source.extract(test.images, t, batch_size=batch, seed=_seed(ctx.seed, 17, t))
        for layer in ("out_1", "out_3"):
            expected = knn_accuracy(reference[layer], train.labels, queries[layer], test.labels, num_classes=10)
            assert knn["accuracy"][str(t)][layer] == pytest.approx(expected, abs=1e-6)
    best = max(((acc, -int(t), layer) for t, row in knn["accuracy"].items() for layer, acc in row.items()))
    assert knn["best"] == {"timestep": -best[1], "layer": best[2], "accuracy": best[0]}
    # A cache spilled to disk (no memory budget), read a layer at a time, gives the same k-NN cells (its heads, trained
    # a layer group at a time, start from other draws).
    spilled = create_job(ws, probe_spec(parent, timesteps="11,51", layers="out_1,out_3", protocol="fast", epochs=2,
                                        train_limit=64, test_limit=48, device="cpu", baselines=False,
                                        cache_memory_mb=0))
    assert execute(spilled, ws, handle_signals=False) == "done"
    again = json.loads((spilled / "grid.json").read_text())
    assert again["knn"]["accuracy"] == knn["accuracy"]
