"""The evaluations on a micro model trained for a few steps: every command, its outputs and its stop."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ddae_core.engine.errors import ConfigError, UserError
from ddae_core.engine.evaluation.classify import Classifier, classify_files
from ddae_core.engine.evaluation.heads import ProbeHeads, ProbeTrainer, fold_standardization, standardization
from ddae_core.engine.evaluation.protocols import BASELINE_KEYS, protocol_of
from ddae_core.engine.evaluation.sources import PIXELS, RANDOM_INIT_SEED, PixelSource, random_init_model
from ddae_core.engine.image_files import load_image
from ddae_core.engine.reporting import STOP_FILE
from ddae_core.jobs.eval_specs import align_spec, finetune_spec, import_spec, noisy_spec, probe_spec, sample_spec
from ddae_core.jobs.specs import create_job, execute, train_spec

from .fixtures import FIXTURES, ROOT, micro_config, need

DATA = "builtin:shapes?n_train=96&n_test=48"


def events(run_dir, type_=None):
    lines = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return [e for e in lines if type_ is None or e["type"] == type_]


def metrics(run_dir, key):
    return {e["step"]: e["value"] for e in events(run_dir, "metric") if e["key"] == key}


def run(ws, spec, **kw):
    run_dir = create_job(ws, spec)
    return run_dir, execute(run_dir, ws, handle_signals=False, **kw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A micro DDPM model trained for 8 steps, with checkpoints at 4 and 8 and a layer monitor."""
    ws = tmp_path_factory.mktemp("eval-ws")
    cfg = micro_config()
    cfg["studio"].update({"checkpoint_every_steps": 4, "sample_every_steps": 8, "sample_steps": 2})
    cfg["n_sample"] = 4
    spec = train_spec(config=cfg, data=DATA, steps=8, batch_size=16, device="cpu", monitor_layers=["out_2", "out_3"])
    spec["options"]["monitor_images"] = 32
    run_dir, status = run(ws, spec)
    assert status == "done"
    return ws, run_dir


def test_train_time_layer_monitor_reports_at_each_checkpoint(trained):
    _, run_dir = trained
    assert sorted(metrics(run_dir, "align/out_2")) == [4, 8]
    assert sorted(metrics(run_dir, "uniform/out_3")) == [4, 8]


def test_fast_probe_grid_reports_cells_table_json_and_heads(trained, capfd):
    ws, parent = trained
    probe, status = run(ws, probe_spec(parent, timesteps="11,51", layers="out_1,out_3", train_limit=64,
                                       test_limit=48, epochs=2, device="cpu"))
    assert status == "done"
    grid_event = events(probe, "grid")[0]
    assert grid_event["timesteps"] == [11, 51] and grid_event["layers"] == ["out_1", "out_3"]
    cells = events(probe, "grid_cell")
    assert {(c["timestep"], c["layer"]) for c in cells} == {(11, "out_1"), (11, "out_3"), (51, "out_1"), (51, "out_3")}
    # Each cell is k right of the 48 test images (events keep 5 digits), not just a number in 0..1.
    assert [c["accuracy"] * 48 for c in cells] == [pytest.approx(round(c["accuracy"] * 48), abs=1e-3) for c in cells]
    grid = json.loads((probe / "grid.json").read_text())
    assert grid["complete"] and grid["best"]["accuracy"] == pytest.approx(max(c["accuracy"] for c in cells), abs=1e-6)
    assert grid["selection"] == {"on": "test"}      # 64 training images leave none to choose on: said so
    out = capfd.readouterr().out
    assert "out_1" in out and "t=51" in out and "best cell:" in out and "(best on test)" in out
    heads = torch.load(probe / "heads.pt", weights_only=True)
    assert heads["heads"]["11/out_3"]["weight"].shape == (10, 32)  # out_3 is a 32-channel tap
    assert events(probe, "status")[-1]["status"] == "done"


def test_best_cell_is_chosen_on_held_out_training_images_and_quoted_on_test(trained):
    ws, parent = trained
    probe, status = run(ws, probe_spec(parent, timesteps="11,51", layers="out_1,out_3", train_limit=64, holdout=24,
                                       test_limit=48, epochs=2, device="cpu", baselines=False))
    assert status == "done"
    grid = json.loads((probe / "grid.json").read_text())
    assert grid["train_images"] == 40 and grid["selection"]["on"] == "held-out" and grid["selection"]["images"] == 24
    held = {(int(t), layer): acc for t, row in grid["held_out_accuracy"].items() for layer, acc in row.items()}
    (t, layer), chosen = max(held.items(), key=lambda kv: (kv[1], -kv[0][0]))
    best = grid["best"]
    assert (best["timestep"], best["layer"]) == (t, layer) and grid["selection"]["accuracy"] == chosen
    assert best["accuracy"] == grid["accuracy"][str(t)][layer]      # the test accuracy of the chosen cell
    assert grid["timestep_range"] == [1, 1000]
    classifier = Classifier.from_run(probe, device="cpu")          # Classify answers with the chosen cell's head
    assert (classifier.default_timestep, classifier.layer) == (t, layer)


def test_official_probe_protocol_runs_the_same_grid(trained):
    ws, parent = trained
    probe, status = run(ws, probe_spec(parent, timesteps="11", layers="out_3", protocol="official",
                                       train_limit=32, test_limit=48, epochs=2, device="cpu"))
    assert status == "done"
    assert len(events(probe, "grid_cell")) == 1


def test_only_the_fast_protocols_extract_at_reduced_precision(trained, monkeypatch):
    """The official protocol is the reference: it runs the model as the official code, never fast_forward."""
    from ddae_core.engine.model import DDAEModel

    ws, parent = trained
    entered, original = [], DDAEModel.fast_forward

    def recording(self, precision="auto"):
        entered.append(precision)
        return original(self, precision)
    monkeypatch.setattr(DDAEModel, "fast_forward", recording)
    _, status = run(ws, probe_spec(parent, timesteps="11", layers="out_3", protocol="official", train_limit=32,
                                   test_limit=48, epochs=1, device="cpu", baselines=False))
    assert status == "done" and entered == []
    _, status = run(ws, probe_spec(parent, timesteps="11", layers="out_3", train_limit=32, test_limit=48, epochs=1,
                                   device="cpu", baselines=False))
    assert status == "done" and entered == ["auto", "auto"]     # the training view, then the test pass


def test_cancelled_probe_keeps_the_cells_it_finished(trained):
    ws, parent = trained
    spec = probe_spec(parent, timesteps="1,11,21", layers="out_3", train_limit=48, test_limit=48, epochs=1,
                      device="cpu")
    probe = create_job(ws, spec)

    def stop_on_first_cell(event):
        if event["type"] == "grid_cell":
            (probe / STOP_FILE).touch()
    assert execute(probe, ws, echo=stop_on_first_cell, handle_signals=False) == "cancelled"
    grid = json.loads((probe / "grid.json").read_text())
    assert list(grid["accuracy"]) == ["1"] and not grid["complete"]
    assert len(events(probe, "grid_cell")) == 1


def test_fast_probe_spills_its_cache_to_disk_when_over_budget(trained):
    ws, parent = trained
    probe, status = run(ws, probe_spec(parent, timesteps="11", layers="all", train_limit=64, test_limit=48,
                                       epochs=1, device="cpu", cache_memory_mb=0))
    assert status == "done"
    assert len(events(probe, "grid_cell")) == 4  # the micro network has out_1..out_4
    assert not list(probe.glob("probe-cache-*"))  # removed afterwards


def test_batched_heads_train_exactly_like_independent_linear_heads():
    torch.manual_seed(0)
    channels, classes, batch = [5, 3], 4, 16
    heads = ProbeHeads(channels, classes, generator=torch.Generator().manual_seed(1))
    linears = []
    for i, c in enumerate(channels):
        lin = torch.nn.Linear(c, classes)
        with torch.no_grad():
            lin.weight.copy_(heads.weight[i, :c].t())
            lin.bias.copy_(heads.bias[i])
        linears.append(lin)
    trainer = ProbeTrainer(heads, lr=1e-2, epochs=3)
    optims = [torch.optim.Adam(lin.parameters(), lr=1e-2) for lin in linears]
    for epoch in range(3):
        trainer.set_epoch(epoch)
        for opt in optims:
            for g in opt.param_groups:
                g["lr"] = 1e-2 * (1 + math.cos(math.pi * epoch / 3)) / 2
        for _ in range(4):
            feats = [torch.randn(batch, c) for c in channels]
            labels = torch.randint(0, classes, (batch,))
            trainer.step(heads.stack(feats), labels)
            for lin, opt, f in zip(linears, optims, feats):
                opt.zero_grad()
                F.cross_entropy(lin(f), labels).backward()
                opt.step()
    for lin, state in zip(linears, heads.export()):
        torch.testing.assert_close(state["weight"], lin.weight.detach(), atol=1e-5, rtol=0)
        torch.testing.assert_close(state["bias"], lin.bias.detach(), atol=1e-5, rtol=0)
    assert heads.weight[1, 3:].abs().sum() == 0  # padding rows never move


def test_standardized_heads_fold_into_heads_on_raw_features():
    heads = ProbeHeads([6, 4], 3, generator=torch.Generator().manual_seed(2))
    raw = heads.stack([torch.randn(20, 6) * 0.05 + 3.0, torch.randn(20, 4) * 7.0 - 1.0])
    mean, std = standardization(raw)
    assert std[1, 4:].eq(1).all()                    # zero padding keeps std 1, so it stays zero
    expected = heads((raw - mean[:, None]) / std[:, None])
    fold_standardization(heads, mean, std)
    torch.testing.assert_close(heads(raw), expected, atol=1e-4, rtol=1e-4)
    assert heads.weight[1, 4:].abs().sum() == 0


def test_standardized_probe_is_fast_only_and_says_so_in_its_grid(trained):
    ws, parent = trained
    with pytest.raises(ConfigError, match="standardize"):
        probe_spec(parent, protocol="official", standardize=True)
    probe, status = run(ws, probe_spec(parent, timesteps="11", layers="out_1,out_3", train_limit=64, test_limit=48,
                                       epochs=2, device="cpu", standardize=True))
    assert status == "done"
    grid = json.loads((probe / "grid.json").read_text())
    assert grid["standardized"] is True and grid["complete"] and grid["protocol"] == "standardized"
    heads = torch.load(probe / "heads.pt", weights_only=True)["heads"]
    assert torch.isfinite(heads["11/out_3"]["weight"]).all() and heads["11/out_3"]["weight"].shape == (10, 32)


def test_every_grid_carries_its_raw_pixel_and_random_init_baselines(trained, capfd):
    ws, parent = trained
    probe, status = run(ws, probe_spec(parent, timesteps="11,51", layers="out_1,out_3", train_limit=64,
                                       test_limit=48, epochs=2, device="cpu"))
    assert status == "done"
    grid = json.loads((probe / "grid.json").read_text())
    base = grid["baselines"]
    assert base["pixels"]["accuracy"] * 48 == pytest.approx(round(base["pixels"]["accuracy"] * 48), abs=1e-3)  # k/48
    random = base["random_init"]
    assert random["seed"] == RANDOM_INIT_SEED and set(random["cells"]) == {"11", "51"}
    assert set(random["cells"]["11"]) == {"out_1", "out_3"}
    assert random["accuracy"] == max(v for row in random["cells"].values() for v in row.values())
    assert metrics(probe, BASELINE_KEYS["pixels"]) == {8: base["pixels"]["accuracy"]}
    assert metrics(probe, BASELINE_KEYS["random_init"]) == {8: random["accuracy"]}
    # The baselines' cells are not the grid's: the heatmap gets only the network's own cells.
    assert {(c["timestep"], c["layer"]) for c in events(probe, "grid_cell")} == {
        (11, "out_1"), (11, "out_3"), (51, "out_1"), (51, "out_3")}
    assert "raw pixels" in capfd.readouterr().out
    bare, status = run(ws, probe_spec(parent, timesteps="11", layers="out_3", train_limit=64, test_limit=48,
                                      epochs=1, device="cpu", baselines=False))
    assert json.loads((bare / "grid.json").read_text())["baselines"] is None
    assert not metrics(bare, BASELINE_KEYS["pixels"])


def test_baselines_are_measured_once_per_network_data_and_options(trained, capfd):
    ws, parent = trained
    options = dict(timesteps="21", layers="out_2", train_limit=48, test_limit=32, epochs=1, device="cpu")
    first, _ = run(ws, probe_spec(parent, **options))
    assert "baselines measured in this run" in capfd.readouterr().out
    second, _ = run(ws, probe_spec(parent, checkpoint=4, **options))      # other weights, same baselines
    a, b = (json.loads((p / "grid.json").read_text())["baselines"] for p in (first, second))
    assert a["cached"] is False and b["cached"] is True and b["random_init"] == a["random_init"]
    assert b["measured"] == a["measured"] and a["measured"] > 1.7e9      # when, kept in the cache entry
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(a["measured"]))
    assert f"baselines read from the cache ({a['cache']}), measured {when}" in capfd.readouterr().out
    assert metrics(second, BASELINE_KEYS["pixels"]) == {4: a["pixels"]["accuracy"]}
    third, _ = run(ws, probe_spec(parent, **{**options, "epochs": 2}))     # other options: measured anew
    assert json.loads((third / "grid.json").read_text())["baselines"]["cached"] is False
    # Another extraction batch: the features (so the baselines) may differ; measured anew, not read.
    spec = probe_spec(parent, **options)
    spec["options"]["extract_batch_size"] = 7                              # as bench/ and GPU runs set it
    batch, _ = run(ws, spec)
    assert json.loads((batch / "grid.json").read_text())["baselines"]["cached"] is False
    cache = ws / "data" / "baselines" / a["cache"]
    entry = json.loads(cache.read_text())
    assert entry["key"]["extract_batch_size"] != 7 and entry["key"]["precision"] in ("fp32", "bfloat16")
    assert {"probe_code", "train_data", "test_data", "device", "protocol", "batch_size"} <= set(entry["key"])
    cache.write_text(json.dumps({k: v for k, v in entry.items() if k != "key"}))   # as entries of the old layout
    old_layout, _ = run(ws, probe_spec(parent, **options))
    assert json.loads((old_layout / "grid.json").read_text())["baselines"]["cached"] is False
    cache.write_text("{not json")                                          # damaged: measured again
    fourth, _ = run(ws, probe_spec(parent, **options))
    assert json.loads((fourth / "grid.json").read_text())["baselines"]["cached"] is False
    assert json.loads(cache.read_text())["random_init"]["accuracy"] == a["random_init"]["accuracy"]


def test_random_init_baseline_is_one_fixed_network_not_the_trained_one(trained):
    _, parent = trained
    from ddae_core.engine.checkpoint import load_model
    from ddae_core.rundir import resolve_checkpoint

    model = load_model(resolve_checkpoint(parent, "latest")[1])
    a, b = random_init_model(model), random_init_model(model)
    for (name, wa), wb in zip(a.net.state_dict().items(), b.net.state_dict().values()):
        assert torch.equal(wa, wb), name
    assert any(not torch.equal(wa, wt) for wa, wt in zip(a.net.state_dict().values(), model.net.state_dict().values()))


def test_pixel_source_is_the_flattened_image_in_the_model_range():
    images = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    source = PixelSource((3, 8, 8), torch.device("cpu"))
    feats = source.extract(images, 0, batch_size=2)[PIXELS]
    assert source.channels == [192] and feats.shape == (5, 192)
    torch.testing.assert_close(feats, (images.float() / 255 * 2 - 1).flatten(1))
    flipped = source.extract(images, 0, batch_size=5, flip=True, crop_padding=2, seed=3)[PIXELS]
    assert not torch.equal(flipped, feats)  # augmented views differ from the clean images


def test_standardized_is_a_named_protocol_and_old_grids_read_as_it():
    assert protocol_of({"protocol": "fast", "standardize": True}) == "standardized"
    assert protocol_of({"protocol": "fast", "standardized": True}) == "standardized"
    assert protocol_of({"protocol": "official"}) == "official" and protocol_of({}) == "fast"


def test_alignment_uniformity_over_checkpoints(trained):
    ws, parent = trained
    job, status = run(ws, align_spec(parent, checkpoints="all", layers="out_2,out_3", limit=48, device="cpu"))
    assert status == "done"
    align, uniform = metrics(job, "align/out_3"), metrics(job, "uniform/out_3")
    assert sorted(align) == [4, 8] and sorted(uniform) == [4, 8]
    assert all(0 < a < 4 for a in align.values())  # two noise draws differ; unit vectors are at most 2 apart
    assert all(-4 <= u <= 0 for u in uniform.values())
    with pytest.raises(ConfigError, match="checkpoints"):
        align_spec(parent, checkpoints="four")


def test_noisy_classifier_reports_accuracy_per_level(trained):
    ws, parent = trained
    job, status = run(ws, noisy_spec(parent, layer="out_3", epochs=1, train_limit=48, test_limit=24, device="cpu"))
    assert status == "done"
    acc = metrics(job, "noisy/accuracy")
    assert sorted(acc) == list(range(1, 1000, 50))
    sigma = metrics(job, "noisy/sigma")
    assert sigma[1] < sigma[501] < sigma[951]
    assert (job / "noisy_head.pt").is_file()


def test_noisy_wrn_baseline_on_the_same_levels(trained):
    ws, parent = trained
    job, status = run(ws, noisy_spec(parent, baseline="wrn", width=1, depth=10, epochs=1, train_limit=32,
                                     test_limit=16, device="cpu"))
    assert status == "done"
    assert len(metrics(job, "noisy/accuracy")) == 20
    with pytest.raises(ConfigError, match="depth"):
        noisy_spec(parent, baseline="wrn", depth=12)


@pytest.mark.parametrize("scratch", [False, True])
def test_finetune_reports_test_accuracy_per_epoch(trained, scratch):
    ws, parent = trained
    job, status = run(ws, finetune_spec(parent, layer="out_2", timestep=11, epochs=2, train_limit=32,
                                        test_limit=16, scratch=scratch, device="cpu"))
    assert status == "done"
    assert sorted(metrics(job, "finetune/test_accuracy")) == [1, 2]
    params = metrics(job, "finetune/parameters")[0]
    from ddae_core import load_model
    full = sum(p.numel() for p in load_model(parent / "checkpoints" / "step_000008.pt").net.parameters())
    assert params < full  # the decoder after out_2 and the output head are gone


def test_sample_job_writes_a_grid(trained):
    ws, parent = trained
    job, status = run(ws, sample_spec(parent, n=6, steps=2, device="cpu"))
    assert status == "done"
    assert Image.open(job / "samples" / "grid.png").size[0] > 32 * 2
    with pytest.raises(ConfigError, match="heun"):
        sample_spec(parent, sampler="heun")


def test_classify_files_with_the_best_probe_head(trained, tmp_path):
    ws, parent = trained
    run(ws, probe_spec(parent, timesteps="11", layers="out_3", train_limit=32, test_limit=16, epochs=1, device="cpu"))
    good = tmp_path / "photo.png"
    Image.new("RGB", (80, 60), (200, 30, 30)).save(good)
    gray = tmp_path / "gray.png"
    Image.new("L", (32, 32), 128).save(gray)
    junk = tmp_path / "notes.png"
    junk.write_text("not an image")
    truncated = tmp_path / "cut.jpg"
    Image.new("RGB", (64, 64), (0, 90, 200)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    classifier = Classifier.from_run(parent, device="cpu")
    results = classify_files(classifier, [good, junk, gray, truncated], save_dir=tmp_path / "out")
    ok = {r.path.name: r for r in results}
    assert ok["photo.png"].ok and len(ok["photo.png"].top) == 5
    # The top 5 are the five largest of the head's softmax over every class, for the same image and noise.
    image = load_image(good, classifier.model.resolution).image
    probs = classifier.predict(image[None], noise=torch.randn((1, 3, 32, 32), generator=torch.Generator().manual_seed(0)))
    assert probs.probabilities[0].sum().item() == pytest.approx(1.0, abs=1e-5)
    expected, index = probs.probabilities[0].topk(5)
    assert ok["photo.png"].top == [(classifier.classes[i], pytest.approx(p, abs=1e-6))
                                   for p, i in zip(expected.tolist(), index.tolist())]
    assert any("resized" in n for n in ok["photo.png"].notes)
    assert ok["gray.png"].ok and any("grayscale" in n for n in ok["gray.png"].notes)
    assert not ok["notes.png"].ok and ok["notes.png"].error.count(".") >= 1 and "notes.png" in ok["notes.png"].error
    assert not ok["cut.jpg"].ok and "cut.jpg" in ok["cut.jpg"].error
    t = classifier.default_timestep
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {f"photo_noisy_t{t}.png", f"photo_denoised_t{t}.png"}
    # A train run classifies with its best grid's head, as its row in the runs table reads.
    grids = {d: json.loads((d / "grid.json").read_text())["best"]["accuracy"]
             for d in ws.glob("runs/*-probe-*") if (d / "heads.pt").is_file()
             and json.loads((d / "grid.json").read_text())["parent_run"] == parent.name}
    assert grids[classifier.source] == max(grids.values())


def test_classify_prediction_changes_with_noise_level(trained):
    ws, parent = trained
    classifier = Classifier.from_run(parent, device="cpu")
    image = torch.rand(1, 3, 32, 32)
    noise = torch.randn(1, 3, 32, 32)
    low = classifier.predict(image, 1, noise=noise)
    high = classifier.predict(image, 600, noise=noise)
    assert (low.noisy - image).abs().mean() < (high.noisy - image).abs().mean()
    assert low.denoised.shape == image.shape
    assert not torch.allclose(low.probabilities, high.probabilities)


def test_classify_cli_names_bad_files_and_still_classifies_the_rest(trained, tmp_path):
    ws, parent = trained
    good = tmp_path / "a.png"
    Image.new("RGB", (32, 32), (10, 200, 10)).save(good)
    bad = tmp_path / "b.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    out = subprocess.run([sys.executable, "-m", "ddae_core.cli", "classify", "--run", parent.name, str(good), str(bad),
                          "--workspace", str(ws), "--device", "cpu"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[1].startswith("a.png: ") and "%" in lines[1]
    assert lines[2].startswith("b.png: b.png is")


def test_import_official_checkpoint_then_probe_it(workspace):
    ckpt = need(FIXTURES / "EDM_ddpmpp_ch32.pth")
    job, status = run(workspace, import_spec(ckpt, FIXTURES / "EDM_ddpmpp_ch32.yaml", data=DATA))
    assert status == "done"
    probe, status = run(workspace, probe_spec(job, timesteps="4", layers="out_7", train_limit=16, test_limit=16,
                                              epochs=1, device="cpu"))
    assert status == "done"
    assert json.loads((probe / "grid.json").read_text())["labels"]["4"] == "4 (sigma=0.05995)"
    with pytest.raises(ConfigError, match="outside 1..18"):
        probe_spec(job, timesteps="0,4")
    with pytest.raises(UserError):
        import_spec(workspace / "nope.pth", FIXTURES / "EDM_ddpmpp_ch32.yaml")
