"""FID: the arithmetic against closed forms, the job end to end with a randomly initialised Inception
(numbers meaningless, mechanics real), and sweeps queued from the CLI and from a training run."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
import torch
import yaml
from PIL import Image

from ddae_core.engine.errors import UserError
from ddae_core.engine.evaluation import inception as fid_inception
from ddae_core.engine.evaluation.fid import RESULTS, stats_path
from ddae_core.engine.evaluation.fid_label import NONSTANDARD_KEY, describe, fid_name, is_standard
from ddae_core.engine.evaluation.inception import (
    WEIGHTS_FILE,
    WEIGHTS_SHA256,
    ActivationStats,
    activations,
    find_weights,
    frechet_distance,
    load_inception,
)
from ddae_core.engine.reporting import STOP_FILE
from ddae_core.jobs.eval_specs import fid_spec
from ddae_core.jobs.specs import create_job, execute
from ddae_core.jobs.sweep import checkpoint_hook, sweep_plan

from .fixtures import ROOT, micro_config, micro_train_spec

FID_DATA = "builtin:shapes?n_train=12&n_test=4"       # the reference set: 12 training images
TINY = {"n": 4, "steps": 2, "batch_size": 4, "dims": 64, "data": FID_DATA, "device": "cpu"}


def events(run_dir, type_=None):
    lines = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return [e for e in lines if type_ is None or e["type"] == type_]


def metrics(run_dir, key):
    return {e["step"]: e["value"] for e in events(run_dir, "metric") if e["key"] == key}


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """An FID Inception state dict at random initialisation, saved as the weights file would be.

    torchvision's Inception3 has the FID network's parameters under the same names and shapes (pytorch-fid's
    blocks subclass torchvision's, changing only their pooling), so its state dict stands in for the file.
    """
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    path = tmp_path_factory.mktemp("inception") / "random_inception.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A micro DDPM run with checkpoints at steps 2, 4 and 6."""
    ws = tmp_path_factory.mktemp("fid-ws")
    (ws / "runs").mkdir()
    (ws / "data").mkdir()
    run_dir = create_job(ws, micro_train_spec(steps=6, checkpoint_every=2))
    assert execute(run_dir, ws, handle_signals=False) == "done"
    return ws, run_dir


# The arithmetic.
def _random_spd(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def _psd_sqrt(s):
    """The symmetric square root by eigendecomposition (not the library's sqrtm of a product)."""
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def test_identical_sets_have_fid_zero():
    feats = np.random.default_rng(0).standard_normal((300, 16)) * 3 + 1
    stats = ActivationStats(16)
    stats.update(feats)
    assert frechet_distance(stats.mean, stats.sigma, stats.mean, stats.sigma) == pytest.approx(0, abs=1e-6)


def test_gaussians_give_the_closed_form():
    rng = np.random.default_rng(1)
    d = 12
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
    root1 = _psd_sqrt(s1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * _psd_sqrt(root1 @ s2 @ root1))
    # The same with scipy's sqrtm of the product, as the FID papers write it.
    also = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert expected == pytest.approx(also, rel=1e-8)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)
    # Diagonal covariances: sum_i (m1 - m2)^2 + (sqrt(v1) - sqrt(v2))^2.
    v1, v2 = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    diagonal = np.sum((mu1 - mu2) ** 2 + (np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(diagonal, rel=1e-8)


def test_batched_statistics_equal_numpy_mean_and_cov():
    feats = np.random.default_rng(2).standard_normal((103, 9)) * 5 + 20     # a large mean: no cancellation
    stats = ActivationStats(9)
    for part in np.split(feats, [1, 30, 31, 90]):
        stats.update(part)
    assert stats.n == 103
    np.testing.assert_allclose(stats.mean, feats.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.sigma, np.cov(feats, rowvar=False), rtol=1e-10)


# Weights and library: one sentence before any work.
def test_missing_weights_name_the_file_its_checksum_and_where_to_put_it(workspace, monkeypatch):
    monkeypatch.delenv(fid_inception.WEIGHTS_ENV, raising=False)
    with pytest.raises(UserError) as info:
        find_weights(workspace)
    text = str(info.value)
    assert WEIGHTS_FILE in text and WEIGHTS_SHA256 in text and str(workspace / "data" / "fid") in text
    assert text.count(".") >= 1 and "\n" not in text
    with pytest.raises(UserError, match="--inception names .* which is not a file"):
        find_weights(workspace, workspace / "nowhere.pth")
    # Found in the workspace, or from $DDAE_INCEPTION.
    (workspace / "data" / "fid").mkdir(parents=True)
    (workspace / "data" / "fid" / WEIGHTS_FILE).write_bytes(b"x")
    assert find_weights(workspace) == workspace / "data" / "fid" / WEIGHTS_FILE
    monkeypatch.setenv(fid_inception.WEIGHTS_ENV, str(workspace / "other.pth"))
    with pytest.raises(UserError, match=r"\$DDAE_INCEPTION names"):
        find_weights(workspace)


def test_fid_command_refuses_without_weights_before_any_run_folder(trained, monkeypatch):
    ws, parent = trained
    monkeypatch.delenv(fid_inception.WEIGHTS_ENV, raising=False)
    before = sorted(p.name for p in (ws / "runs").iterdir())
    out = subprocess.run([sys.executable, "-m", "ddae_core.cli", "fid", "--run", parent.name, "--workspace", str(ws)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.startswith(f"error: The FID Inception weights {WEIGHTS_FILE} (SHA-256 {WEIGHTS_SHA256})")
    assert len(out.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in (ws / "runs").iterdir()) == before


def test_missing_library_and_wrong_weights_are_one_sentence(tmp_path, monkeypatch):
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(UserError, match="do not fit pytorch-fid's FID Inception"):
        load_inception(bad, 64)
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="cannot be read"):
        load_inception(tmp_path / "junk.pth", 64)
    monkeypatch.setitem(sys.modules, "pytorch_fid", None)
    monkeypatch.setitem(sys.modules, "pytorch_fid.fid_score", None)
    with pytest.raises(UserError, match="needs the pytorch-fid package.*pip install pytorch-fid"):
        fid_inception.require_library()


def test_the_standard_network_gives_2048_features_of_8_bit_images(random_weights):
    from ddae_core.engine.evaluation.inception import activations, to_uint8

    net = load_inception(random_weights, 2048)
    images = to_uint8(torch.rand(2, 3, 32, 32))
    assert images.dtype == torch.uint8
    feats = activations(net, images)
    assert feats.shape == (2, 2048) and feats.dtype == np.float64 and np.isfinite(feats).all()


def test_only_the_standard_weights_at_2048_dims_make_a_standard_fid():
    assert is_standard(WEIGHTS_SHA256, 2048) and describe(WEIGHTS_SHA256, 2048) == ""
    assert describe(WEIGHTS_SHA256, 768).startswith("non-standard FID (the standard Inception, 768 dims")
    assert describe("0" * 64, 2048).startswith("non-standard FID (Inception SHA-256 000000000000..., 2048 dims")
    assert (fid_name(True), fid_name(False)) == ("FID", "FID (non-standard)")


# The job.
def _grid_tiles(png, n: int, size: int, padding: int = 2) -> torch.Tensor:
    """The first n uint8 (3, size, size) images of a sample grid (engine/grids.py's layout)."""
    grid, nrow = np.asarray(Image.open(png).convert("RGB")), math.ceil(math.sqrt(n))
    tiles = [grid[padding + r * (size + padding):][:size, padding + c * (size + padding):][:, :size]
             for r, c in (divmod(i, nrow) for i in range(n))]
    return torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).contiguous()


def _fid_from_scratch(ws, parent, step: int, weights) -> float:
    """The FID of TINY's samples at `step`, recomputed outside the job: same seed, numpy statistics, eigh roots."""
    from ddae_core.engine.checkpoint import load_model
    from ddae_core.engine.evaluation.inception import activations, to_uint8
    from ddae_core.rundir import resolve_checkpoint

    model = load_model(resolve_checkpoint(parent, step)[1], device=torch.device("cpu"))
    images = to_uint8(model.sample(TINY["n"], steps=TINY["steps"], generator=torch.Generator().manual_seed(0)))
    feats = activations(load_inception(weights, TINY["dims"]), images)
    with np.load(next((ws / "data").rglob("*.npz"))) as ref:
        mu2, s2 = ref["mu"], ref["sigma"]
    mu1, s1 = feats.mean(0), np.cov(feats, rowvar=False)
    root2 = _psd_sqrt(s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * _psd_sqrt(root2 @ s1 @ root2)))


def test_fid_job_caches_reference_statistics_and_reports_each_checkpoint(trained, random_weights, capfd):
    ws, parent = trained
    run_dir = create_job(ws, fid_spec(parent, checkpoint="all", inception=random_weights, **TINY))
    assert execute(run_dir, ws, handle_signals=False) == "done"
    fids = metrics(run_dir, "fid")
    assert sorted(fids) == [2, 4, 6]


    assert fids[4] == pytest.approx(_fid_from_scratch(ws, parent, 4, random_weights), rel=1e-4, abs=1e-6)
    assert [e["step"] for e in events(run_dir, "image")] == [2, 4, 6]
    assert (run_dir / "samples" / "step_000006.png").is_file()
    results = json.loads((run_dir / RESULTS).read_text())
    # Each value is the Frechet distance of the samples it scored (kept exactly in its 8-bit grid) to the
    # reference statistics: recomputed here from those two files.
    net, reference = load_inception(random_weights, 64), np.load(results["reference"])
    for step, fid in fids.items():
        stats = ActivationStats(64)
        stats.update(activations(net, _grid_tiles(run_dir / "samples" / f"step_{step:06d}.png", TINY["n"], 32)))
        assert fid == pytest.approx(frechet_distance(stats.mean, stats.sigma, reference["mu"], reference["sigma"]),
                                    rel=1e-6), step
    assert results["fid"] == {str(s): v for s, v in fids.items()}
    assert results["inception_sha256"] != WEIGHTS_SHA256
    cached = stats_path(ws, FID_DATA, 32, 64, results["inception_sha256"])
    assert results["reference"] == str(cached) and cached.is_file()
    out = capfd.readouterr().out
    assert "not the standard FID Inception file" in out and "12 training images" in out
    # Labelled by what computed it: every fid point carries the weights' hash and dims, and this random
    # network at 64 dims is marked non-standard, in the log, the results and the index's metrics.
    sha = results["inception_sha256"]
    points = [e for e in events(run_dir, "metric") if e["key"] == "fid"]
    assert [(e["inception_sha256"], e["dims"]) for e in points] == [(sha, 64)] * 3
    assert metrics(run_dir, NONSTANDARD_KEY) == {2: 1.0, 4: 1.0, 6: 1.0} and results["standard"] is False
    assert f"FID {fids[6]:.3f}  (4 samples)  non-standard FID (Inception SHA-256 {sha[:12]}..., 64 dims" in out

    # A second job reuses the cached statistics (the file is not written again) and, with the same seed,
    # scores the same samples the same.
    written = cached.stat().st_mtime_ns
    again = create_job(ws, fid_spec(parent, checkpoint=4, inception=random_weights, **TINY))
    assert execute(again, ws, handle_signals=False) == "done"
    assert cached.stat().st_mtime_ns == written
    assert f"reference statistics: {cached} (12 images)" in capfd.readouterr().out
    assert metrics(again, "fid") == pytest.approx({4: fids[4]})


def test_a_job_waits_while_another_computes_the_reference_statistics(trained, random_weights):
    from ddae_core.rundir import ProcessLock

    ws, parent = trained
    data = FID_DATA + "&seed=1"
    run_dir = create_job(ws, fid_spec(parent, checkpoint=2, inception=random_weights, **{**TINY, "data": data}))
    sha = fid_inception.file_sha256(random_weights)
    path = stats_path(ws, data, 32, 64, sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    other = ProcessLock(path.with_name(path.name + ".lock"))
    assert other.acquire()
    stages = []

    def the_other_job_finishes(event):
        if event["type"] == "progress":
            stages.append(event["stage"])
            if event["stage"] == "waiting for reference statistics":
                other.release()
    assert execute(run_dir, ws, echo=the_other_job_finishes, handle_signals=False) == "done"
    assert stages.index("waiting for reference statistics") < stages.index("reference statistics")
    assert path.is_file() and list(metrics(run_dir, "fid")) == [2]


def test_cancelled_fid_job_keeps_finished_checkpoints_and_resumes_with_the_rest(trained, random_weights):
    ws, parent = trained
    run_dir = create_job(ws, fid_spec(parent, checkpoint="all", inception=random_weights, **TINY))

    def stop_after_first_checkpoint(event):
        if event["type"] == "metric" and event["key"] == "fid":
            (run_dir / STOP_FILE).touch()
    assert execute(run_dir, ws, echo=stop_after_first_checkpoint, handle_signals=False) == "cancelled"
    assert list(metrics(run_dir, "fid")) == [2]
    assert json.loads((run_dir / RESULTS).read_text())["fid"].keys() == {"2"}

    (run_dir / STOP_FILE).unlink()
    seen = []
    assert execute(run_dir, ws, echo=seen.append, handle_signals=False) == "done"
    assert [e["step"] for e in seen if e["type"] == "metric" and e["key"] == "fid"] == [4, 6]   # 2 is not sampled again
    assert [e.get("scored_before") for e in seen if e["type"] == "status"][0] == [2]
    assert sorted(metrics(run_dir, "fid")) == [2, 4, 6]


# Sweeps.
def test_sweep_queues_fid_and_probe_jobs_that_the_queue_runs(trained, random_weights):
    ws, parent = trained
    wsarg = ["--workspace", str(ws)]

    def cli(*args, timeout=150):
        return subprocess.run([sys.executable, "-m", "ddae_core.cli", *args, *wsarg], cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout)
    out = cli("sweep", "--run", parent.name, "--checkpoints", "every", "6", "--fid-n", "4", "--steps", "2",
              "--batch", "4", "--dims", "64", "--inception", str(random_weights), "--probe", "11,out_3",
              "--data", FID_DATA, "--device", "cpu")
    assert out.returncode == 0, out.stderr
    children = [line.strip() for line in out.stdout.splitlines()[1:]]
    assert out.stdout.startswith(f"queued 2 jobs (FID and probe) for 1 checkpoints of {parent.name} (steps 6)")
    assert [c.split("-")[2] for c in children] == ["fid", "probe"]

    out = cli("queue", "serve", "--once", "--gpus", "none", "--interval", "0.2")
    assert out.returncode == 0, out.stdout + out.stderr
    fid_dir, probe_dir = (ws / "runs" / c for c in children)
    assert list(metrics(fid_dir, "fid")) == [6]
    assert list(metrics(probe_dir, "probe/accuracy")) == [6]
    for child in (fid_dir, probe_dir):
        spec = yaml.safe_load((child / "spec.yaml").read_text())
        assert spec["parent"] == {"run": parent.name, "checkpoint": 6}
        assert spec["options"]["sweep"].startswith(f"{parent.name}@")

    out = cli("sweep", "--run", parent.name, "--show")
    fid, acc = metrics(fid_dir, "fid")[6], metrics(probe_dir, "probe/accuracy")[6]
    assert out.stdout.splitlines()[1].split() == ["6", f"{fid:.3f}", "(non-standard)", f"{100 * acc:.2f}%"]

    out = cli("sweep", "--run", parent.name, "--checkpoints", "every", "5", "--fid-n", "0")
    assert out.returncode == 2
    assert out.stderr == (f"error: No checkpoint of run {parent.name} is at a multiple of 5 steps (it has 2, 4, 6); "
                          "choose another K or all.\n")


def test_training_with_a_sweep_queues_its_jobs_at_each_chosen_checkpoint(workspace, random_weights):
    from db import Store
    from ddae_core.engine.config import parse_model_config
    from ddae_core.jobs.queue_ops import refresh

    spec = micro_train_spec(steps=6, checkpoint_every=2)
    spec["options"]["sweep"] = sweep_plan(parse_model_config(micro_config()), workspace, checkpoints="every 4",
                                          fid_n=4, steps=2, batch_size=4, dims=64, inception=random_weights,
                                          probe="grid", device="cpu")
    run_dir = create_job(workspace, spec)
    assert execute(run_dir, workspace, handle_signals=False) == "done"
    children = sorted(p for p in (workspace / "runs").iterdir() if p != run_dir)
    specs = [yaml.safe_load((c / "spec.yaml").read_text()) for c in children]
    assert sorted((s["kind"], s["parent"]["checkpoint"]) for s in specs) == [("fid", 4), ("probe", 4)]
    assert all(s["queue"] == {"priority": 0, "gpus": 0} and s["options"]["sweep"] == run_dir.name for s in specs)
    probe = next(s for s in specs if s["kind"] == "probe")
    assert probe["options"]["layers"] == ["out_1", "out_2", "out_3", "out_4"] and probe["options"]["protocol"] == "fast"
    # Saving step 4 again (a cancel right after the save, or a resumed worker) queues nothing more.
    checkpoint_hook(run_dir, spec["options"]["sweep"])(4, None)
    assert sorted(p for p in (workspace / "runs").iterdir() if p != run_dir) == children
    # The worker wrote folders only; the index enqueues them when it registers them.
    with Store.open(workspace) as store:
        refresh(store)
        assert sorted(e.run for e in store.queued_jobs()) == [c.name for c in children]
