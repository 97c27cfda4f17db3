"""Build NVlabs-style persistence pickles in the tests, without NVlabs' code.

The layout is the one `torch_utils.persistence` writes: each network module is a call of
`torch_utils.persistence._reconstruct_persistent_obj(meta)` with meta = {type, version, module_src,
class_name, state}, torch containers are ordinary pickled `torch.nn.ModuleDict`s, and tensors are pickled
as torch pickles them. The module tree and weights come from tests/data/edm_songunet_small.json, which
make_edm_fixture.py wrote from EDM's own network.
"""

from __future__ import annotations

import json
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).parent / "data"
STRUCTURE = json.loads((DATA / "edm_songunet_small.json").read_text())


def source_that_must_not_run(marker: Path) -> str:
    """Stored module source that would leave `marker` behind (and raise) if anything executed it."""
    return f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\nraise RuntimeError('executed')\n"


class Persistent:
    """Pickles as a persistence record, with whatever meta it is given."""

    def __init__(self, meta: dict):
        self.meta = meta

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,))


def _reconstruct_persistent_obj(meta):     # never called: the tests only pickle with it
    raise AssertionError("the fake persistence module ran")


def _fake_persistence_module():
    package = sys.modules.setdefault("torch_utils", types.ModuleType("torch_utils"))
    module = types.ModuleType("torch_utils.persistence")
    module._reconstruct_persistent_obj = _reconstruct_persistent_obj
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    package.persistence = module
    sys.modules["torch_utils.persistence"] = module


def parameters(seed: int | None = None) -> dict[str, torch.Tensor]:
    """The fixture's weights, drawn as make_edm_fixture.fill_parameters drew them."""
    shapes = {f"{path}.{name}".lstrip("."): shape for path, m in STRUCTURE["modules"].items()
              for name, shape in m["parameters"].items()}
    gen = torch.Generator().manual_seed(STRUCTURE["seed"] if seed is None else seed)
    out = {}
    for name in sorted(shapes):
        shape = shapes[name]
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        out[name] = torch.randn(shape, generator=gen) / fan_in ** 0.5
    return out


def build(module_src: str, weights: dict[str, torch.Tensor] | None = None, edit=None) -> dict:
    """{'ema': the EDMPrecond object tree, 'loss_fn': a record}; `edit(path, state)` may change a state."""
    weights = parameters() if weights is None else weights
    modules = STRUCTURE["modules"]

    def make(path: str):
        m = modules[path]
        children = OrderedDict((c, make(f"{path}.{c}".lstrip("."))) for c in m["children"])
        params = OrderedDict((k, torch.nn.Parameter(weights[f"{path}.{k}".lstrip(".")], requires_grad=False))
                             for k in m["parameters"])
        params.update((k, None) for k in m["none_parameters"])
        buffers = OrderedDict((k, None if v is None else torch.tensor(v)) for k, v in m["buffers"].items())
        state = {"training": False, "_parameters": params, "_buffers": buffers, "_non_persistent_buffers_set": set(),
                 "_backward_hooks": OrderedDict(), "_forward_hooks": OrderedDict(), "_modules": children,
                 **{k: (np.float64(v) if k in m["numpy_attrs"] else v) for k, v in m["attrs"].items()}}
        if m["init_kwargs"] is not None:
            state["_init_args"], state["_init_kwargs"] = (), dict(m["init_kwargs"])
        if edit is not None:
            edit(path, state)
        if m["class"] == "ModuleDict":
            container = torch.nn.ModuleDict()
            container.__dict__.update(state)
            return container
        return Persistent({"type": "class", "version": 6, "module_src": module_src, "class_name": m["class"],
                           "state": state})

    loss = Persistent({"type": "class", "version": 6, "module_src": module_src, "class_name": "EDMLoss",
                       "state": {"P_mean": -1.2, "P_std": 1.2, "sigma_data": 0.5}})
    return {"ema": make(""), "loss_fn": loss, "augment_pipe": None,
            "dataset_kwargs": {"class_name": "training.dataset.ImageFolderDataset", "path": "cifar10.zip"}}


def write(path: Path, tree) -> Path:
    _fake_persistence_module()
    path.write_bytes(pickle.dumps(tree, protocol=4))
    return path
