"""The aggregate protocol: the mixture against a direct computation, weights summing to one, a reproducible gain,
its head in Classify, and its CLI choice."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ddae_core.cli import build_parser
from ddae_core.engine.evaluation.aggregate import AggregateHead, cell_names
from ddae_core.engine.evaluation.classify import Classifier, classify_files
from ddae_core.engine.evaluation.protocols import PROTOCOL_TAGS, PROTOCOLS, accuracy_text
from ddae_core.engine.image_files import load_image
from ddae_core.jobs.eval_specs import probe_spec
from ddae_core.jobs.specs import create_job, execute, train_spec

from .fixtures import micro_config

DATA = "builtin:shapes?n_train=96&n_test=48"


def test_the_mixture_equals_a_direct_computation_and_its_weights_sum_to_one():
    gen = torch.Generator().manual_seed(0)
    channels, classes = [3, 5, 4], 6
    head = AggregateHead(channels, classes, dim=7, generator=gen)
    with torch.no_grad():
        head.mix.copy_(torch.tensor([0.3, -1.0, 2.0]))
        head.mean.copy_(torch.randn(3, 5, generator=gen))
        head.std.copy_(torch.rand(3, 5, generator=gen) + 0.5)
    cells = [torch.randn(4, c, generator=gen) for c in channels]
    stacked = torch.zeros(3, 4, 5)
    for i, x in enumerate(cells):
        stacked[i, :, : x.shape[1]] = x
    # By hand: standardise each cell's own channels, project, LayerNorm without affine, mix, one linear head.
    weights = torch.exp(head.mix.detach()) / torch.exp(head.mix.detach()).sum()
    mixed = torch.zeros(4, 7)
    for i, (x, c) in enumerate(zip(cells, channels)):
        z = (x - head.mean[i, :c]) / head.std[i, :c]
        h = z @ head.projection.detach()[i, :c]
        h = (h - h.mean(1, keepdim=True)) / torch.sqrt(h.var(1, unbiased=False, keepdim=True) + 1e-5)
        mixed += weights[i] * h
    expected = mixed @ head.weight.detach() + head.bias.detach()
    assert torch.allclose(head(stacked).detach(), expected, atol=1e-5)
    assert float(head.weights().detach().sum()) == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(head.weights().detach(), weights)
    assert cell_names([1, 11], ["out_1", "out_2"]) == [(1, "out_1"), (1, "out_2"), (11, "out_1"), (11, "out_2")]


def test_aggregate_is_a_named_protocol_with_its_tag_and_a_cli_choice():
    assert accuracy_text(0.5, "aggregate") == "50.0% (std+agg)" and PROTOCOL_TAGS["attentive"] == "attn"
    assert "learned aggregation" in PROTOCOLS["aggregate"] and "not the official" in PROTOCOLS["aggregate"]
    assert build_parser().parse_args(["probe", "--run", "r", "--protocol", "aggregate"]).protocol == "aggregate"
    assert build_parser().parse_args(["classify", "x.png", "--run", "r", "--head", "aggregate"]).head == "aggregate"


def aggregate_grid(ws, parent, name):
    probe = create_job(ws, probe_spec(parent, timesteps="11,51", layers="out_1,out_3", protocol="aggregate", epochs=3,
                                      train_limit=64, test_limit=48, device="cpu", baselines=False, name=name))
    assert execute(probe, ws, handle_signals=False) == "done"
    return probe, json.loads((probe / "grid.json").read_text())


def test_an_aggregate_grid_reports_weights_summing_to_one_and_a_reproducible_gain(tmp_path):
    ws = tmp_path
    parent = create_job(ws, train_spec(config=micro_config(), data=DATA, steps=4, batch_size=16, device="cpu"))
    assert execute(parent, ws, handle_signals=False) == "done"
    probe, grid = aggregate_grid(ws, parent, "first")
    aggregate = grid["aggregate"]
    assert grid["protocol"] == "aggregate" and grid["standardized"] and grid["complete"]
    weights = [w for row in aggregate["weights"].values() for w in row.values()]
    assert len(weights) == 4 and sum(weights) == pytest.approx(1.0, abs=1e-5) and min(weights) > 0
    assert set(aggregate["weights"]) == {"11", "51"} and set(aggregate["weights"]["11"]) == {"out_1", "out_3"}
    # The gain is over the grid's own best cell, quoted with its test accuracy.
    assert aggregate["best_cell"] == grid["best"]
    assert aggregate["gain"] == pytest.approx(aggregate["accuracy"] - grid["best"]["accuracy"])
    assert aggregate["accuracy"] * 48 == pytest.approx(round(aggregate["accuracy"] * 48))   # a count of 48 images
    # The same seed gives the same mixture, accuracy and gain.
    _, again = aggregate_grid(ws, parent, "second")
    assert again["aggregate"] == aggregate
    # The k-NN cells came first (as in every fast grid), and the head is saved for Classify.
    events = [json.loads(line) for line in (probe / "events.jsonl").read_text().splitlines()]
    order = [e["type"] for e in events if e["type"] == "grid_cell" or e.get("path", "").endswith("knn_grid.json")]
    assert order[0] == "artifact" and order.count("grid_cell") == 4

    # Classify with the aggregate head: its probabilities equal the head over features computed here.
    path = tmp_path / "one.png"
    Image.fromarray((np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)).save(path)
    classifier = Classifier.from_run(parent, head="aggregate", device="cpu")
    assert classifier.kind == "aggregate" and classifier.source.parent == probe.parent
    [result] = classify_files(classifier, [path], seed=0)
    assert result.ok and len(result.top) == 5
    model = classifier.model
    noise = torch.randn((1, 3, model.resolution, model.resolution), generator=torch.Generator().manual_seed(0))
    pixels = load_image(path, model.resolution).image[None]
    net = classifier.heads["net"]
    cells = []
    for t in (11, 51):
        with torch.no_grad():
            feats = model.features(pixels, t, ["out_1", "out_3"], noise=noise)
        for layer in ("out_1", "out_3"):
            cell = torch.zeros(1, max(net.channels))
            cell[:, : feats[layer].shape[1]] = feats[layer]
            cells.append(cell)
    with torch.no_grad():
        probabilities = F.softmax(net(torch.stack(cells)), -1)[0]
    top = probabilities.sort(descending=True)
    assert result.top[0][1] == pytest.approx(float(top.values[0]), abs=1e-5)
    assert result.top[0][0] == classifier.classes[int(top.indices[0])]

    # The app's Classify offers it among the probe's heads, and its worker loads exactly this head.
    from app.classify.feed import find_classifiers
    from db import Store
    from tests.fixtures import ingest

    ingest(ws)
    with Store.open(ws) as store:
        choices = {c.run_id: c for c in find_classifiers(store)}
    offered = [h for h in choices[probe.name].heads if h.head == "aggregate"]
    assert len(offered) == 1 and "learned aggregation" in offered[0].label
    loaded = Classifier.from_run(offered[0].run_dir, head=offered[0].head, device="cpu")
    assert loaded.kind == "aggregate" and loaded.source == probe and "learned aggregation" in loaded.describe()
