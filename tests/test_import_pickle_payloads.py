"""Hostile and broken EDM pickles: a payload anywhere a persistence record can hold one runs nothing, and every
refusal is one sentence with no run left behind."""

from __future__ import annotations

import builtins
import pathlib
import pickle
from collections import OrderedDict

import pytest
import torch

from ddae_core.engine.errors import UserError
from ddae_core.jobs.eval_specs import import_spec
from ddae_core.jobs.specs import create_job

from . import edm_pickles
from .edm_pickles import source_that_must_not_run


class WriteFile:
    """Unpickling this writes a file (pathlib.Path.write_text)."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "ran"))


class Exec:
    """Unpickling this runs code (builtins.exec) that writes a file."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


class PayloadParameter:
    """A parameter record whose tensor argument is the payload."""

    def __init__(self, payload):
        self.payload = payload

    def __reduce__(self):
        return (torch._utils._rebuild_parameter, (self.payload, False, OrderedDict()))


def _unet(tree):
    return tree["ema"].meta["state"]["_modules"]["model"].meta["state"]


def _block(tree):
    return _unet(tree)["_modules"]["enc"].__dict__["_modules"]["16x16_block0"].meta["state"]


# Where a persistence record can carry an object: (name, put(tree, payload) -> the tree to pickle).
PLACES = {
    "whole pickle": lambda tree, p: p,
    "another top-level entry": lambda tree, p: {**tree, "loss_fn": p},
    "a dict key": lambda tree, p: {**tree, "dataset_kwargs": {p: 1}},
    "meta module_src": lambda tree, p: tree["ema"].meta.update(module_src=p) or tree,
    "meta class_name": lambda tree, p: tree["ema"].meta.update(class_name=p) or tree,
    "meta state": lambda tree, p: tree["ema"].meta.update(state=p) or tree,
    "meta itself": lambda tree, p: {**tree, "ema": edm_pickles.Persistent(p)},
    "a parameter": lambda tree, p: _block(tree)["_modules"]["conv0"].meta["state"]["_parameters"].update(weight=p)
    or tree,
    "a parameter's tensor": lambda tree, p: _block(tree)["_modules"]["conv0"].meta["state"]["_parameters"].update(
        weight=PayloadParameter(p)) or tree,
    "a buffer": lambda tree, p: _block(tree)["_buffers"].update(extra=p) or tree,
    "a child module": lambda tree, p: _block(tree)["_modules"].update(norm0=p) or tree,
    "constructor arguments": lambda tree, p: _unet(tree)["_init_kwargs"].update(channel_mult=p) or tree,
    "a plain attribute": lambda tree, p: _block(tree).update(skip_scale=p) or tree,
    "a hook dict": lambda tree, p: _block(tree)["_forward_hooks"].update({0: p}) or tree,
    "a torch container's state": lambda tree, p: _unet(tree)["_modules"]["enc"].__dict__.update(training=p) or tree,
}


@pytest.mark.parametrize("payload", [WriteFile, Exec])
def test_payloads_are_live_when_unpickled_normally(tmp_path, payload):
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(payload(marker)))
    assert marker.read_text() == "ran"


@pytest.mark.parametrize("payload, global_name", [(WriteFile, "pathlib.Path.write_text"), (Exec, "builtins.exec")])
@pytest.mark.parametrize("place", list(PLACES))
def test_payload_anywhere_runs_nothing_and_is_one_sentence(workspace, tmp_path, place, payload, global_name):
    marker, source_marker = tmp_path / "payload-ran", tmp_path / "source-ran"
    tree = edm_pickles.build(source_that_must_not_run(source_marker))
    path = edm_pickles.write(tmp_path / "hostile.pkl", PLACES[place](tree, payload(marker)))
    with pytest.raises(UserError) as err:
        create_job(workspace, import_spec(path, data="builtin:shapes"))
    message = str(err.value)
    assert global_name in message and "not loaded" in message and "\n" not in message
    assert not marker.exists() and not source_marker.exists()
    assert not list((workspace / "runs").iterdir())


def test_truncated_pickle(workspace, tmp_path):
    path = edm_pickles.write(tmp_path / "cut.pkl", edm_pickles.build("raise RuntimeError"))
    data = path.read_bytes()
    for cut in (len(data) // 3, len(data) - 5):
        path.write_bytes(data[:cut])
        with pytest.raises(UserError, match="truncated or damaged|storage") as err:
            create_job(workspace, import_spec(path, data="builtin:shapes"))
        assert "\n" not in str(err.value)
    assert not list((workspace / "runs").iterdir())


def test_tensor_shape_reaching_past_its_storage(workspace, tmp_path):
    class Lying:
        def __reduce__(self):
            storage = torch.zeros(4).untyped_storage()
            typed = torch.storage.TypedStorage(wrap_storage=storage, dtype=torch.float32, _internal=True)
            return (torch._utils._rebuild_tensor_v2, (typed, 0, (1024, 1024), (1024, 1), False, OrderedDict()))

    tree = edm_pickles.build("raise RuntimeError")
    _block(tree)["_modules"]["conv0"].meta["state"]["_parameters"]["bias"] = Lying()
    path = edm_pickles.write(tmp_path / "lying.pkl", tree)
    with pytest.raises(UserError, match=r"reaches past its storage"):
        import_spec(path)


def test_weights_that_do_not_fit_the_records(workspace, tmp_path):
    weights = edm_pickles.parameters()
    weights["model.enc.16x16_conv.weight"] = torch.zeros(128, 3, 1, 1)
    path = edm_pickles.write(tmp_path / "odd.pkl", edm_pickles.build("raise RuntimeError", weights))
    with pytest.raises(UserError, match=r"model.enc.16x16_conv.weight is \(128, 3, 1, 1\)"):
        create_job(workspace, import_spec(path, data="builtin:shapes"))
    assert not list((workspace / "runs").iterdir())


@pytest.mark.parametrize("key, value, words", [
    ("embedding_type", "fourier", "DDPM++"),
    ("label_dim", 10, "unconditional"),
    ("model_channels", 64, "128"),
    ("channel_mult", [16, 16], "more than"),        # 0.5 billion weights, refused before any is allocated
])
def test_other_edm_architectures_are_one_sentence(tmp_path, key, value, words):
    def edit(path, state):
        if path == "model":
            state["_init_kwargs"][key] = value
    path = edm_pickles.write(tmp_path / "other.pkl", edm_pickles.build("raise RuntimeError", edit=edit))
    with pytest.raises(UserError, match=words) as err:
        import_spec(path)
    assert key in str(err.value) or "channels" in str(err.value) or "weights" in str(err.value)


def test_not_a_network_pickle(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(UserError, match="no network record"):
        import_spec(path)
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(UserError, match="truncated or damaged"):
        import_spec(path)
