"""A DiT in the official key layout and a random-init VAE folder imported as a run: probe grids (fast and
dit-official), Classify and fine-tuning end to end, and the one-sentence refusals of a wrong file or folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from ddae_core.engine.checkpoint import load_model
from ddae_core.engine.errors import UserError
from ddae_core.engine.evaluation.classify import Classifier
from ddae_core.engine.model import DiTModel
from ddae_core.jobs.eval_specs import finetune_spec, import_spec, noisy_spec, probe_spec, sample_spec
from ddae_core.jobs.specs import create_job, execute
from ddae_core.rundir import resolve_checkpoint

from .latents_support import save_tiny_vae

FIXTURE = Path(__file__).parent / "data" / "dit_tiny" / "fixture.pt"
DATA = "builtin:shapes?n_train=48&n_test=24"


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """(DiT .pt in the official layout, its --config with the heads no weight says, a tiny VAE folder)."""
    root = tmp_path_factory.mktemp("dit")
    official = torch.load(FIXTURE, weights_only=True)
    checkpoint = root / "DiT-tiny.pt"
    torch.save({k: v.float() for k, v in official["state"].items()}, checkpoint)
    config = root / "heads.yaml"
    config.write_text(yaml.safe_dump({"network": {"num_heads": official["config"]["num_heads"]}}))
    return checkpoint, config, save_tiny_vae(root / "vae")


def imported(workspace: Path, sources) -> Path:
    checkpoint, config, vae = sources
    spec = import_spec(checkpoint, config, vae=vae, data=DATA, fmt="dit")
    job = create_job(workspace, spec)
    assert execute(job, workspace, handle_signals=False) == "done"
    return job


def test_import_reads_the_architecture_from_the_weights(workspace, sources):
    checkpoint, config, vae = sources
    spec = import_spec(checkpoint, config, vae=vae, data=DATA, fmt="dit")
    network = spec["config"]["network"]
    assert network == {"input_size": 8, "patch_size": 2, "in_channels": 4, "hidden_size": 32, "depth": 2,
                       "mlp_ratio": 4.0, "class_dropout_prob": 0.1, "num_classes": 10, "learn_sigma": True,
                       "num_heads": 4}
    assert spec["config"]["vae"] == {"folder": str(vae.resolve()), "downsample": 8}
    assert spec["options"]["format"] == "dit" and "CC-BY-NC" in spec["options"]["licence"]
    assert len(spec["options"]["sha256"]) == 64
    job = imported(workspace, sources)
    model = load_model(resolve_checkpoint(job, "latest")[1])
    assert isinstance(model, DiTModel) and model.resolution == 64 and model.noise_shape == (4, 8, 8)
    official = torch.load(FIXTURE, weights_only=True)
    with torch.no_grad():       # the run's weights are the file's: its forward is the official one
        assert (model.net(official["x"], official["t"], official["y"]) - official["out"]).abs().max() < 1e-5


def test_probe_grid_classify_and_finetune_end_to_end(workspace, sources):
    job = imported(workspace, sources)
    probe = create_job(workspace, probe_spec(job, timesteps="121,500", train_limit=24, test_limit=12, epochs=1,
                                             device="cpu"))
    assert execute(probe, workspace, handle_signals=False) == "done"
    grid = json.loads((probe / "grid.json").read_text())
    assert grid["framework"] == "dit" and grid["layers"] == ["layer-0", "layer-1"]
    assert set(grid["accuracy"]) == {"121", "500"} and grid["timestep_range"] == [0, 999]
    assert "0-indexed" in grid["timestep_convention"]
    assert grid["baselines"]["pixels"]["accuracy"] >= 0 and grid["baselines"]["random_init"]["accuracy"] >= 0

    classifier = Classifier.from_run(job, device="cpu")
    images = torch.rand(2, 3, 64, 64)
    result = classifier.predict(images, 121, noise=torch.randn(2, 4, 8, 8))
    assert torch.allclose(result.probabilities.sum(1), torch.ones(2), atol=1e-4)
    assert result.denoised.shape == result.noisy.shape == (2, 3, 64, 64)     # decoded by the VAE

    tune = create_job(workspace, finetune_spec(job, layer="layer-0", timestep=121, epochs=1, batch_size=12,
                                               train_limit=24, test_limit=12, device="cpu"))
    assert execute(tune, workspace, handle_signals=False) == "done"
    results = json.loads((tune / "finetune.json").read_text())
    assert results["layer"] == "layer-0" and len(results["test_accuracy"]) == 1


def test_dit_official_protocol_reads_the_latent_cache(workspace, sources):
    job = imported(workspace, sources)
    spec = probe_spec(job, protocol="dit-official", latent_copies=2, train_limit=24, test_limit=12, epochs=2,
                      baselines=False, device="cpu")
    assert spec["options"]["timesteps"] == [121] and spec["options"]["layers"] == ["layer-1"]   # the config's cell
    assert spec["options"]["epochs"] == 2
    probe = create_job(workspace, spec)
    assert execute(probe, workspace, handle_signals=False) == "done"
    grid = json.loads((probe / "grid.json").read_text())
    assert grid["protocol"] == "dit-official" and grid["selection"]["on"] == "test"
    caches = list((workspace / "data" / "latents").iterdir())
    assert len(caches) == 1                 # built once; a second probe reads it
    again = create_job(workspace, probe_spec(job, protocol="dit-official", latent_copies=2, train_limit=24,
                                             test_limit=12, epochs=1, baselines=False, device="cpu"))
    assert execute(again, workspace, handle_signals=False) == "done"
    assert list((workspace / "data" / "latents").iterdir()) == caches


def test_official_epochs_follow_the_protocol(workspace, sources):
    job = imported(workspace, sources)
    assert probe_spec(job, protocol="dit-official")["options"]["epochs"] == 30
    assert probe_spec(job)["options"]["epochs"] == 15
    assert probe_spec(job)["options"]["timesteps"] == [41, 81, 121, 161, 201]


def test_refusals_name_what_is_expected(workspace, sources, tmp_path):
    checkpoint, config, vae = sources
    with pytest.raises(UserError, match=r"DiT-XL-2-256x256\.pt.*dl\.fbaipublicfiles\.com.*CC-BY-NC"):
        import_spec(tmp_path / "DiT-XL-2-256x256.pt", vae=vae, fmt="dit")
    foreign = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)
    with pytest.raises(UserError, match=r"not a DiT checkpoint.*DiT-XL-2-256x256\.pt"):
        import_spec(foreign, vae=vae, fmt="dit")
    with pytest.raises(UserError, match="needs its VAE"):
        import_spec(checkpoint, config, fmt="dit")
    with pytest.raises(UserError, match="VAE folder .* does not exist"):
        import_spec(checkpoint, config, vae=tmp_path / "nowhere", fmt="dit")
    with pytest.raises(UserError, match="num_heads"):      # a size of no DiT config: the heads must be given
        import_spec(checkpoint, vae=vae, fmt="dit")
    job = imported(workspace, sources)
    with pytest.raises(UserError, match="dit-official"):
        probe_spec(job, protocol="official")
    with pytest.raises(UserError, match="outside 0..999"):
        probe_spec(job, timesteps="1000")
    with pytest.raises(UserError, match="does not sample from DiT"):
        sample_spec(job)
    with pytest.raises(UserError, match="not DiT's latents"):
        noisy_spec(job)


def test_cli_import_makes_a_run_or_says_what_is_missing(tmp_path, sources, capsys):
    from ddae_core.cli import main as ddae

    checkpoint, config, vae = sources
    ws = tmp_path / "ws"
    assert ddae(["import", "--format", "dit", str(checkpoint), "--config", str(config), "--workspace", str(ws)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--vae DIR" in err and err.count("\n") == 1
    assert ddae(["import", "--format", "dit", str(checkpoint), "--vae", str(vae), "--config", str(config),
                 "--data", DATA, "--workspace", str(ws)]) == 0
    assert "imported as run" in capsys.readouterr().out
    [run] = list((ws / "runs").iterdir())
    assert yaml.safe_load((run / "spec.yaml").read_text())["options"]["format"] == "dit"
    # A Hub name whose folder is already in the workspace is used as it is: nothing is downloaded.
    save_tiny_vae(ws / "data" / "models" / "stabilityai--sd-vae-ft-mse")
    assert ddae(["import", "--format", "dit", str(checkpoint), "--vae", "hf:stabilityai/sd-vae-ft-mse", "--config",
                 str(config), "--data", DATA, "--name", "from the hub's name", "--workspace", str(ws)]) == 0
    spec = yaml.safe_load(next(r for r in (ws / "runs").iterdir() if r != run).joinpath("spec.yaml").read_text())
    assert spec["config"]["vae"]["folder"].endswith("stabilityai--sd-vae-ft-mse")
