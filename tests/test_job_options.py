"""A job option declared once, as one field of its kind's model, appears in the CLI's --help, in the
validated spec and in the launch form, with the same check everywhere (issue 10)."""

from __future__ import annotations

import pytest

from ddae_core.cli import build_parser
from ddae_core.engine.errors import ConfigError
from ddae_core.engine.spec import options
from ddae_core.engine.spec.fields import option, parse_options
from ddae_core.engine.spec.options import Count, ProbeOptions, TrainOptions
from ddae_core.jobs.eval_specs import probe_spec
from ddae_core.jobs.specs import create_job, train_spec

from .fixtures import MICRO_DATA, micro_config, micro_train_spec


class ToyTrainOptions(TrainOptions):
    toy_steps: Count = option(7, "a toy option only this test declares", label="Toy steps")


class ToyProbeOptions(ProbeOptions):
    toy_heads: Count = option(3, "heads of a toy kind", label="Toy heads")


@pytest.fixture
def toy(monkeypatch):
    """The train and probe kinds with one more field each; nothing else is edited."""
    monkeypatch.setitem(options.MODELS, "train", ToyTrainOptions)
    monkeypatch.setitem(options.MODELS, "probe", ToyProbeOptions)


def _help(command: str, capsys) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_a_new_field_is_a_cli_option_with_its_help_and_default(toy, capsys):
    assert "--toy-steps TOY_STEPS a toy option only this test declares (default: 7)" in _help("train", capsys)
    assert "--toy-heads TOY_HEADS heads of a toy kind (default: 3)" in _help("probe", capsys)
    args = build_parser().parse_args(["train", "--preset", "tiny-ddpm", "--toy-steps", "1e3"])
    assert args.toy_steps == 1000


def test_a_new_field_is_checked_and_kept_in_the_spec(toy, workspace):
    cfg = micro_config()
    assert train_spec(config=cfg, data=MICRO_DATA, steps=2, toy_steps="5")["options"]["toy_steps"] == 5
    assert train_spec(config=cfg, data=MICRO_DATA, steps=2)["options"]["toy_steps"] == 7
    for bad, message in ((0, "must be at least 1 (got 0)"), (2.5, "must be a whole number (got 2.5)"),
                         (float("inf"), "must be a whole number (got inf)")):
        with pytest.raises(ConfigError) as err:
            train_spec(config=cfg, data=MICRO_DATA, steps=2, toy_steps=bad)
        assert str(err.value) == f"toy_steps: {message}"
    parent = create_job(workspace, micro_train_spec())
    assert probe_spec(parent, toy_heads=4)["options"]["toy_heads"] == 4


def test_a_new_field_is_a_form_field_with_its_placeholder(toy, qtbot):
    from app.launch.kinds import KIND, MORE
    from app.launch.view import LaunchForm

    form = LaunchForm(KIND["train"], None)
    qtbot.addWidget(form)
    row = form.rows["toy_steps"]
    assert row.editor.placeholderText() == "7" and row.editor.toolTip() == "A toy option only this test declares"
    assert [f.name for f in dict(KIND["train"].sections)[MORE]] == ["toy_steps"]
    form.set_values(data=MICRO_DATA, steps="2", device="cpu", toy_steps="4")
    assert form.build_spec()["options"]["toy_steps"] == 4
    form.set_values(toy_steps="0")
    assert form.submit() is None
    assert form.error_of("toy_steps") == "Toy steps must be at least 1 (got 0)."

    probe = LaunchForm(KIND["probe"], None)
    qtbot.addWidget(probe)
    assert probe.rows["toy_heads"].editor.placeholderText() == "3"


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_a_non_finite_number_is_refused_in_the_same_words_by_the_spec_and_the_form(value, qtbot):
    from app.launch.kinds import KIND
    from app.launch.view import LaunchForm

    with pytest.raises(ConfigError) as err:
        train_spec(config=micro_config(), data=MICRO_DATA, steps=2, lr=float(value))
    assert str(err.value) == f"lr: must be a finite number (got {float(value)!r})"
    form = LaunchForm(KIND["train"], None)
    qtbot.addWidget(form)
    form.set_values(data=MICRO_DATA, steps="2", lr=value)
    assert form.submit() is None
    assert form.error_of("lr") == f"Learning rate must be a finite number (got {float(value)!r})."


def test_every_kind_has_a_model_and_its_defaults_pass_its_own_checks():
    """A default outside its own range would be refused only when someone typed it."""
    for kind, model in options.MODELS.items():
        defaults = {name: field.default for name, field in model.model_fields.items() if field.default is not None}
        assert parse_options(model, defaults) == model(), kind
