"""The one door (ddae_core.jobs.submit): the CLI and the app submit through it, and meet the same rules."""

from __future__ import annotations

import pytest

from db import NameTaken, Store
from ddae_core.cli import main as ddae
from ddae_core.jobs.submit import submit
from ddae_core.rundir import RunDirError

from .fixtures import MICRO_DATA, micro_train_spec


def _train_args(ws, *extra: str) -> list[str]:
    return ["train", "--preset", "tiny-ddpm", "--data", MICRO_DATA, "--device", "cpu", "--queue",
            "--workspace", str(ws), *extra]


def _folders(ws) -> list[str]:
    return sorted(p.name for p in (ws / "runs").iterdir())


def test_a_taken_name_gets_the_same_refusal_from_the_cli_and_the_app(tmp_path, capsys, qapp):
    from app.launch.feed import Launcher

    ws = tmp_path / "ws"
    assert ddae(_train_args(ws, "--name", "mine")) == 0
    with Store.open(ws) as store:
        first = store.get_run("mine").id
    capsys.readouterr()
    # The CLI: one sentence, nothing written.
    assert ddae(_train_args(ws, "--name", "mine")) == 2
    refusal = f"“mine” is already the name of run {first}; choose another name, such as “mine (2)”."
    assert capsys.readouterr().err == f"error: {refusal}\n"
    assert _folders(ws) == [first]
    # The app's Launcher, a name typed in the form: the same sentence, nothing written.
    with Store.open(ws) as store:
        with pytest.raises(NameTaken) as info:
            Launcher(store).submit(micro_train_spec(name="mine"), name_chosen=True)
        assert str(info.value) == refusal
        assert _folders(ws) == [first] and store.count_runs() == 1
        # Renaming another run to it is refused in the same words.
        other = submit(ws, micro_train_spec(name="other"), store=store)
        with pytest.raises(NameTaken, match="“mine” is already the name of run"):
            store.rename(other, "mine")
        assert store.get_run(other).name == "other"


def test_a_name_the_program_made_up_is_numbered_on_every_path(tmp_path, capsys):
    ws = tmp_path / "ws"
    for _ in range(2):
        assert ddae(_train_args(ws, "--steps", "4")) == 0          # the default name, made up
    with Store.open(ws) as store:
        made_up = submit(ws, micro_train_spec(name=f"tiny-ddpm on {MICRO_DATA}"), name_chosen=False, store=store)
        names = sorted(store.get_run(r).name for r in _folders(ws))
        assert store.get_run(made_up).name == f"tiny-ddpm on {MICRO_DATA} (3)"
    assert names == [f"tiny-ddpm on {MICRO_DATA}", f"tiny-ddpm on {MICRO_DATA} (2)", f"tiny-ddpm on {MICRO_DATA} (3)"]


def test_a_folder_that_cannot_be_queued_is_removed(tmp_path):
    ws = tmp_path / "ws"
    with Store.open(ws) as store:
        kept = submit(ws, micro_train_spec(name="kept"), store=store)
        with pytest.raises(RunDirError, match="A queue priority must be"):
            submit(ws, micro_train_spec(name="too high"), priority=10**12, store=store)
        assert _folders(ws) == [kept] and [r.id for r in store.list_runs()] == [kept]


def test_a_new_folder_with_a_taken_name_is_not_registered(tmp_path):
    from ddae_core.jobs.submit import create_job

    ws = tmp_path / "ws"
    with Store.open(ws) as store:
        submit(ws, micro_train_spec(name="twin"), store=store)
        twin = create_job(ws, micro_train_spec(name="twin"))
        with pytest.raises(NameTaken):
            store.register_run(twin)


def test_ddae_runs_rename_meets_the_same_rule(tmp_path, capsys):
    ws = tmp_path / "ws"
    with Store.open(ws) as store:
        first = submit(ws, micro_train_spec(name="first"), store=store)
        second = submit(ws, micro_train_spec(name="second"), store=store)
    capsys.readouterr()
    assert ddae(["runs", "rename", second, "first", "--workspace", str(ws)]) == 2
    assert capsys.readouterr().err == (f"error: “first” is already the name of run {first}; choose another name, "
                                       "such as “first (2)”.\n")
    assert ddae(["runs", "rename", second, "renamed", "--workspace", str(ws)]) == 0
    with Store.open(ws) as store:
        assert store.get_run(second).name == "renamed"
