"""Grid sweeps: lists and ranges of a setting, their product over seeds, and `ddae train --grid` queueing them."""

from __future__ import annotations

import json

import pytest
import yaml

from db import Store
from ddae_core.cli import main as ddae
from ddae_core.engine.errors import ConfigError
from ddae_core.engine.spec.grid import Axis, grid_points, parse_axis, parse_values, point_label
from ddae_core.jobs.grid_sweep import grid_specs, parse_grid, sweep_tag, train_build
from ddae_core.rundir import read_meta, read_spec

from .fixtures import MICRO_DATA, micro_train_config
from .test_slurm import _log, _status, _until, cluster  # noqa: F401 - `cluster` skips where Slurm is not


def test_a_list_a_whole_range_and_spaced_ranges_give_their_values_in_order():
    assert parse_values("diffusion.n_T", "1000, 512, 256, 64") == (1000, 512, 256, 64)
    assert parse_values("steps", "1..4", "int") == (1, 2, 3, 4)
    assert parse_values("lr", "1e-4..1e-3 x4 log", "float") == (1e-4, 2.154e-4, 4.642e-4, 1e-3)
    assert parse_values("x", "0.1..0.5 x5") == (0.1, 0.2, 0.3, 0.4, 0.5)
    assert parse_values("batch_size", "64..1024 x5 log", "int") == (64, 128, 256, 512, 1024)
    # A list may hold a range; a value given twice is queued once.
    assert parse_values("n", "8, 16..18, 8") == (8, 16, 17, 18)
    # A float field reads whole numbers as floats, a config key keeps what was written.
    assert parse_values("lr", "1, 2", "float") == (1.0, 2.0)
    assert parse_values("model_type", "DDPM, EDM") == ("DDPM", "EDM")


def test_a_choice_field_takes_its_values_or_their_words():
    choices = (("auto", "auto (a GPU if there is one)"), ("cpu", "CPU"), ("cuda", "GPU (CUDA)"))
    assert parse_values("device", "cpu, GPU (CUDA)", "choice", choices) == ("cpu", "cuda")
    with pytest.raises(ConfigError, match=r"^device: has 'tpu', which is not one of its choices \(auto, cpu, cuda\)$"):
        parse_values("device", "cpu, tpu", "choice", choices)


@pytest.mark.parametrize("text, kind, sentence", [
    ("1000, abc, 64", "int", "n: has 'abc', which is not a number;"),
    ("1, 2.5", "int", "n: has '2.5', which is not a whole number"),
    ("1,,2", "auto", "n: has an empty item in '1,,2';"),
    ("1e-4..1e-3", "float", "n: has '1e-4..1e-3': say how many values, as in 1e-4..1e-3 x4"),
    ("1e-4..1e-3 log", "float", "n: has '1e-4..1e-3 log': say how many values, as in 1e-4..1e-3 x4 log"),
    ("5..1", "int", "n: has '5..1', which runs backwards;"),
    ("0..1 x3 log", "float", "n: has '0..1 x3 log': a log range needs both ends above 0"),
    ("1..3 x1", "int", "n: has '1..3 x1', whose count x1 is not a whole number from 2 to 1000"),
    ("a..4", "int", "n: has 'a..4', whose start is not a number"),
    ("1..", "int", "n: has '1..', which is not a range;"),
    ("1..100000", "int", "n: has '1..100000', more than 1000 values;"),
])
def test_a_bad_part_is_named_in_one_sentence(text, kind, sentence):
    with pytest.raises(ConfigError) as info:
        parse_values("n", text, kind)
    assert str(info.value).startswith(sentence)
    assert "\n" not in str(info.value)


def test_the_product_has_the_first_axis_outermost_and_seeds_innermost():
    axes = [parse_axis("diffusion.n_T=1000,64"), parse_axis("lr=1e-4,1e-3")]
    points = grid_points(axes, seeds=2, first_seed=5)
    assert len(points) == 8
    assert points[:3] == [{"diffusion.n_T": 1000, "lr": 1e-4, "seed": 5}, {"diffusion.n_T": 1000, "lr": 1e-4, "seed": 6},
                          {"diffusion.n_T": 1000, "lr": 1e-3, "seed": 5}]
    assert points[-1] == {"diffusion.n_T": 64, "lr": 1e-3, "seed": 6}
    assert point_label(points[-1]) == "n_T=64, lr=0.001, seed=6"
    assert grid_points([]) == [{}]                         # no grid: the one run as it is


def test_a_grid_refuses_a_repeated_key_seeds_twice_and_too_many_runs():
    with pytest.raises(ConfigError, match="^lr: is given two grids"):
        grid_points([Axis("lr", (1.0,)), Axis("lr", (2.0,))])
    with pytest.raises(ConfigError, match="^seeds: cannot go with a list of seeds"):
        grid_points([Axis("seed", (1, 2))], seeds=2)
    with pytest.raises(ConfigError, match="^grid: makes 1024 runs, more than 1000"):
        grid_points([Axis("a", tuple(range(32))), Axis("b", tuple(range(32)))])
    with pytest.raises(ConfigError, match="is not KEY=VALUES"):
        parse_axis("diffusion.n_T 1000,64")


def test_grid_keys_are_options_of_a_number_or_a_choice_or_config_keys_of_a_train_job():
    assert [a.values for a in parse_grid("train", ["steps=1..2", "device=cpu,cuda"])] == [(1, 2), ("cpu", "cuda")]
    with pytest.raises(ConfigError, match="^name: takes one value, not a grid"):
        parse_grid("train", ["name=a,b"])
    with pytest.raises(ConfigError, match="^speed: is not an option of a train job; a config key is written"):
        parse_grid("train", ["speed=1,2"])
    with pytest.raises(ConfigError, match="^diffusion.n_T: is a config key, which only a train job has"):
        parse_grid("probe", ["diffusion.n_T=1,2"])


def _micro_values(**extra) -> dict:
    return {"data": MICRO_DATA, "steps": 2, "batch_size": 16, "device": "cpu", "gpus": 0, "data_limit": 64, **extra}


def test_each_point_is_a_validated_spec_named_after_its_values():
    build = train_build(micro_train_config(), "micro")
    specs = grid_specs(build, "train", _micro_values(seed=3), [parse_axis("diffusion.n_T=1000,64")], seeds=2)
    assert [s["name"] for s in specs] == [f"micro on {MICRO_DATA} [n_T={t}, seed={seed}]"
                                          for t in (1000, 64) for seed in (3, 4)]
    assert [(s["config"]["diffusion"]["n_T"], s["options"]["seed"]) for s in specs] == \
        [(1000, 3), (1000, 4), (64, 3), (64, 4)]
    # A misspelt config key would train the preset's value under the grid's name: refused.
    with pytest.raises(ConfigError, match=r"^diffusion.nT: is not a setting of this config \(its keys there: betas, "):
        grid_specs(build, "train", _micro_values(), [parse_axis("diffusion.nT=1000,64")])
    with pytest.raises(ConfigError, match=r"^seeds: must be a whole number, at least 1 \(got 0\)$"):
        grid_specs(build, "train", _micro_values(), [], seeds=0)
    # A value the option's own check refuses is refused before any run is made.
    with pytest.raises(ConfigError, match="^steps: must be at least 1"):
        grid_specs(build, "train", _micro_values(), [parse_axis("steps=0,2")])


def test_a_tag_is_one_word():
    assert sweep_tag("T ablation, CPU") == "sweep:T-ablation-CPU"
    with pytest.raises(ConfigError, match="^grid_name: must hold a letter"):
        sweep_tag(" , ")


def test_ddae_train_grid_queues_every_point_tagged_with_the_sweep(tmp_path, capsys):
    ws = tmp_path / "ws"
    args = ["train", "--preset", "tiny-ddpm", "--data", MICRO_DATA, "--device", "cpu", "--steps", "2",
            "--grid", "diffusion.n_T=1000,64", "--grid", "batch_size=8,16", "--seeds", "2", "--workspace", str(ws)]
    # Without --queue: one sentence, nothing written.
    assert ddae(args) == 2
    assert "A grid of 8 runs needs --queue" in capsys.readouterr().err
    assert not (ws / "runs").exists() or not any((ws / "runs").iterdir())
    assert ddae([*args, "--queue", "--grid-name", "T and batch"]) == 0
    out = capsys.readouterr().out
    assert "queued sweep T and batch (8 runs, tag sweep:T-and-batch)" in out
    with Store.open(ws) as store:
        runs = store.list_runs(tag="sweep:T-and-batch")
        assert len(runs) == 8 and {r.status for r in runs} == {"queued"}
        queued = {e.run for e in store.queued_jobs()}
    assert {r.id for r in runs} == queued
    points = sorted((read_spec(ws / "runs" / r.id)["config"]["diffusion"]["n_T"],
                     read_spec(ws / "runs" / r.id)["options"]["batch_size"],
                     read_spec(ws / "runs" / r.id)["options"]["seed"]) for r in runs)
    assert points == sorted((t, b, s) for t in (1000, 64) for b in (8, 16) for s in (0, 1))
    assert json.loads(json.dumps(read_meta(ws / "runs" / runs[0].id)))["tags"] == ["sweep:T-and-batch"]


def test_a_bad_grid_on_the_cli_is_one_sentence_and_queues_nothing(tmp_path, capsys):
    ws = tmp_path / "ws"
    code = ddae(["train", "--preset", "tiny-ddpm", "--data", MICRO_DATA, "--grid", "diffusion.n_T=1000,,64",
                 "--queue", "--workspace", str(ws)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: diffusion.n_T: has an empty item in '1000,,64';") and err.count("\n") == 1
    assert not (ws / "runs").exists() or not any((ws / "runs").iterdir())



@pytest.mark.slurm
def test_a_sweep_on_a_slurm_profile_goes_as_one_job_array(cluster, tmp_path):
    """Where Slurm runs (CI's test cluster), the grid's runs become the elements of one array job; elsewhere
    the `cluster` fixture skips, naming what is missing."""
    from ddae_core.jobs.cluster import read_slurm
    from ddae_core.jobs.scheduler import Scheduler

    store = cluster
    workspace = store.workspace
    config = tmp_path / "micro.yaml"
    config.write_text(yaml.safe_dump({**micro_train_config(), "n_sample": 4}))
    assert ddae(["train", "--config", str(config), "--data", MICRO_DATA, "--device", "cpu", "--steps", "2",
                 "--seeds", "2", "--grid-name", "on-slurm", "--cluster", "test", "--queue",
                 "--workspace", str(workspace)]) == 0
    runs = [r.id for r in store.list_runs(tag="sweep:on-slurm")]
    assert len(runs) == 2
    with Scheduler(workspace, store, cpu_slots=0, gpus=[]) as scheduler:
        report = scheduler.tick()
        assert sorted(run for run, _ in report.started) == sorted(runs), report
        job_ids = sorted(read_slurm(store.run_dir(r))["job_id"] for r in runs)
        assert len({job.partition("_")[0] for job in job_ids}) == 1, job_ids          # one array ...
        assert [job.partition("_")[2] for job in job_ids] == ["0", "1"], job_ids     # ... of two elements
        _until(scheduler, lambda: all(_status(store, r) not in ("queued", "running") for r in runs), 300,
               "the array's two trainings to end")
        for run in runs:
            assert _status(store, run) == "done", _log(store, run)[-2000:]
