"""The shared noise axis: log-SNR of each family's noise index, held against the engine's own schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ddae_core.engine.config import parse_model_config
from ddae_core.engine.diffusion import DDPM, EDM
from ddae_core.engine.evaluation.grid_axes import noise_axis_json, placement_of, tap_order
from ddae_core.engine.evaluation.noise_axis import NoiseAxis, axis_of, index_range, log_snr, relative_depths
from tests.fixtures import micro_config

DDPM_PARAMS = {"n_T": 1000, "betas": (1e-4, 0.02)}
EDM_PARAMS = {"sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0, "steps": 18}


def test_ddpm_first_step_is_log_of_alphabar_over_beta():
    # t=1 with beta_1 = 1e-4: alphabar = 0.9999, so SNR = 0.9999 / 0.0001 = 9999.
    assert log_snr("ddpm", DDPM_PARAMS, 1) == pytest.approx(math.log(9999), rel=1e-12)


@pytest.mark.parametrize("n_t, betas", [(1000, (1e-4, 0.02)), (128, (1e-4, 0.02)), (50, (5e-4, 0.05))])
def test_ddpm_matches_the_engines_alphabar(n_t, betas):
    ddpm = DDPM(n_T=n_t, betas=betas)
    params = {"n_T": n_t, "betas": betas}
    for t in sorted({1, 2, 11, n_t // 4, n_t // 2, n_t}):
        alphabar = float(ddpm.train["alphabar"][t])                       # float32, as the official code
        expected = math.log(alphabar / (1 - alphabar))
        # float32 alphabar near 1 keeps 1 - alphabar to ~6e-8 absolute: the largest error is at t = 1.
        assert log_snr("ddpm", params, t) == pytest.approx(expected, abs=2e-3), t
        assert log_snr("ddpm", params, t) == pytest.approx(-2 * math.log(ddpm.sigma_equivalent(t)), abs=2e-3)


def test_edm_is_minus_two_log_sigma_of_the_engines_index_grid():
    edm = EDM()
    for k in range(1, 19):
        assert log_snr("edm", EDM_PARAMS, k) == pytest.approx(-2 * math.log(edm.sigma(k)), rel=1e-6, abs=1e-6)
    assert log_snr("edm", EDM_PARAMS, 1) == pytest.approx(-2 * math.log(0.002), rel=1e-6)    # sigma_min
    assert log_snr("edm", EDM_PARAMS, 18) == pytest.approx(-2 * math.log(80.0), rel=1e-6)    # sigma_max
    other = EDM(sigma_min=0.01, sigma_max=40, rho=5)
    params = {"sigma_min": 0.01, "sigma_max": 40, "rho": 5, "steps": 18}
    assert log_snr("edm", params, 7) == pytest.approx(-2 * math.log(other.sigma(7)), abs=1e-6)  # float32 ends


def test_dit_is_zero_indexed_on_its_own_linear_schedule():
    # DiT's definition (its gaussian_diffusion): 1000 linear betas 1e-4..0.02 in float64, t = 0..999.
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    alphas_cumprod = np.cumprod(1 - betas)
    dit = axis_of("dit", {})
    for t in (0, 1, 120, 121, 500, 999):
        expected = math.log(alphas_cumprod[t] / (1 - alphas_cumprod[t]))
        assert dit.log_snr(t) == pytest.approx(expected, rel=1e-9, abs=1e-9)
        assert dit.log_snr(t) == pytest.approx(log_snr("ddpm", DDPM_PARAMS, t + 1), rel=1e-12)
    assert index_range("dit", dit.settings) == (0, 999)
    with pytest.raises(ValueError, match="t 1000 is outside 0..999 for DiT"):
        dit.log_snr(1000)


@pytest.mark.parametrize("family, params", [("ddpm", DDPM_PARAMS), ("edm", EDM_PARAMS),
                                            ("dit", {"n_T": 1000, "betas": (1e-4, 0.02)})])
def test_log_snr_falls_strictly_as_the_index_rises(family, params):
    lo, hi = index_range(family, params)
    values = [log_snr(family, params, i) for i in range(lo, hi + 1)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert all(math.isfinite(v) for v in values)


def test_an_index_outside_the_schedule_is_refused_in_words():
    with pytest.raises(ValueError, match="t 0 is outside 1..1000 for DDPM"):
        log_snr("ddpm", DDPM_PARAMS, 0)
    with pytest.raises(ValueError, match="sigma index 19 is outside 1..18 for EDM"):
        log_snr("edm", EDM_PARAMS, 19)
    with pytest.raises(ValueError, match="unknown diffusion family 'vp'"):
        log_snr("vp", DDPM_PARAMS, 1)


def test_the_axis_round_trips_through_grid_json_and_refuses_garbage():
    for framework in ("ddpm", "edm"):
        cfg = parse_model_config(micro_config(framework))
        stored = noise_axis_json(cfg)
        axis = NoiseAxis.from_json(stored)
        assert axis == axis_of(framework, cfg.diffusion) and axis.family == framework
        assert axis.to_json() == stored
    assert NoiseAxis.from_json(None) is None
    assert NoiseAxis.from_json({"family": "ddpm"}) is None                  # no schedule: index only
    assert NoiseAxis.from_json({"family": "ddpm", "n_T": "many", "betas": [1e-4, 0.02]}) is None
    assert NoiseAxis.from_json({"family": "karras"}) is None
    assert axis_of("ddpm", {"n_T": 1000, "betas": (1e-4, 0.02)}).describe(11) == \
        f"t=11, log-SNR {log_snr('ddpm', DDPM_PARAMS, 11):.3g}"
    assert axis_of("edm", {"sigma_min": 0.002, "sigma_max": 80, "rho": 7}).describe(1).startswith("sigma index 1,")


def test_relative_depth_counts_in_the_networks_tap_order():
    cfg = parse_model_config(micro_config("ddpm"))
    taps = tap_order(cfg)                      # two levels of one block: enc_1, enc_2, mid, out_1..out_4
    assert taps == ["enc_1", "enc_2", "mid", "out_1", "out_2", "out_3", "out_4"]
    depths, basis = relative_depths(["out_1", "out_4", "features"], taps)
    assert basis == "network" and depths == {"out_1": pytest.approx(4 / 7), "out_4": 1.0}
    depths, basis = relative_depths([f"layer-{i}" for i in range(4)], None)
    assert basis == "grid" and depths["layer-0"] == 0.25 and depths["layer-3"] == 1.0


def test_placement_comes_from_grid_json_else_the_runs_config_else_index_only():
    config = micro_config("edm")
    cfg = parse_model_config(config)
    saved = {"framework": "edm", "noise_axis": noise_axis_json(cfg), "tap_order": tap_order(cfg)}
    from_grid = placement_of(saved, None)
    from_spec = placement_of({"framework": "edm"}, config)        # a grid.json saved before these fields
    assert from_grid == from_spec and from_grid.noise.family == "edm"
    assert from_grid.log_snrs([3, 4])[4] == pytest.approx(-2 * math.log(EDM().sigma(4)), rel=1e-6)
    nothing = placement_of({"framework": "edm"}, None)
    assert nothing.noise is None and nothing.log_snrs([3]) == {} and nothing.depths(["out_1"])[1] == "grid"
    # A config of another family than the grid says is not used for it.
    assert placement_of({"framework": "ddpm"}, config).noise is None
    assert placement_of(None, {"model_type": "nonsense"}).noise is None


@pytest.mark.parametrize("n_t", [1000, 250])
def test_dit_axis_equals_the_engines_dit_schedule(n_t):
    """The axis computes DiT's log-SNR without torch; the engine's schedule (which DiT runs use) must agree, also
    for a shortened schedule, whose betas DiT's code scales by 1000 / n_T."""
    from ddae_core.engine.diffusion.dit import dit_log_snr

    axis = axis_of("dit", {"n_T": n_t, "betas": (1e-4, 0.02)})
    for t in (0, 1, n_t // 2, n_t - 1):
        assert axis.log_snr(t) == pytest.approx(dit_log_snr(t, n_T=n_t), rel=1e-9, abs=1e-9)
