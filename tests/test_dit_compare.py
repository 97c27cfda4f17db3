"""Compare places a UNet's grid and a DiT's grid on one log-SNR axis (issue 25's "done when"): a DDPM micro UNet
trained here and a tiny DiT imported in the official key layout with a random-init VAE, each probed by the fast
protocol, drawn together in Compare's shared axes, each row at its own family's log-SNR."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from ddae_core.engine.evaluation.noise_axis import DIT_SCHEDULE, log_snr
from tests.app_support import app_settings, compare_runs, compare_view  # noqa: F401 - fixture
from tests.gui_fixtures import one_torch_thread

from .latents_support import save_tiny_vae

FIXTURE = Path(__file__).parent / "data" / "dit_tiny" / "fixture.pt"
UNET_DATA = "builtin:shapes?n_train=128&n_test=32"
DIT_DATA = "builtin:shapes?n_train=48&n_test=24"
UNET_T, DIT_T = (1, 11, 101), (0, 121, 500)


@pytest.fixture(scope="module")
def two_backbones(tmp_path_factory):
    from ddae_core.jobs.eval_specs import import_spec, probe_spec
    from ddae_core.jobs.specs import create_job, execute, train_spec
    from tests.fixtures import ingest, micro_config

    root = tmp_path_factory.mktemp("dit_compare")
    ws = root / "ws"
    (ws / "runs").mkdir(parents=True)

    def run(spec) -> str:
        run_dir = create_job(ws, spec)
        assert execute(run_dir, ws, handle_signals=False) == "done", (run_dir / "log.txt").read_text()
        return run_dir.name

    official = torch.load(FIXTURE, weights_only=True)
    checkpoint, heads = root / "DiT-tiny.pt", root / "heads.yaml"
    torch.save({k: v.float() for k, v in official["state"].items()}, checkpoint)
    heads.write_text(yaml.safe_dump({"network": {"num_heads": official["config"]["num_heads"]}}))
    probe = dict(train_limit=24, test_limit=12, epochs=1, device="cpu", baselines=False)
    with one_torch_thread():
        unet = run(train_spec(config=micro_config("ddpm"), data=UNET_DATA, steps=2, batch_size=16, device="cpu",
                              name="unet micro"))
        unet_probe = run(probe_spec(ws / "runs" / unet, timesteps=",".join(map(str, UNET_T)), **probe))
        dit = run(import_spec(checkpoint, heads, vae=save_tiny_vae(root / "vae"), data=DIT_DATA, fmt="dit"))
        dit_probe = run(probe_spec(ws / "runs" / dit, timesteps=",".join(map(str, DIT_T)), **probe))
    ingest(ws)
    return ws, unet_probe, dit_probe


def test_compare_draws_a_unet_grid_and_a_dit_grid_on_the_log_snr_axis(qtbot, two_backbones, app_settings):
    from db import Store

    ws, unet_probe, dit_probe = two_backbones
    with Store.open(ws) as store:
        view = compare_view(qtbot, store)
        compare_runs(view, [unet_probe, dit_probe])
        grids = view.grids
        grids.mode.setCurrentIndex(grids.mode.findData("shared"))
        shared = grids.shared
        assert [b.id for b in shared.placed()] == [unet_probe, dit_probe]
        assert "DDPM, DiT on shared axes" in shared.message.text()
        lines = shared.by_noise.lines
        # Each row sits at its own family's log-SNR: DDPM's 1-indexed t, DiT's 0-indexed t on its own betas.
        assert [p[0] for p in lines[unet_probe]] == pytest.approx(
            sorted(log_snr("ddpm", {"n_T": 1000, "betas": (1e-4, 0.02)}, t) for t in UNET_T))
        assert [p[0] for p in lines[dit_probe]] == pytest.approx(sorted(log_snr("dit", DIT_SCHEDULE, t) for t in DIT_T))
        # DiT's t is DDPM's t + 1 on the same betas: DiT t=0 lands exactly on DDPM t=1.
        assert log_snr("dit", DIT_SCHEDULE, 0) == pytest.approx(log_snr("ddpm", {"n_T": 1000, "betas": (1e-4, 0.02)}, 1))
        cells = {(c.timestep, c.layer): c.accuracy for c in store.grid_cells(dit_probe)}
        for _, acc, t, _ in lines[dit_probe]:
            assert acc == max(v for (tt, _), v in cells.items() if tt == t)
        assert shared.by_noise.labels[dit_probe].endswith("(DiT, fast; no baselines)")
        # Relative depth counts in DiT's own blocks: its last block is depth 1, as the UNet's last tap.
        shared.by_noise.best.setChecked(False)
        shared.by_noise.slider.setValue(100)
        assert {p[3] for p in shared.by_noise.lines[dit_probe]} == {"layer-1"}
