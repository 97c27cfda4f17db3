"""Pre-training end to end on a micro model: run directory, events, checkpoints, exact resume, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml

from ddae_core.engine.checkpoint import atomic_torch_save, load_model, read_checkpoint
from ddae_core.engine.config import load_config, preset_path
from ddae_core.engine.errors import CheckpointError, ConfigError, UserError
from ddae_core.engine.reporting import STOP_FILE
from ddae_core.jobs import examples
from ddae_core.jobs.examples import CLASSIFY_EXAMPLE
from ddae_core.jobs.specs import create_job, execute, train_spec
from ddae_core.rundir import list_checkpoints

from .fixtures import FIXTURES, ROOT, micro_config, micro_train_config, need

DATA = "builtin:shapes?n_train=128&n_test=32"


class Payload:
    """Not a tensor or a plain value: weights_only=True must refuse it."""


def events(run_dir, type_=None):
    lines = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return [e for e in lines if type_ is None or e["type"] == type_]


def micro_spec(steps=6, **studio):
    cfg = micro_train_config(**{"checkpoint_every_steps": 3, "sample_every_steps": 6, **studio})
    cfg["n_sample"] = 4
    return train_spec(config=cfg, data=DATA, steps=steps, batch_size=8, device="cpu")


def test_training_writes_run_directory_events_checkpoints_and_samples(workspace):
    run = create_job(workspace, micro_spec())
    assert execute(run, workspace, handle_signals=False) == "done"
    statuses = [e["status"] for e in events(run, "status")]
    assert statuses == ["running", "done"]
    steps = [e["step"] for e in events(run, "metric") if e["key"] == "loss/train"]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert [s for s, _ in list_checkpoints(run)] == [3, 6]
    assert (run / "samples" / "step_000006.png").stat().st_size > 100
    assert [e["path"] for e in events(run, "image")] == ["samples/step_000006.png"]
    model = load_model(run / "checkpoints" / "step_000006.pt")
    assert not model.training and model.config.framework == "ddpm"
    raw = load_model(run / "checkpoints" / "step_000006.pt", weights="raw")
    # EMA and raw weights differ after training steps.
    assert any(not torch.equal(a, b) for a, b in zip(model.net.parameters(), raw.net.parameters()))


def test_interrupted_run_resumes_at_its_step_and_matches_an_uninterrupted_one(workspace):
    straight = create_job(workspace, micro_spec(steps=6))
    assert execute(straight, workspace, handle_signals=False) == "done"

    stopped = create_job(workspace, micro_spec(steps=6))

    def stop_after_step_4(event):
        if event["type"] == "metric" and event["key"] == "loss/train" and event["step"] == 4:
            (stopped / STOP_FILE).touch()
    assert execute(stopped, workspace, echo=stop_after_step_4, handle_signals=False) == "cancelled"
    assert [s for s, _ in list_checkpoints(stopped)] == [3, 4]
    (stopped / STOP_FILE).unlink()
    assert execute(stopped, workspace, handle_signals=False) == "done"

    resumed = [e for e in events(stopped, "status") if e["status"] == "running"][-1]
    assert resumed["resumed_from"] == 4
    steps = [e["step"] for e in events(stopped, "metric") if e["key"] == "loss/train"]
    assert steps == [1, 2, 3, 4, 5, 6]  # no gap, no repeat
    a = read_checkpoint(straight / "checkpoints" / "step_000006.pt")
    b = read_checkpoint(stopped / "checkpoints" / "step_000006.pt")
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], atol=1e-6, rtol=0)


def test_resume_falls_back_to_the_previous_intact_checkpoint_when_the_latest_is_damaged(workspace, capfd):
    run = create_job(workspace, micro_spec(steps=6))
    assert execute(run, workspace, handle_signals=False) == "done"
    latest = run / "checkpoints" / "step_000006.pt"
    latest.write_bytes(latest.read_bytes()[:50_000])                  # torn, as by a crash mid-copy
    spec = yaml.safe_load((run / "spec.yaml").read_text())
    spec["options"]["steps"] = 9
    (run / "spec.yaml").write_text(yaml.safe_dump(spec))
    capfd.readouterr()
    assert execute(run, workspace, handle_signals=False) == "done"     # it stopped with the damaged file's error
    assert [e.get("resumed_from") for e in events(run, "status") if e["status"] == "running"] == [None, 3]
    assert f"checkpoint step_000006.pt cannot be loaded (Checkpoint {latest} is damaged" in capfd.readouterr().out
    assert [s for s, _ in list_checkpoints(run)] == [3, 6, 9]
    assert (run / "checkpoints" / "step_000006.pt.damaged").is_file()
    assert read_checkpoint(latest)["step"] == 6
    losses = [e["step"] for e in events(run, "metric") if e["key"] == "loss/train"]
    assert losses == [1, 2, 3, 4, 5, 6, 4, 5, 6, 7, 8, 9]             # steps 4-6 again, replacing the old points


def test_a_run_whose_every_checkpoint_is_damaged_fails_and_sets_none_aside(workspace):
    run = create_job(workspace, micro_spec(steps=3))
    assert execute(run, workspace, handle_signals=False) == "done"
    only = run / "checkpoints" / "step_000003.pt"
    only.write_bytes(b"not a checkpoint")
    spec = yaml.safe_load((run / "spec.yaml").read_text())
    spec["options"]["steps"] = 6
    (run / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert execute(run, workspace, handle_signals=False) == "failed"
    assert events(run, "status")[-1]["error"].startswith(
        f"Run {run.name} cannot resume: no checkpoint of it loads (the newest, step_000003.pt: Checkpoint {only} is "
        "damaged or not a PyTorch file")
    assert only.is_file()


def test_refused_inputs_leave_no_failed_run_behind(tmp_path, capsys):
    from ddae_core.cli import main as ddae

    ws = tmp_path / "ws"
    (tmp_path / "empty" / "cats").mkdir(parents=True)                  # a class folder without images
    assert ddae(["train", "--preset", "tiny-ddpm", "--data", f"folder:{tmp_path / 'empty'}", "--steps", "1",
                 "--workspace", str(ws)]) == 2
    assert capsys.readouterr().err.startswith(f"error: data: Folder {tmp_path / 'empty'} has no images in class "
                                              "subfolders; expected")
    junk = tmp_path / "model_800.pth"
    junk.write_bytes(b"junk\n")
    assert ddae(["import", str(junk), "--config", str(preset_path("ddpm-cifar10")), "--workspace", str(ws)]) == 2
    assert capsys.readouterr().err == (f"error: Checkpoint {junk} is damaged or not a PyTorch file (KeyError); "
                                       "re-save or re-download it.\n")
    assert list((ws / "runs").iterdir()) == []


def test_loss_falls_over_a_short_run(workspace):
    run = create_job(workspace, micro_spec(steps=40, checkpoint_every_steps=40, sample_every_steps=40))
    assert execute(run, workspace, handle_signals=False) == "done"
    losses = [e["value"] for e in events(run, "metric") if e["key"] == "loss/train"]
    assert sum(losses[-8:]) / 8 < 0.8 * sum(losses[:4]) / 4


def test_linear_lr_decay_falls_towards_zero_at_the_last_step_after_warm_up(workspace):
    run = create_job(workspace, micro_spec(steps=6, warmup_steps=2, lr_decay="linear", lr=1e-3))
    assert execute(run, workspace, handle_signals=False) == "done"
    lrs = [e["value"] for e in events(run, "metric") if e["key"] == "lr"]
    assert lrs == pytest.approx([5e-4, 1e-3, 1e-3, 7.5e-4, 5e-4, 2.5e-4])
    cfg = micro_config()
    cfg["studio"]["lr_decay"] = "cosine-ish"
    with pytest.raises(ConfigError, match=r"studio.lr_decay: must be one of none, linear"):
        train_spec(config=cfg, data=DATA)


@pytest.mark.parametrize("kwargs, field", [
    ({"lr": -1e-3}, "lr"),
    ({"steps": 0}, "steps"),
    ({"data": "imagenet-22k"}, "data"),
    ({"batch_size": "big"}, "batch_size"),
    ({"minutes": -2}, "minutes"),
    ({"lr": float("inf")}, "lr"),               # trained to all-NaN weights and ended `done`
    ({"minutes": float("inf")}, "minutes"),
    ({"seed": -1}, "seed"),                     # a ValueError traceback from the data sampler
    ({"steps": 10**23}, "steps"),               # "must be a whole number"
])
def test_bad_values_are_refused_with_the_field_named(kwargs, field):
    args = {"config": micro_config(), "data": DATA, "steps": 2, **kwargs}
    with pytest.raises(ConfigError) as err:
        train_spec(**args)
    assert err.value.field == field
    assert "\n" not in str(err.value)


def test_bad_config_fields_are_named():
    cfg = load_config("tiny-ddpm")
    cfg["diffusion"]["n_T"] = 0
    with pytest.raises(ConfigError, match=r"diffusion.n_T: must be at least 1"):
        train_spec(config=cfg, data=DATA)
    cfg = load_config("tiny-ddpm")
    cfg["network"]["n_channels"] = 48
    with pytest.raises(ConfigError, match="multiple of 32"):
        train_spec(config=cfg, data=DATA)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(lrate=float("nan")), "lrate: must be a finite number (got nan)"),
    (lambda c: c.update(ema=float("nan")), "ema: must be a finite number (got nan)"),
    (lambda c: c["network"].update(dropout=float("nan")), "network.dropout: must be a finite number (got nan)"),
    (lambda c: c["studio"].update(lr=float("inf")), "studio.lr: must be a finite number (got inf)"),
    (lambda c: c.update(studio=[1, 2]), "studio: must be a mapping of fields (got [1, 2])"),
    (lambda c: c.update(network=5), "network: must be a mapping of fields (got 5)"),    # built the default
    (lambda c: c["diffusion"].update(n_T=1e300), "diffusion.n_T: must be at most 100000 (got 1e+300)"),
    (lambda c: c["network"].update(image_shape=[3, 2**20, 2**20]), "network.image_shape: must be [3, size, size]"),
])
def test_non_finite_and_impossible_config_values_are_named(edit, message):
    cfg = micro_config()
    edit(cfg)
    with pytest.raises(ConfigError) as err:
        train_spec(config=cfg, data=DATA, steps=2)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_diverging_run_fails_at_its_step_and_keeps_its_last_good_checkpoint(workspace, capsys):
    """A finite but absurd lr (no check can refuse every such value) sends the loss to NaN."""
    run = create_job(workspace, micro_spec(steps=3, checkpoint_every_steps=3))
    assert execute(run, workspace, handle_signals=False) == "done"
    spec = yaml.safe_load((run / "spec.yaml").read_text())
    spec["options"].update(lr=1e30, steps=9)                     # resume it with the lr of a typo
    (run / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert execute(run, workspace, handle_signals=False) == "failed"
    error = events(run, "status")[-1]["error"]
    assert error == ("Training diverged: the loss became nan at step 5, so the run stopped and its last good "
                     "checkpoint (step 3) is kept; lower the learning rate (--lr) or raise the warm-up and train "
                     "again.")
    assert [s for s, _ in list_checkpoints(run)] == [3]                          # no NaN checkpoint after it
    assert capsys.readouterr().err == f"error: {error}\n"
    losses = [(e["step"], e["value"]) for e in events(run, "metric") if e["key"] == "loss/train"]
    assert [s for s, _ in losses] == [1, 2, 3, 4] and all(v is not None for _, v in losses)


def test_a_checkpoint_with_nan_weights_is_refused_not_evaluated(workspace, capsys):
    """Such a model used to probe at 10% and sample a black grid, both reported as normal results."""
    from ddae_core.cli import main as ddae

    run = create_job(workspace, micro_spec(steps=3, checkpoint_every_steps=3, sample_every_steps=3))
    assert execute(run, workspace, handle_signals=False) == "done"
    path = run / "checkpoints" / "step_000003.pt"
    state = read_checkpoint(path)
    next(iter(state["ema"].values())).fill_(float("nan"))
    atomic_torch_save(state, path)
    with pytest.raises(CheckpointError, match=r"holds NaN or infinite weights \(its training diverged\)"):
        load_model(path)
    assert ddae(["sample", "--run", run.name, "--n", "4", "--steps", "2", "--workspace", str(workspace)]) == 1
    assert f"error: Checkpoint {path} holds NaN or infinite weights" in capsys.readouterr().err


def test_a_nan_metric_is_kept_as_a_null_point_not_dropped(tmp_path):
    from ddae_core.engine.reporting import Reporter

    reporter = Reporter(tmp_path)
    reporter.report("align/out_6", float("nan"), 3)
    reporter.report("align/out_6", float("inf"), 4)
    reporter.close()
    assert [(e["step"], e["value"]) for e in events(tmp_path, "metric")] == [(3, None), (4, None)]


def test_cli_stops_before_any_work_with_one_sentence(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_type: DDPM\ndiffusion: {n_T: 0\n")
    out = subprocess.run([sys.executable, "-m", "ddae_core.cli", "train", "--config", str(bad),
                          "--workspace", str(tmp_path / "ws")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0 and "not valid YAML" in out.stderr
    assert not (tmp_path / "ws" / "runs").exists() or not list((tmp_path / "ws" / "runs").iterdir())
    out = subprocess.run([sys.executable, "-m", "ddae_core.cli", "train", "--preset", "tiny-ddpm", "--lr", "-1",
                          "--workspace", str(tmp_path / "ws")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and out.stderr.startswith("error: lr: must be greater than 0")


def test_dry_run_prints_the_resolved_spec(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ddae_core.cli", "train", "--preset", "tiny-ddpm", "--steps", "300",
                          "--minutes", "2.5", "--dry-run", "--workspace", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "steps: 300" in out.stdout and "model_type: DDPM" in out.stdout
    assert "time_limit_s: 150.0" in out.stdout and "lr_decay: linear" in out.stdout
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_damaged_foreign_and_unsafe_checkpoints_get_one_sentence(tmp_path):
    good = need(FIXTURES / "DDPM_ddpm_ch32.pth")
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(good.read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match="damaged or not a PyTorch file"):
        load_model(damaged, FIXTURES / "DDPM_ddpm_ch32.yaml")

    unsafe = tmp_path / "unsafe.pth"
    torch.save({"model": Payload()}, unsafe)
    with pytest.raises(CheckpointError, match="other than tensors"):
        load_model(unsafe, FIXTURES / "DDPM_ddpm_ch32.yaml")

    # The DDPM++ checkpoint against the DDPM config: another architecture.
    with pytest.raises(CheckpointError, match="different architecture"):
        load_model(FIXTURES / "EDM_ddpmpp_ch32.pth", FIXTURES / "DDPM_ddpm_ch32.yaml")

    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing.pth")
    copy = tmp_path / "model_800.pth"
    copy.write_bytes(good.read_bytes())
    with pytest.raises(CheckpointError, match="carries no config"):
        load_model(copy)
    raw = load_model(copy, FIXTURES / "DDPM_ddpm_ch32.yaml", weights="raw")
    ema = load_model(copy, FIXTURES / "DDPM_ddpm_ch32.yaml")
    assert any(not torch.equal(a, b) for a, b in zip(raw.net.parameters(), ema.net.parameters()))
    with pytest.raises(UserError):
        load_model(copy, FIXTURES / "DDPM_ddpm_ch32.yaml", weights="best")


def test_atomic_save_keeps_the_old_file_when_a_write_fails(tmp_path):
    path = tmp_path / "ckpt.pt"
    atomic_torch_save({"step": 1, "w": torch.ones(3)}, path)

    class Exploding:
        def __reduce__(self):
            raise OSError(28, "No space left on device")
    with pytest.raises(OSError):
        atomic_torch_save({"step": 2, "bad": Exploding()}, path)
    assert read_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_presets_validate():
    for name in ("tiny-ddpm", "tiny-edm", "ddpm-cifar10", "edm-ddpmpp-aug-cifar10"):
        spec = train_spec(config=preset_path(name), data=DATA, steps=1)
        assert spec["options"]["lr"] > 0 and spec["config"]["model_type"] in ("DDPM", "EDM")


def _demo(tmp_path, *extra):
    return subprocess.run([sys.executable, "-m", "ddae_core.cli", "demo", "--minutes", "0.05", "--probe-images", "64",
                           "--data", DATA, "--device", "cpu", "--workspace", str(tmp_path), *extra],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)


def _kinds(ws):
    return sorted(p.name.split("-")[2] for p in (ws / "runs").iterdir())


def test_demo_without_the_example_trains_samples_and_probes_its_own_run(tmp_path):
    out = _demo(tmp_path, "--no-example")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "t=101" in out.stdout and "out_12" in out.stdout
    assert "Best layer x noise cell:" in out.stdout and "raw pixels" in out.stdout
    assert _kinds(tmp_path) == ["probe", "train"]
    assert list((tmp_path / "runs").glob("*-train-*/samples/step_*.png"))


@pytest.mark.skipif("shapes" not in examples.available(), reason="no bundled shapes example in this copy")
def test_demo_probes_the_bundled_example_live_and_trains_a_run_of_ones_own(tmp_path):
    out = _demo(tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    info = examples.manifest("shapes")
    train_id, bundled_probe = (r["id"] for r in info["runs"])
    assert f"Imported the bundled example run {train_id}" in out.stdout
    # The example's two runs (and its earlier training stages), the live probe of it, and the user's own run;
    # the bundled CIFAR-10 model's two runs too, for the Classify view.
    earlier = ["train"] * len(info.get("ancestors", []))
    photos = ["probe", "train"] if CLASSIFY_EXAMPLE in examples.available() else []
    assert _kinds(tmp_path) == sorted(["probe", "probe", "train", "train", *earlier, *photos])
    bundled = {r["id"] for name in examples.available() for r in examples.manifest(name)["runs"]}
    live = [p for p in (tmp_path / "runs").glob("*-probe-*") if p.name not in bundled]
    grid = json.loads((live[0] / "grid.json").read_text())
    assert grid["parent_run"] == train_id and grid["protocol"] == "standardized" and grid["baselines"]
    lines = out.stdout.rstrip().splitlines()
    app_line = next(i for i, line in enumerate(lines) if line.startswith("Open them in the app"))
    assert lines[app_line - 2].startswith("raw pixels")          # the result ends with the baselines
    # ... measured by this demo, not the example's shipped cache (measured by older code), and it says so.
    assert grid["baselines"]["cached"] is False and lines[app_line - 2].endswith("baselines measured in this run)")
    assert "What the layers of the bundled model know" in out.stdout
    if photos:
        cifar_train = examples.manifest(CLASSIFY_EXAMPLE)["runs"][0]["id"]
        assert f"Classify view opens on the bundled CIFAR-10 model ({cifar_train}" in lines[app_line + 1]


def test_a_worker_cancelled_while_it_starts_ends_cancelled(workspace):
    import os
    import signal
    import time

    run = create_job(workspace, micro_spec(steps=50))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "ddae_core.worker", str(run)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # the interpreter is up; torch is still importing
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 3  # the worker's exit code for cancelled
    assert events(run, "status")[-1]["status"] == "cancelled"


def test_init_from_starts_from_the_source_weights_with_a_fresh_optimizer_and_schedule(workspace):
    source = create_job(workspace, micro_spec(steps=6))
    assert execute(source, workspace, handle_signals=False) == "done"
    spec = micro_spec(steps=3)
    spec["options"]["lr"] = 1e-12                      # one step barely moves the weights
    spec["parent"] = {"run": source.name, "checkpoint": 6}
    spec["options"]["init_from"] = True
    run = create_job(workspace, spec)
    assert execute(run, workspace, handle_signals=False) == "done"

    assert events(run, "status")[0]["initialised_from"] == 6
    start, after = read_checkpoint(source / "checkpoints" / "step_000006.pt"), read_checkpoint(
        run / "checkpoints" / "step_000003.pt")
    assert after["step"] == 3                                        # its own steps, from 0
    for key in start["model"]:
        torch.testing.assert_close(after["model"][key], start["model"][key], atol=1e-6, rtol=0)
    adam_steps = {int(s["step"]) for s in after["optimizer"]["state"].values()}
    assert adam_steps == {3}                                         # a fresh optimizer, not the source's 6
    # The loss starts where the source left it, far below a fresh network's.
    first = [e["value"] for e in events(run, "metric") if e["key"] == "loss/train"][0]
    fresh = [e["value"] for e in events(source, "metric") if e["key"] == "loss/train"][0]
    assert first < fresh


def test_init_from_refuses_another_network_and_a_missing_step_in_one_sentence(workspace):
    source = create_job(workspace, micro_spec(steps=3))
    assert execute(source, workspace, handle_signals=False) == "done"

    def train(*args):
        return subprocess.run([sys.executable, "-m", "ddae_core.cli", "train", *args, "--steps", "2", "--dry-run",
                               "--workspace", str(workspace)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    out = train("--preset", "tiny-ddpm", "--init-from", source.name)
    assert out.returncode != 0 and "has another network than this config" in out.stderr
    same = workspace / "micro.yaml"
    same.write_text(yaml.safe_dump(micro_config()))
    out = train("--config", str(same), "--init-from", f"{source.name}@99")
    assert out.returncode != 0 and "has no checkpoint at step 99; it has 3" in out.stderr


def test_a_time_budget_fixes_its_schedule_once_so_a_stall_cannot_cut_the_lr(tmp_path):
    """The schedule's end is estimated while the budget's first share passes, then fixed: a stall afterwards
    (20 minutes of a 120-minute budget once cut the lr by 36% at one step) changes nothing; far behind the
    budget the run stops where it is."""
    from ddae_core.engine.distributed import DistContext
    from ddae_core.engine.reporting import Reporter
    from ddae_core.engine.training import Trainer, budget_calibration_s

    trainer = Trainer.__new__(Trainer)       # the budget logic alone: no model needed to follow a clock
    trainer.step, trainer.total_steps, trainer.schedule_steps = 0, 10**6, None
    trainer.dist, trainer.reporter = DistContext(), Reporter(tmp_path)
    budget = 7200.0
    assert budget_calibration_s(budget) == 120.0
    for second in range(1, 121):             # 10 steps a second while calibrating
        trainer.step = 10 * second
        trainer.follow_time_budget(budget, float(second), 0, 10**6)
    fixed = trainer.schedule_steps
    assert fixed == trainer.total_steps == 72000
    trainer.step += 1
    trainer.follow_time_budget(budget, 120.0 + 1200.0, 0, 10**6)     # a 20-minute stall
    assert trainer.total_steps == fixed
    trainer.follow_time_budget(budget, budget * 1.2, 0, 10**6)        # hopelessly behind: stop here
    assert trainer.total_steps == trainer.step < fixed
    reported = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["value"] for e in reported if e.get("key") == "schedule/total_steps"] == [fixed]


def test_a_time_budget_run_reports_its_schedule_and_ends_its_lr_there(workspace):
    spec = micro_spec(steps=10**6, checkpoint_every_steps=10**6, sample_every_steps=10**6, log_every_steps=1,
                      lr_decay="linear", warmup_steps=2)
    spec["options"]["time_limit_s"] = 6.0
    run = create_job(workspace, spec)
    assert execute(run, workspace, handle_signals=False) == "done"
    metrics = events(run, "metric")
    fixed = [int(e["value"]) for e in metrics if e["key"] == "schedule/total_steps"]
    last_step = max(e["step"] for e in metrics if e["key"] == "loss/train")
    assert len(fixed) == 1 and last_step == fixed[0]
    lrs = [e["value"] for e in metrics if e["key"] == "lr"]
    assert lrs[-1] < 0.1 * max(lrs)          # the linear decay reached (nearly) zero at the fixed last step
    assert read_checkpoint(list_checkpoints(run)[-1][1])["schedule_steps"] == fixed[0]
