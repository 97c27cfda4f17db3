"""NVlabs EDM pickles: parity with EDM's own code (fixture), the import as a run, and nothing ever executed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ddae_core.engine.checkpoint import load_into
from ddae_core.engine.config import parse_model_config
from ddae_core.engine.evaluation.classify import Classifier
from ddae_core.engine.importers import detect_format, source_config, source_state
from ddae_core.engine.model import DDAEModel
from ddae_core.jobs.eval_specs import import_spec, probe_spec
from ddae_core.jobs.specs import create_job, execute

from . import edm_pickles
from .edm_pickles import DATA, source_that_must_not_run

REFERENCE = np.load(DATA / "edm_songunet_small.npz")


@pytest.fixture
def pickle_file(tmp_path):
    marker = tmp_path / "executed"
    path = edm_pickles.write(tmp_path / "edm-small.pkl", edm_pickles.build(source_that_must_not_run(marker)))
    yield path
    assert not marker.exists(), "the pickle's stored source ran"


def studio_model(path) -> DDAEModel:
    config = source_config(path, "edm")
    model = DDAEModel(parse_model_config(config))
    load_into(model, source_state(path, "edm", config), path)
    return model.eval()


def test_converted_network_matches_edm_own_code(pickle_file):
    model = studio_model(pickle_file)
    x, sigma = torch.from_numpy(REFERENCE["x"]), torch.from_numpy(REFERENCE["sigma"])
    acts: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, name=name: acts.__setitem__(name, out))
             for name, m in zip(model.decoder_taps, [b for b in model.net.up if hasattr(b, "res")])]
    with torch.no_grad():
        denoised = model.framework.denoise_at_sigma(model._net_fn, x, sigma)
        for hook in hooks:
            hook.remove()
        c_in = 1 / (0.5 ** 2 + sigma ** 2).sqrt()
        raw = model.net(c_in.reshape(-1, 1, 1, 1) * x, sigma.log() / 4, torch.from_numpy(REFERENCE["augment"]))
    assert (denoised - torch.from_numpy(REFERENCE["denoised"])).abs().max() < 1e-5
    assert (raw - torch.from_numpy(REFERENCE["raw_with_augment"])).abs().max() < 1e-5
    assert len(model.decoder_taps) == 4
    for i, name in enumerate(model.decoder_taps, 1):
        reference = torch.from_numpy(REFERENCE[f"tap_{i}"])
        assert (acts[name] - reference).abs().max() < 1e-5 * max(1.0, reference.abs().max().item()), name


def test_config_follows_the_records(pickle_file):
    config = source_config(pickle_file, "edm")
    network = config["network"]
    assert network["ch_mults"] == [1, 2] and network["is_attn"] == [False, True] and network["augment_dim"] == 9
    assert network["skip_scale"] == pytest.approx(0.5 ** 0.5) and network["norm_eps"] == 1e-6
    assert config["diffusion"] == {"sigma_data": 0.5, "sigma_min": 0.002, "sigma_max": 80.0}
    assert detect_format(pickle_file) == "edm"


def test_imported_pickle_probes_and_classifies_like_a_trained_run(workspace, tmp_path):
    marker = tmp_path / "executed"
    path = edm_pickles.write(tmp_path / "edm-small.pkl", edm_pickles.build(source_that_must_not_run(marker)))
    spec = import_spec(path, data="builtin:shapes?n_train=64&n_test=32")
    assert spec["options"]["format"] == "edm" and spec["config"]["model_type"] == "EDM"
    job = create_job(workspace, spec)
    assert execute(job, workspace, handle_signals=False) == "done"
    probe = create_job(workspace, probe_spec(job, timesteps="4", layers="out_2,out_3", train_limit=32,
                                             test_limit=16, epochs=1, device="cpu"))
    assert execute(probe, workspace, handle_signals=False) == "done"
    grid = json.loads((probe / "grid.json").read_text())
    assert set(grid["accuracy"]["4"]) == {"out_2", "out_3"}
    result = Classifier.from_run(job, device="cpu").predict(torch.rand(1, 3, 16, 16), 4)
    assert abs(float(result.probabilities.sum()) - 1) < 1e-4
    assert not marker.exists()
