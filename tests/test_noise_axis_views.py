"""One noise axis in the views: the Run view's grid toggle, Compare's shared axes and `ddae runs show --axis`,
on two real micro grids of different families (a DDPM UNet and an EDM one), trained and probed here."""

from __future__ import annotations

import contextlib
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
    from ddae_core.jobs.eval_specs import probe_spec
    from ddae_core.jobs.specs import create_job, execute, train_spec
    from tests.fixtures import ingest, micro_config

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
    ingest(ws)
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


@contextlib.contextmanager
def older_grid_json(families: TwoFamilies):
    """The EDM grid's grid.json as written before the noise axis (no noise_axis, no tap_order), restored after."""
    grid_file = families.path / "runs" / families.edm_probe / "grid.json"
    saved = grid_file.read_text()
    old = json.loads(saved)
    del old["noise_axis"], old["tap_order"]
    try:
        grid_file.write_text(json.dumps(old))
        yield
    finally:
        grid_file.write_text(saved)


def test_runs_show_derives_log_snr_from_the_spec_for_an_older_grid_json(families, capsys, tmp_path):
    with older_grid_json(families):
        assert ddae(["runs", "show", families.edm_probe, "--axis", "logsnr", "--workspace", str(families.path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("probe grid (accuracy %"))
    edm = EDM()
    assert lines[at + 1].split() == ["log-SNR"] + [f"{-2 * math.log(edm.sigma(k)):.2f}" for k in (3, 4, 5)]
    assert lines[at + 2].split() == ["sigma", "index", "k=3", "k=4", "k=5"]


def grid_panel(qtbot, store, run_id: str):
    """The Run view's grid panel fed by the Run view's feed, as the live hub would feed it."""
    from app.run.feed import RunFeed
    from app.run.panels import GridPanel

    panel = GridPanel()
    qtbot.addWidget(panel)
    panel.apply(RunFeed(store, run_id).poll())
    return panel


def test_the_run_views_grid_toggles_between_its_index_and_log_snr(qtbot, families, store):
    from app.widgets.noise_rows import AXIS_TIP

    panel = grid_panel(qtbot, store, families.ddpm_train)        # a train run shows its probe's grid
    heatmap, box = panel.heatmap, panel.heatmap.rows.box
    assert box.isEnabled() and box.toolTip() == AXIS_TIP and "evenly spaced" in AXIS_TIP
    ticks = lambda: [text for _, text in heatmap.plot.getAxis("left")._tickLevels[0]]  # noqa: E731
    assert ticks() == ["t=1", "t=11", "t=101"] and heatmap.rows.mode() == "index"
    expected = [log_snr("ddpm", DDPM_SCHEDULE, t) for t in (1, 11, 101)]
    box.setCurrentIndex(box.findData("logsnr"))
    assert heatmap.rows.mode() == "logsnr"
    assert ticks() == [f"{v:.2f}" for v in expected]
    assert heatmap.plot.getAxis("left").labelText == "log-SNR (rows evenly spaced)"
    # Hover names both, whichever labels the rows carry; the cells stay where they were.
    assert heatmap.readout_at(0.5, 1.5).startswith(f"out_1 at t=11 (log-SNR {expected[1]:.2f}): ")
    box.setCurrentIndex(box.findData("index"))
    assert ticks() == ["t=1", "t=11", "t=101"] and heatmap.plot.getAxis("left").labelText == "noise level"


def test_a_grid_with_no_known_schedule_stays_index_only(qtbot, families, store, tmp_path):
    from app.widgets.heatmap import GridHeatmap
    from ddae_core.engine.evaluation.grid_axes import placement_of

    heatmap = GridHeatmap()
    qtbot.addWidget(heatmap)
    heatmap.set_axes([3, 4, 5], ["out_1"], {3: "3 (sigma=0.01)"})
    heatmap.set_noise_axis(placement_of({"framework": "edm"}, None).noise)     # neither grid.json nor spec says
    box = heatmap.rows.box
    assert not box.isEnabled() and box.toolTip().startswith("Index only")
    box.setCurrentIndex(box.findData("logsnr"))
    assert heatmap.rows.mode() == "index" and heatmap.rows.texts()[0] == "3 (sigma=0.01)"
    assert heatmap.readout_at(0.5, 0.5) == "out_1 at 3 (sigma=0.01): not measured yet"


def test_compare_draws_a_ddpm_and_an_edm_grid_on_shared_axes(qtbot, families, store, app_settings):
    from ddae_core.engine.evaluation.grid_axes import along_depth, along_noise

    view = compare_view(qtbot, store)
    compare_runs(view, [families.ddpm_probe, families.edm_probe])
    grids = view.grids
    grids.mode.setCurrentIndex(grids.mode.findData("shared"))
    assert grids.stack.currentWidget() is grids.shared
    shared = grids.shared
    assert [b.id for b in shared.placed()] == [families.ddpm_probe, families.edm_probe]
    assert "DDPM, EDM on shared axes" in shared.message.text()
    # Accuracy against log-SNR, best layer per noise level: each row at its own family's log-SNR.
    edm = EDM()
    by_noise = shared.by_noise.lines
    assert [p[0] for p in by_noise[families.ddpm_probe]] == pytest.approx(
        sorted(log_snr("ddpm", DDPM_SCHEDULE, t) for t in (1, 11, 101)))
    assert [p[0] for p in by_noise[families.edm_probe]] == pytest.approx(
        sorted(-2 * math.log(edm.sigma(k)) for k in (3, 4, 5)), abs=1e-6)
    cells = {(c.timestep, c.layer): c.accuracy for c in store.grid_cells(families.edm_probe)}
    for _, acc, t, _ in by_noise[families.edm_probe]:
        assert acc == max(v for (tt, _), v in cells.items() if tt == t)
    # Each line keeps its family and protocol (these grids ran without baselines, and say so).
    labels = shared.by_noise.labels
    assert labels[families.ddpm_probe].endswith("(DDPM, fast; no baselines)")
    assert labels[families.edm_probe].endswith("(EDM, fast; no baselines)")
    legend = [label.text for _, label in shared.by_noise.legend.items]
    assert legend == [labels[families.ddpm_probe], labels[families.edm_probe]]
    # A chosen relative depth picks each grid's nearest tap; a chosen log-SNR each grid's nearest row.
    shared.by_noise.best.setChecked(False)
    shared.by_noise.slider.setValue(100)
    assert {p[3] for p in shared.by_noise.lines[families.edm_probe]} == {"out_4"}     # depth 1.0: the last tap
    shared.by_depth.best.setChecked(False)
    shared.by_depth.slider.setValue(0)                                                # the lowest log-SNR drawn
    lowest = shared.span()[0]
    assert lowest == pytest.approx(log_snr("ddpm", DDPM_SCHEDULE, 101))              # EDM's k=5 is nearest it
    assert {p[2] for p in shared.by_depth.lines[families.edm_probe]} == {5}
    assert {p[2] for p in shared.by_depth.lines[families.ddpm_probe]} == {101}
    bundle = next(b for b in shared.placed() if b.id == families.ddpm_probe)
    snr = bundle.placement.log_snrs([1, 11, 101])
    depths, basis = bundle.placement.depths(["out_1", "out_2", "out_3", "out_4"])
    ddpm_cells = bundle.finished_cells()
    assert basis == "network"
    assert shared.by_depth.lines[families.ddpm_probe] == along_depth(ddpm_cells, snr, depths, lowest)
    assert shared.by_noise.lines[families.ddpm_probe] == along_noise(ddpm_cells, snr, depths, 1.0)
    assert shared.by_noise.readout_at(*shared.by_noise.lines[families.edm_probe][0][:2]).startswith(
        f"{shared.by_noise.name(families.edm_probe)}: out_4 (depth 1.00) at sigma index 5, log-SNR 3.94")
    # Each run's own heatmap can be read on log-SNR too; their B - A difference warns that indices differ.
    assert grids.heatmaps[families.edm_probe].rows.box.isEnabled()
    assert "different families (DDPM, EDM)" in grids.difference.status.text()


def test_a_grid_saved_before_the_noise_axis_is_placed_from_its_runs_spec(qtbot, families, store):
    with older_grid_json(families):
        panel = grid_panel(qtbot, store, families.edm_probe)
    rows = panel.heatmap.rows
    assert rows.box.isEnabled() and rows.noise.family == "edm"
    assert rows.log_snr[4] == pytest.approx(-2 * math.log(EDM().sigma(4)), abs=1e-6)
