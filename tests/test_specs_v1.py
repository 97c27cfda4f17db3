"""A spec.yaml of each kind as the release before the typed specs wrote it (tests/data/specs_v1, written by that
release's spec functions) still validates into its kind's model, and a train and a probe run from them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from ddae_core.engine.reporting import STOP_FILE
from ddae_core.engine.spec.run_spec import SPECS, parse_spec
from ddae_core.jobs.specs import execute
from ddae_core.rundir import list_checkpoints

V1 = Path(__file__).parent / "data" / "specs_v1"
KINDS = ("train", "probe", "align-uniform", "noisy-classifier", "finetune", "sample", "fid", "import")


def raw(kind: str) -> dict:
    return yaml.safe_load((V1 / f"{kind}.yaml").read_text())


@pytest.mark.parametrize("kind", KINDS)
def test_a_v1_spec_validates_into_its_kinds_model_with_every_value_kept(kind):
    spec = parse_spec(raw(kind))
    assert type(spec) is SPECS[kind] and spec.kind == kind
    for key, value in raw(kind)["options"].items():
        assert getattr(spec.options, key) == value, key
    assert spec.device.request == raw(kind)["device"]["request"]


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "resources" / "examples").glob("*/*/spec.yaml")),
                         ids=lambda p: p.parent.name)
def test_the_bundled_example_runs_specs_from_an_older_release_validate(path):
    spec = parse_spec(yaml.safe_load(path.read_text()))
    assert type(spec) is SPECS[spec.kind] and spec.options.seed is not None


def test_a_v1_spec_of_another_kind_is_refused_in_one_sentence():
    from ddae_core.engine.errors import UserError

    with pytest.raises(UserError, match="Run kind 'paint' cannot be executed"):
        parse_spec({**raw("sample"), "kind": "paint"})
    with pytest.raises(UserError, match=r"spec.yaml of run .*options\.\w+"):
        parse_spec({**raw("train"), "options": {**raw("train")["options"], "colour": "red"}})


def install(workspace: Path, kind: str) -> Path:
    """The v1 spec.yaml as its run's folder in `workspace` (the probe's parent is the v1 train run)."""
    run_dir = workspace / "runs" / raw(kind)["id"]
    run_dir.mkdir(parents=True)
    shutil.copy(V1 / f"{kind}.yaml", run_dir / "spec.yaml")
    return run_dir


def test_v1_train_and_probe_specs_run_and_the_train_resumes(tmp_path):
    train = install(tmp_path, "train")

    def stop_after_checkpoint_2(event):       # the v1 train logs every 5 steps: its loss comes at the end
        if event["type"] == "artifact" and event.get("step") == 2:
            (train / STOP_FILE).touch()
    assert execute(train, tmp_path, echo=stop_after_checkpoint_2, handle_signals=False) == "cancelled"
    (train / STOP_FILE).unlink()
    assert execute(train, tmp_path, handle_signals=False) == "done"
    assert [s for s, _ in list_checkpoints(train)][-1] == 4
    statuses = [json.loads(line) for line in (train / "events.jsonl").read_text().splitlines()]
    assert [e.get("resumed_from") for e in statuses if e.get("status") == "running"][-1] in (2, 3)

    probe = install(tmp_path, "probe")
    assert execute(probe, tmp_path, handle_signals=False) == "done"
    grid = json.loads((probe / "grid.json").read_text())
    assert grid["timesteps"] == [1, 11] and grid["layers"] == ["out_2", "out_3"]


def test_an_older_probe_spelling_and_a_blank_noisy_option_take_their_models_rules():
    from ddae_core.engine.spec.options import NoisyOptions, ProbeOptions

    assert ProbeOptions.model_validate({"protocol": "fast", "standardize": True}).protocol == "standardized"
    assert ProbeOptions.model_validate({"protocol": "official"}).protocol == "official"
    wrn, head = NoisyOptions.model_validate({"baseline": "wrn"}), NoisyOptions.model_validate({"epochs": None})
    assert (wrn.epochs, wrn.lr, head.epochs, head.lr) == (200, 0.1, 15, 1e-3)


def test_nothing_in_the_engine_reads_options_by_string_key():
    import re

    engine = Path(__file__).parents[1] / "ddae_core" / "engine"
    lookup = re.compile(r"opts\[|opts\.get\(|options\.get\(|options\[")
    # engine/spec is where spec.yaml's mapping becomes the typed model (the preset merge reads it there).
    found = [(str(path.relative_to(engine)), line.strip()) for path in sorted(engine.rglob("*.py"))
             if path.parent.name != "spec" for line in path.read_text().splitlines() if lookup.search(line)]
    # protocol_of reads a finished grid.json or a stored spec for the views, not a runner's options.
    assert {where for where, _ in found} <= {"evaluation/protocols.py"} and len(found) == 2
    assert all("protocol" in line or "standardiz" in line for _, line in found)
