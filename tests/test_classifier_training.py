"""The shared classifier-training loop: its schedule, its reports and its stop, on a toy linear classifier."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ddae_core.engine.evaluation.classifier_training import (
    ClassifierTraining,
    augmented_batches,
    cosine_lr,
    held_out_accuracy,
    shuffled,
    train_classifier,
    warmup_cosine_scale,
)
from ddae_core.engine.evaluation.features import Stopped


class Recorder:
    def __init__(self):
        self.metrics, self.steps = [], []

    def report(self, key, value, step):
        self.metrics.append((key, step))

    def progress(self, done, total, stage=""):
        self.steps.append((done, total, stage))


def toy_job(reporter, *, epochs=2, stop=lambda: False, evaluate=None, lrs=None):
    torch.manual_seed(0)
    net = nn.Linear(4, 3)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)

    def lr(base, epoch, step):
        if lrs is not None:
            lrs.append((epoch, step))
        return cosine_lr(base, epoch, epochs)

    return ClassifierTraining(net, opt, torch.tensor([0, 1, 2, 0, 1, 2]), "cpu", epochs, 2, lr, reporter,
                              "toy", "toy/train_loss", stop, evaluate)


def toy_batches(epoch):
    order = shuffled(6, 0, epoch)
    for start in (0, 3):
        index = order[start:start + 3]
        yield index, (torch.eye(4)[index % 4],)


def test_loop_steps_every_batch_reports_each_epoch_and_evaluates_after_the_loss():
    reporter, lrs = Recorder(), []
    evaluated = []
    job = toy_job(reporter, evaluate=lambda epoch, loss: evaluated.append(epoch) or {"toy/accuracy": 0.5}, lrs=lrs)
    train_classifier(job, toy_batches)
    assert lrs == [(0, 0), (0, 1), (1, 2), (1, 3)]          # steps count over the whole run
    assert reporter.steps == [(1, 4, "toy"), (2, 4, "toy"), (3, 4, "toy"), (4, 4, "toy")]
    assert reporter.metrics == [("toy/train_loss", 1), ("toy/accuracy", 1), ("toy/train_loss", 2), ("toy/accuracy", 2)]
    assert evaluated == [0, 1]
    assert job.optimizer.param_groups[0]["lr"] == pytest.approx(cosine_lr(0.5, 1, 2))


def test_loop_stops_before_the_next_batch():
    reporter = Recorder()
    calls = iter([False, False, True])
    with pytest.raises(Stopped):
        train_classifier(toy_job(reporter, stop=lambda: next(calls)), toy_batches)
    assert reporter.steps == [(1, 4, "toy"), (2, 4, "toy")] and reporter.metrics == [("toy/train_loss", 1)]


def test_schedules_and_orders_are_the_jobs_own():
    assert warmup_cosine_scale(0, 10, 100) == pytest.approx(0.1)
    assert warmup_cosine_scale(99, 10, 100) < 0.01
    assert torch.equal(shuffled(10, 3, 1), torch.randperm(10, generator=torch.Generator().manual_seed(3 * 7919 + 1)))


def test_augmented_batches_seed_each_batch_and_accuracy_counts_the_labels():
    images = torch.randint(0, 255, (5, 3, 8, 8), dtype=torch.uint8)
    first = list(augmented_batches(images, torch.arange(5), 2, "cpu", lambda i: 100 + i))
    again = list(augmented_batches(images, torch.arange(5), 2, "cpu", lambda i: 100 + i))
    assert [len(index) for index, _ in first] == [2, 2, 1]
    assert all(torch.equal(a[1][0], b[1][0]) for a, b in zip(first, again))
    labels = torch.tensor([0, 1, 0, 1, 0])

    def always_zero(start, batch):
        return torch.tensor([[1.0, 0.0]]).repeat(len(batch), 1)

    assert held_out_accuracy(always_zero, images, labels, "cpu", lambda: False) == pytest.approx(0.6)


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A micro DDPM model trained for 4 steps."""
    from ddae_core.jobs.specs import create_job, execute, train_spec
    from tests.fixtures import micro_config

    ws = tmp_path_factory.mktemp("loop-ws")
    cfg = micro_config()
    cfg["studio"].update({"checkpoint_every_steps": 4, "sample_every_steps": 4, "sample_steps": 2})
    cfg["n_sample"] = 4
    run_dir = create_job(ws, train_spec(config=cfg, data="builtin:shapes?n_train=64&n_test=32", steps=4,
                                        batch_size=16, device="cpu"))
    assert execute(run_dir, ws, handle_signals=False) == "done"
    return ws, run_dir


@pytest.mark.parametrize("kind", ["head", "wrn", "finetune"])
def test_a_stop_request_ends_each_job_at_the_next_batch(parent, kind):
    import json

    from ddae_core.engine.reporting import STOP_FILE
    from ddae_core.jobs.eval_specs import finetune_spec, noisy_spec
    from ddae_core.jobs.specs import create_job, execute

    ws, parent_dir = parent
    common = {"epochs": 2, "train_limit": 32, "test_limit": 16, "batch_size": 16, "device": "cpu"}
    spec = {"head": lambda: noisy_spec(parent_dir, layer="out_3", **common),
            "wrn": lambda: noisy_spec(parent_dir, baseline="wrn", width=1, depth=10, **common),
            "finetune": lambda: finetune_spec(parent_dir, layer="out_2", timestep=11, **common)}[kind]()
    job = create_job(ws, spec)
    loss_key = "finetune/train_loss" if kind == "finetune" else "noisy/train_loss"

    def stop_after_the_first_epoch(event):
        if event["type"] == "metric" and event["key"] == loss_key:
            (job / STOP_FILE).touch()

    assert execute(job, ws, echo=stop_after_the_first_epoch, handle_signals=False) == "cancelled"
    lines = [json.loads(line) for line in (job / "events.jsonl").read_text().splitlines()]
    assert [e["step"] for e in lines if e["type"] == "metric" and e["key"] == loss_key] == [1]
    progress = [e["done"] for e in lines if e["type"] == "progress"]
    assert 1 <= max(progress) <= 2                      # progress is throttled; no batch of epoch 2 ran
    assert not (job / ("finetune.json" if kind == "finetune" else "noisy.json")).exists()
