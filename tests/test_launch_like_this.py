"""Launch like this (a run's spec back in its form) and grid sweeps from the launch forms, against the CLI's."""

from __future__ import annotations

import pytest

from db import Store
from ddae_core.cli import main as ddae
from ddae_core.rundir import read_meta, read_spec
from tests.app_support import MICRO_DATA, app_settings, micro_overrides, no_leftovers, studio  # noqa: F401

# What create_run stamps on a spec (its id, when and where), which two launches of one spec never share.
STAMPS = ("id", "created", "host")


def _specs(ws, run_ids) -> list[dict]:
    """The runs' specs without their stamps, ordered by name."""
    specs = [{k: v for k, v in read_spec(ws / "runs" / run_id).items() if k not in STAMPS} for run_id in run_ids]
    return sorted(specs, key=lambda s: s["name"])


def test_a_sweep_from_the_form_and_one_from_the_cli_with_the_same_grid_are_the_same_runs(studio, tmp_path, capsys):
    window = studio(run_scheduler=False)
    form = window.launch_view.form("train")
    form.set_values(data=MICRO_DATA, steps="2", device="cpu", lr="1e-4..1e-3 x2 log",
                    grid="diffusion.n_T=1000,64", seeds="2", grid_name="T ablation",
                    sweep_fid_n="0", sweep_probe="11,out_7")
    form.rows["sweep"].editor.setChecked(True)       # each run probes its checkpoints as they are saved
    assert form.count.text() == "Queues 8 runs: lr (2) x n_T (2) x 2 seeds"
    assert form.submit_button.text() == "Queue 8 runs"
    assert form.submit() is not None, form.message.text()
    assert form.message.text() == "Queued 8 runs as one sweep, tagged sweep:T-ablation."
    from_form = window.store.list_runs(tag="sweep:T-ablation")
    assert len(from_form) == 8 and {r.status for r in from_form} == {"queued"}

    cli_ws = tmp_path / "cli"
    assert ddae(["train", "--preset", "tiny-ddpm", "--data", MICRO_DATA, "--steps", "2", "--device", "cpu",
                 "--grid", "lr=1e-4..1e-3 x2 log", "--grid", "diffusion.n_T=1000,64", "--seeds", "2",
                 "--grid-name", "T ablation", "--sweep", "all", "--sweep-fid-n", "0", "--sweep-probe", "11,out_7",
                 "--queue", "--workspace", str(cli_ws)]) == 0
    with Store.open(cli_ws) as store:
        from_cli = store.list_runs(tag="sweep:T-ablation")
    form_specs = _specs(window.store.workspace, [r.id for r in from_form])
    cli_specs = _specs(cli_ws, [r.id for r in from_cli])
    assert [s["name"] for s in form_specs] == [s["name"] for s in cli_specs]
    assert form_specs == cli_specs
    assert {(s["options"]["lr"], s["config"]["diffusion"]["n_T"], s["options"]["seed"]) for s in form_specs} == \
        {(lr, t, seed) for lr in (1e-4, 1e-3) for t in (1000, 64) for seed in (0, 1)}
    assert read_meta(window.store.workspace / "runs" / from_form[0].id)["tags"] == ["sweep:T-ablation"]
    plans = [s["options"]["sweep"] for s in form_specs]
    assert [p["seed"] for p in plans] == [s["options"]["seed"] for s in form_specs]       # each run's own seed
    assert {(p["fid"], p["probe"]["timesteps"][0], p["probe"]["layers"][0]) for p in plans} == {(None, 11, "out_7")}


def test_a_bad_list_is_marked_at_its_field_and_nothing_is_queued(studio):
    window = studio(run_scheduler=False)
    form = window.launch_view.form("train")
    form.set_values(data=MICRO_DATA, steps="2, x")
    assert form.count.text() == ""
    assert form.submit() is None
    assert form.error_of("steps") == "Steps has 'x', which is not a number; write values separated by commas " \
                                     "(1000, 256, 64) or a range (1..4, 1e-4..1e-3 x4 log)."
    form.set_values(steps="2", grid="diffusion.nT=1000,64")
    assert form.submit() is None
    assert form.error_of("grid") == "Config grid: `diffusion.nT` is not a setting of this config (its keys there: " \
                                    "betas, n_T)."
    form.set_values(grid="", seeds="0")
    assert form.submit() is None
    assert form.error_of("seeds") == "Seeds must be at least 1 (got 0)."
    assert window.store.count_runs() == 0


def test_a_choice_field_takes_a_list(studio):
    window = studio(run_scheduler=False)
    form = window.launch_view.form("train")
    form.set_values(data=MICRO_DATA, steps="2", overrides=micro_overrides())
    form.rows["device"].editor.setEditText("cpu, auto")
    assert form.count.text() == "Queues 2 runs: device (2)"
    specs = form.build_specs()
    assert [s["device"]["request"] for s in specs] == ["cpu", "auto"]
    form.rows["device"].editor.setEditText("tpu")
    with pytest.raises(Exception, match="device: must be one of auto, cpu, cuda, or a list of them"):
        form.build_specs()


@pytest.mark.parametrize("kind", ["train", "probe"])
def test_launch_like_this_fills_the_form_that_builds_the_same_spec(studio, kind):
    window = studio(run_scheduler=False)
    train = window.launch_view.form("train")
    train.set_values(data=MICRO_DATA, steps="3", lr="5e-4", batch_size="8", seed="7", device="cpu",
                     overrides=micro_overrides(), checkpoint_every_steps="2", monitor_layers="out_3")
    run_id = train.submit()
    assert run_id is not None, train.message.text()
    if kind == "probe":
        window._refresh_parents()
        probe = window.launch_view.show_kind("probe", run_id)
        probe.set_values(protocol="knn", timesteps="1,11", layers="out_3", train_limit="64", device="cpu")
        run_id = probe.submit()
        assert run_id is not None, [(n, r.error_text) for n, r in probe.rows.items() if r.error_text]
    window.hub.poll()
    original = read_spec(window.store.run_dir(run_id))

    # The Runs view's menu and the Run view's button both ask the window for it.
    window.show_run(run_id)
    window.run_view.header.like_button.click()
    assert window.tabs.currentWidget() is window.launch_view
    form = window.launch_view.form(kind)
    assert window.launch_view.stack.currentWidget() is form
    assert form.message.text().startswith("Filled from run")
    rebuilt = {"parent": None, **form.build_spec()}          # create_run writes a train run's parent as None
    assert {k: v for k, v in rebuilt.items() if k not in STAMPS} == \
        {k: v for k, v in original.items() if k not in (*STAMPS, "queue")}
    # The Runs view's menu item asks the same of the window.
    window.tabs.setCurrentWidget(window.runs_view)
    form.set_values(name="changed")
    window.runs_view.launch_like.emit(run_id)
    assert window.tabs.currentWidget() is window.launch_view and form.values()["name"] is None
    # Queued unchanged, it is the same run under a numbered name.
    again = form.submit()
    assert again is not None and again != run_id
    assert window.store.get_run(again).name == f"{original['name']} (2)"


def test_an_evaluation_form_queues_a_grid_of_its_own_options(studio):
    window = studio(run_scheduler=False)
    train = window.launch_view.form("train")
    train.set_values(data=MICRO_DATA, steps="2", device="cpu", overrides=micro_overrides())
    parent = train.submit()
    window._refresh_parents()
    probe = window.launch_view.show_kind("probe", parent)
    probe.set_values(epochs="1, 2", train_limit="64", device="cpu", grid_name="probe epochs")
    probe.rows["protocol"].editor.setEditText("fast, knn")
    assert probe.count.text() == "Queues 4 runs: protocol (2) x epochs (2)"
    assert "grid" not in probe.rows           # config keys are a train job's; an evaluation reads its parent's
    assert probe.submit() is not None, probe.message.text()
    runs = window.store.list_runs(tag="sweep:probe-epochs")
    specs = [read_spec(window.store.run_dir(r.id)) for r in runs]
    assert sorted((s["options"]["protocol"], s["options"]["epochs"]) for s in specs) == \
        [("fast", 1), ("fast", 2), ("knn", 1), ("knn", 2)]
    assert {s["parent"]["run"] for s in specs} == {parent}
