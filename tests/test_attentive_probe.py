"""The attentive protocol: the head against hand-written attention and against a linear probe where the two must
agree, the token maps against plain block means, and an attentive grid end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from ddae_core.cli import build_parser
from ddae_core.engine.evaluation.attentive import AttentiveHead
from ddae_core.engine.evaluation.features import token_map
from ddae_core.engine.evaluation.protocols import PROTOCOLS, SHORT_LABELS
from ddae_core.jobs.eval_specs import probe_spec
from ddae_core.jobs.specs import create_job, execute, train_spec

from .fixtures import micro_config


def a_head(channels=5, classes=4, queries=3, seed=0) -> AttentiveHead:
    gen = torch.Generator().manual_seed(seed)
    head = AttentiveHead(channels, classes, queries=queries, generator=gen)
    with torch.no_grad():
        head.query.copy_(torch.randn(queries, channels, generator=gen))
        head.mean.copy_(torch.randn(channels, generator=gen))
        head.std.copy_(torch.rand(channels, generator=gen) + 0.5)
    return head


def test_the_head_equals_hand_written_attention():
    head = a_head()
    tokens = torch.randn(2, 6, 5, generator=torch.Generator().manual_seed(1))
    q, mean, std = head.query.detach().tolist(), head.mean.tolist(), head.std.tolist()
    expected = []
    for image in tokens.tolist():
        z = [[(v - m) / s for v, m, s in zip(token, mean, std)] for token in image]
        pooled = []
        for query in q:
            scores = [sum(a * b for a, b in zip(token, query)) / math.sqrt(5) for token in z]
            top = max(scores)
            weights = [math.exp(s - top) for s in scores]
            weights = [w / sum(weights) for w in weights]
            pooled += [sum(w * token[c] for w, token in zip(weights, z)) for c in range(5)]
        expected.append([sum(w * p for w, p in zip(row, pooled)) + b
                         for row, b in zip(head.weight.detach().tolist(), head.bias.detach().tolist())])
    assert torch.allclose(head(tokens).detach(), torch.tensor(expected), atol=1e-5)
    assert torch.allclose(head.attention(tokens).sum(1), torch.ones(2, 3))


def test_a_zero_query_is_the_mean_pool_and_one_token_is_a_linear_probe():
    head = a_head()
    tokens = torch.randn(3, 7, 5, generator=torch.Generator().manual_seed(2))
    weight, bias = head.weight.detach(), head.bias.detach()
    # One token: every query's softmax is 1 on it, so the head is a linear map of the (standardised) token.
    one = tokens[:, :1]
    z = (one[:, 0] - head.mean) / head.std
    assert torch.allclose(head(one).detach(), F.linear(z.repeat(1, 3), weight, bias), atol=1e-5)
    # Zero queries (the initialisation): uniform attention, the linear probe on the mean-pooled standardised tokens.
    with torch.no_grad():
        head.query.zero_()
    mean_pool = ((tokens - head.mean) / head.std).mean(1)
    assert torch.allclose(head(tokens).detach(), F.linear(mean_pool.repeat(1, 3), weight, bias), atol=1e-5)
    assert torch.all(AttentiveHead(5, 4).query == 0)


def test_token_maps_are_block_means_down_to_eight_by_eight():
    act = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    tokens = token_map(act, 8)
    assert tokens.shape == (2, 64, 3)
    blocks = act.view(2, 3, 8, 2, 8, 2).mean(dim=(3, 5))
    assert torch.allclose(tokens, blocks.flatten(2).transpose(1, 2), atol=1e-6)
    small = torch.randn(2, 3, 4, 4)
    assert torch.equal(token_map(small, 8), small.flatten(2).transpose(1, 2))


def test_attentive_is_a_labelled_protocol_with_a_cli_choice():
    assert SHORT_LABELS["attentive"] == "attentive" and "not the official" in PROTOCOLS["attentive"]
    assert build_parser().parse_args(["probe", "--run", "r", "--protocol", "attentive"]).protocol == "attentive"


def test_an_attentive_grid_end_to_end(tmp_path):
    ws = tmp_path
    data = "builtin:shapes?n_train=96&n_test=48"
    parent = create_job(ws, train_spec(config=micro_config(), data=data, steps=4, batch_size=16, device="cpu"))
    assert execute(parent, ws, handle_signals=False) == "done"
    probe = create_job(ws, probe_spec(parent, timesteps="11", layers="out_1,out_3", protocol="attentive", epochs=2,
                                      train_limit=64, test_limit=48, device="cpu"))
    assert execute(probe, ws, handle_signals=False) == "done"
    grid = json.loads((probe / "grid.json").read_text())
    assert grid["protocol"] == "attentive" and grid["protocol_label"] == PROTOCOLS["attentive"] and grid["complete"]
    events = [json.loads(line) for line in (probe / "events.jsonl").read_text().splitlines()]
    cells = {(e["timestep"], e["layer"]): e["accuracy"] for e in events if e["type"] == "grid_cell"}
    assert set(cells) == {(11, "out_1"), (11, "out_3")}
    for (t, layer), accuracy in cells.items():
        assert accuracy == pytest.approx(grid["accuracy"][str(t)][layer], abs=1e-6) and accuracy * 48 == pytest.approx(round(accuracy * 48), abs=1e-3)
    # Its baselines by the same protocol: the random-init network's tokens through the same heads.
    assert 0 <= grid["baselines"]["random_init"]["accuracy"] <= 1 and 0 <= grid["baselines"]["pixels"]["accuracy"] <= 1
    assert not (probe / "heads.pt").exists()           # Classify reads linear heads; an attentive grid has none

    # A token cache over the memory budget is refused in one sentence, before any extraction.
    small = create_job(ws, probe_spec(parent, timesteps="11", layers="out_1", protocol="attentive", epochs=1,
                                      train_limit=64, test_limit=48, device="cpu", baselines=False,
                                      cache_memory_mb=0))
    assert execute(small, ws, handle_signals=False) == "failed"
    errors = [json.loads(line).get("error") for line in (small / "events.jsonl").read_text().splitlines()]
    assert any(e and e.startswith("The attentive probe's token cache would need") and "--layers" in e for e in errors)
