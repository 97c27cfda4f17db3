"""One noise axis in the views: the Run view's grid toggle, Compare's shared axes and `ddae runs show --axis`,
on two real micro grids of different families (a DDPM UNet and an EDM one), trained and probed here."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest

from ddae_core.cli import main as ddae
from ddae_core.engine.diffusion import EDM
from ddae_core.engine.evaluation.noise_axis import log_snr
from tests.app_support import app_settings, compare_runs, compare_view  # noqa: F401 - fixture
from tests.gui_fixtures import one_torch_thread

DATA = "builtin:shapes?n_train=256&n_test=64"
DDPM_SCHEDULE = {"n_T": 1000, "betas": (1e-4, 0.02)}


@dataclass(frozen=True)
class TwoFamilies:
    path: Path
    ddpm_train: str
    ddpm_probe: str          # t = 1, 11, 101 on the decoder taps
    edm_probe: str           # sigma index 3, 4, 5


@pytest.fixture(scope="module")
def families(tmp_path_factory) -> TwoFamilies:
    from db import Ingester, Store
    from ddae_core.jobs.eval_specs import probe_spec
    from ddae_core.jobs.specs import create_job, execute, train_spec
    from tests.fixtures import micro_config

    ws = tmp_path_factory.mktemp("axis_ws") / "ws"
    (ws / "runs").mkdir(parents=True)

    def run(spec) -> Path:
        run_dir = create_job(ws, spec)
        assert execute(run_dir, ws, handle_signals=False) == "done", (run_dir / "log.txt").read_text()
        return run_dir

    with one_torch_thread():
        trains = {}
        for framework in ("ddpm", "edm"):
            cfg = micro_config(framework)
            cfg.setdefault("studio", {}).update({"sample_steps": 2, "checkpoint_every_steps": 4,
                                                 "sample_every_steps": 4})
            cfg["n_sample"] = 4
            trains[framework] = run(train_spec(config=cfg, data=DATA, steps=4, batch_size=16, device="cpu",
                                               name=f"{framework} micro"))
        probe = dict(train_limit=64, test_limit=32, epochs=1, device="cpu", baselines=False)
        ddpm_probe = run(probe_spec(trains["ddpm"], timesteps="1,11,101", **probe))
        edm_probe = run(probe_spec(trains["edm"], timesteps="3,4,5", **probe))
    with Store.open(ws) as store:
        ingester = Ingester(store, ws)
        ingester.acquire()
        try:
            ingester.ingest_once()
        finally:
            ingester.release()
    return TwoFamilies(ws, trains["ddpm"].name, ddpm_probe.name, edm_probe.name)


@pytest.fixture
def store(families):
    from db import Store

    with Store.open(families.path) as s:
        yield s


def test_a_saved_grid_keeps_its_schedule_and_tap_order(families):
    grid = json.loads((families.path / "runs" / families.edm_probe / "grid.json").read_text())
    assert grid["noise_axis"] == {"family": "edm", "sigma_min": 0.002, "sigma_max": 80, "rho": 7, "steps": 18}
    assert grid["tap_order"][-1] == "out_4" and "mid" in grid["tap_order"]
    ddpm = json.loads((families.path / "runs" / families.ddpm_probe / "grid.json").read_text())
    assert ddpm["noise_axis"]["family"] == "ddpm" and ddpm["noise_axis"]["betas"] == [1e-4, 0.02]


def test_runs_show_prints_the_grid_under_log_snr_headers(families, capsys):
    ws = ["--workspace", str(families.path)]
    n_t = json.loads((families.path / "runs" / families.ddpm_probe / "grid.json").read_text())["noise_axis"]["n_T"]
    assert ddae(["runs", "show", families.ddpm_probe, "--axis", "logsnr", *ws]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("probe grid (accuracy %"))
    assert "headed by log-SNR" in lines[at] and "among the network's taps" in lines[at]
    schedule = {"n_T": n_t, "betas": (1e-4, 0.02)}
    assert lines[at + 1].split() == ["log-SNR"] + [f"{log_snr('ddpm', schedule, t):.2f}" for t in (1, 11, 101)]
    assert lines[at + 2].split() == ["t", "t=1", "t=11", "t=101"]
    rows = [line.split() for line in lines[at + 3:] if line.startswith("out_")]
    assert [r[0] for r in rows] == ["out_1", "out_2", "out_3", "out_4"]
    assert [float(r[1]) for r in rows] == [round(d / 7, 2) for d in (4, 5, 6, 7)]   # relative depth in 7 taps
    assert all(len(r) == 5 for r in rows)
    # From the train run: its headline grid; and by index only, the family's own labels.
    assert ddae(["runs", "show", families.ddpm_train, "--axis", "index", *ws]) == 0
    out = capsys.readouterr().out
    assert f"probe grid of {families.ddpm_probe}" in out and "log-SNR" not in out


def test_runs_show_derives_log_snr_from_the_spec_for_an_older_grid_json(families, capsys, tmp_path):
    grid_file = families.path / "runs" / families.edm_probe / "grid.json"
    saved = grid_file.read_text()
    old = json.loads(saved)
    del old["noise_axis"], old["tap_order"]
    try:
        grid_file.write_text(json.dumps(old))
        assert ddae(["runs", "show", families.edm_probe, "--axis", "logsnr", "--workspace", str(families.path)]) == 0
    finally:
        grid_file.write_text(saved)
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("probe grid (accuracy %"))
    edm = EDM()
    assert lines[at + 1].split() == ["log-SNR"] + [f"{-2 * math.log(edm.sigma(k)):.2f}" for k in (3, 4, 5)]
    assert lines[at + 2].split() == ["sigma", "index", "k=3", "k=4", "k=5"]
