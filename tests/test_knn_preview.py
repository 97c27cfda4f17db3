"""The k-NN preview (preview.py): a whole k-NN heatmap from a subset first, then the full one, then the heads;
its cells against a brute-force k-NN over exactly its subsets, no image extracted twice, and the linear cells those
of a grid without a preview."""

from __future__ import annotations

import json

import pytest
import torch

from ddae_core.engine.device import extraction_batch_size
from ddae_core.engine.errors import ConfigError
from ddae_core.engine.evaluation.common import open_context
from ddae_core.engine.evaluation.knn import K
from ddae_core.engine.evaluation.preview import MIN_PER_CLASS, batch_rows, preview_words, spread, training_batches
from ddae_core.engine.evaluation.probe import _seed
from ddae_core.engine.evaluation.sources import NetworkSource
from ddae_core.engine.model import DDAEModel
from ddae_core.engine.reporting import Reporter
from ddae_core.engine.spec.run_spec import load_spec
from ddae_core.jobs.eval_specs import probe_spec
from ddae_core.jobs.specs import create_job, execute, train_spec

from .fixtures import micro_config
from .test_knn import brute_force

DATA = "builtin:shapes?n_train=1024&n_test=256"
LAYERS, TIMESTEPS = ["out_1", "out_3"], (11, 51)


def test_the_preview_spreads_whole_batches_and_gives_every_class_2k_images():
    assert spread(10, 3) == [0, 3, 6] and spread(4, 9) == [0, 1, 2, 3] and spread(5, 0) == []
    assert batch_rows([2, 0], 4, 10).tolist() == [0, 1, 2, 3, 8, 9]
    labels = torch.arange(10).repeat_interleave(200)        # sorted by class: a batch holds one or two classes
    chosen = training_batches(labels, 32, 10, 10)
    assert chosen is not None
    counts = torch.bincount(labels[batch_rows(chosen, 32, 2000)], minlength=10)
    assert (counts >= MIN_PER_CLASS).all() and MIN_PER_CLASS == 2 * K
    assert len(batch_rows(chosen, 32, 2000)) <= 1000
    shuffled = training_batches(torch.randperm(3000, generator=torch.Generator().manual_seed(0)) % 10, 32, 10, 10)
    assert shuffled is not None and len(batch_rows(shuffled, 32, 3000)) < 3000 * 0.2
    # Over half of the split to give every class 2k images: no preview, it would not come sooner.
    assert training_batches(torch.arange(10).repeat(60), 32, 10, 10) is None


def test_a_bad_preview_percentage_is_refused_in_one_sentence(tmp_path):
    parent = create_job(tmp_path, train_spec(config=micro_config(), data=DATA, steps=1, batch_size=16, device="cpu"))
    with pytest.raises(ConfigError, match="knn_preview"):
        probe_spec(parent, knn_preview=80)
    with pytest.raises(ConfigError, match="knn_preview"):
        probe_spec(parent, knn_preview=-1)


@pytest.fixture(scope="module")
def grids(tmp_path_factory):
    """One trained micro run; a fast grid with the default preview and one without, counting images forward."""
    ws = tmp_path_factory.mktemp("preview")
    parent = create_job(ws, train_spec(config=micro_config(), data=DATA, steps=4, batch_size=16, device="cpu"))
    assert execute(parent, ws, handle_signals=False) == "done"
    original, counted = DDAEModel.features, {}
    out = {}
    for name, preview in (("preview", None), ("none", 0)):
        images: list[int] = []

        def features(self, x, *args, _images=images, **kw):
            _images.append(len(x))
            return original(self, x, *args, **kw)
        DDAEModel.features = features
        try:
            extra = {} if preview is None else {"knn_preview": preview}
            run = create_job(ws, probe_spec(parent, timesteps="11,51", layers="out_1,out_3", protocol="fast",
                                            epochs=1, views=2, train_limit=1024, test_limit=256, device="cpu",
                                            baselines=False, **extra))
            assert execute(run, ws, handle_signals=False) == "done"
        finally:
            DDAEModel.features = original
        out[name], counted[name] = run, sum(images)
    return ws, out, counted


def test_preview_then_full_knn_then_heads_and_no_image_twice(grids):
    ws, runs, counted = grids
    probe = runs["preview"]
    events = [json.loads(line) for line in (probe / "events.jsonl").read_text().splitlines()]
    order = [e["type"] for e in events if e["type"] == "grid_cell" or e.get("path", "").endswith("knn_grid.json")]
    assert order == ["artifact", "artifact"] + ["grid_cell"] * 4     # preview, full k-NN, then the heads' cells
    # Every image forward once per view and noise level (2 views of 1,024 training, 256 test), as without a preview.
    assert counted["preview"] == counted["none"] == len(TIMESTEPS) * (2 * 1024 + 256)
    grid = json.loads((probe / "grid.json").read_text())
    knn = grid["knn"]
    assert "preview" not in knn and knn["preview_grid"]["preview"]["train_images"] < 1024
    assert preview_words(knn) == "" and preview_words(knn["preview_grid"]).startswith("k-NN preview (")


def test_preview_cells_equal_a_brute_force_knn_over_exactly_its_subsets(grids):
    ws, runs, _ = grids
    probe = runs["preview"]
    preview = json.loads((probe / "grid.json").read_text())["knn"]["preview_grid"]
    subset = preview["preview"]
    ctx = open_context(load_spec(probe), probe, Reporter(probe, enabled=False), ws)
    train, test = ctx.data("train", 1024), ctx.data("test", 256)
    batch = extraction_batch_size(ctx.device)
    assert subset["batch_size"] == batch
    train_rows = batch_rows(subset["train_batches"], batch, len(train))
    test_rows = batch_rows(subset["test_batches"], batch, len(test))
    assert (subset["train_images"], subset["test_images"]) == (len(train_rows), len(test_rows))
    assert (torch.bincount(train.labels[train_rows], minlength=10) >= min(MIN_PER_CLASS, 1024 // 10)).all()
    # The whole passes at the grid's seeds, then exactly the preview's rows.
    source = NetworkSource(ctx.model, LAYERS, "auto")
    for t in TIMESTEPS:
        reference = source.extract(train.images, t, batch_size=batch, flip=True, crop_padding=4,
                                   seed=_seed(ctx.seed, 41, t, 0))
        queries = source.extract(test.images, t, batch_size=batch, seed=_seed(ctx.seed, 17, t))
        for layer in LAYERS:
            predicted = brute_force(reference[layer][train_rows], train.labels[train_rows],
                                    queries[layer][test_rows], K, 0.07, 10)
            truth = test.labels[test_rows].tolist()
            expected = sum(p == y for p, y in zip(predicted, truth)) / len(truth)
            assert preview["accuracy"][str(t)][layer] == pytest.approx(expected, abs=1e-6)
            lo, hi = preview["interval"][str(t)][layer]
            assert lo < expected < hi


def test_the_linear_cells_and_full_knn_are_those_of_a_grid_without_a_preview(grids):
    _, runs, _ = grids
    with_preview, without = (json.loads((runs[n] / "grid.json").read_text()) for n in ("preview", "none"))
    assert with_preview["accuracy"] == without["accuracy"]
    assert with_preview["knn"]["accuracy"] == without["knn"]["accuracy"] and without["knn"]["preview_grid"] is None
    heads = [torch.load(runs[n] / "heads.pt", weights_only=False)["heads"] for n in ("preview", "none")]
    for key, state in heads[0].items():
        for name, value in state.items():
            assert torch.equal(value, heads[1][key][name]), (key, name)
