"""Broken and hostile model files for `ddae import`: one sentence each, and no run left behind."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from ddae_core.engine.errors import UserError
from ddae_core.jobs.eval_specs import import_spec
from ddae_core.jobs.specs import create_job

from .fixtures import ROOT

diffusers_test = pytest.importorskip("tests.test_import_diffusers")
SMALL, make_folder = diffusers_test.SMALL, diffusers_test.make_folder


def weights(folder):
    return folder / "unet" / "diffusion_pytorch_model.safetensors"


def rewrite_header(path, change) -> None:
    """Apply `change` to the safetensors header (a dict), keeping the data bytes as they are."""
    raw = path.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + length])
    change(header)
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + length:])


def refused(workspace, folder, *words) -> str:
    """The one sentence an import of `folder` is refused with; no run folder may be made."""
    with pytest.raises(UserError) as err:
        create_job(workspace, import_spec(folder, data="builtin:shapes"))
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    for word in words:
        assert word in message
    assert not list((workspace / "runs").iterdir())
    return message


@pytest.fixture
def folder(tmp_path):
    make_folder(tmp_path / "model", SMALL)
    return tmp_path / "model"


def test_truncated_weights_file(workspace, folder):
    path = weights(folder)
    path.write_bytes(path.read_bytes()[:-100])
    refused(workspace, folder, "truncated", path.name)


def test_header_claiming_more_bytes_than_its_span(workspace, folder):
    def grow(header):
        header["conv_in.weight"]["shape"] = [64, 3, 3, 3]
    rewrite_header(weights(folder), grow)
    refused(workspace, folder, "conv_in.weight", "[64, 3, 3, 3]")


def test_header_with_overlapping_tensors(workspace, folder):
    def overlap(header):
        header["conv_in.bias"]["data_offsets"] = header["conv_in.weight"]["data_offsets"][0:1] * 2
        header["conv_in.bias"]["data_offsets"][1] += 4 * 32
    rewrite_header(weights(folder), overlap)
    refused(workspace, folder, "overlap")


def test_header_shape_of_the_right_size_but_wrong_layout(workspace, folder):
    def transpose(header):
        header["conv_in.weight"]["shape"] = [3, 32, 3, 3]
    rewrite_header(weights(folder), transpose)
    refused(workspace, folder, "conv_in.weight is (3, 32, 3, 3)", "needs (32, 3, 3, 3)")


def test_header_that_is_not_json(workspace, folder):
    path = weights(folder)
    raw = bytearray(path.read_bytes())
    raw[8:20] = b"\xff" * 12
    path.write_bytes(bytes(raw))
    refused(workspace, folder, "header")


def test_absurd_config_is_refused_before_allocating(workspace, folder):
    config = folder / "unet" / "config.json"
    cfg = json.loads(config.read_text())
    cfg["block_out_channels"] = [1024, 16384, 16384]       # some 60 billion weights
    config.write_text(json.dumps(cfg))
    refused(workspace, folder, "weights", "more than")
    cfg["sample_size"] = 10 ** 9
    config.write_text(json.dumps(cfg))
    refused(workspace, folder, "sample_size")


def test_weights_from_another_layout(workspace, folder):
    config = folder / "unet" / "config.json"
    cfg = json.loads(config.read_text())
    cfg["layers_per_block"] = 2
    config.write_text(json.dumps(cfg))
    refused(workspace, folder, "down_blocks.0.resnets.1")


def test_nan_weights(workspace, folder):
    from safetensors.torch import load_file, save_file

    state = load_file(weights(folder))
    state["conv_out.bias"][0] = float("nan")
    save_file(state, weights(folder))
    refused(workspace, folder, "NaN")


def test_config_of_another_model_kind(workspace, folder):
    config = folder / "unet" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "down_block_types":
                                  ["DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]}))
    refused(workspace, folder, "down_block_types")
    config.write_text("{not json")
    refused(workspace, folder, "JSON")


def test_a_config_given_for_a_model_that_has_one(folder, tmp_path):
    with pytest.raises(UserError, match="carries its own config"):
        import_spec(folder, tmp_path / "any.yaml")


def test_missing_scheduler_config(workspace, folder):
    (folder / "scheduler" / "scheduler_config.json").unlink()
    with pytest.raises(UserError, match="scheduler_config.json"):
        import_spec(folder)


def test_cli_detects_the_format_and_refuses_in_one_line(workspace, folder):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "ddae_core.cli", "import", *map(str, args), "--workspace",
                               str(workspace), "--data", "builtin:shapes"], capture_output=True, text=True, cwd=ROOT)

    out = cli(folder, "--name", "ddpm small")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("imported as run ")
    (run,) = (workspace / "runs").iterdir()
    state = torch.load(next((run / "checkpoints").iterdir()), weights_only=True)
    assert state["config"]["diffusion"]["time_input"] == "index"
    path = weights(folder)
    path.write_bytes(path.read_bytes()[:-100])
    out = cli(folder)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "truncated" in out.stderr
    assert len(list((workspace / "runs").iterdir())) == 1


def test_hub_source_uses_the_workspace_folder_and_never_downloads_offline(workspace, tmp_path):
    import os

    def cli(source):
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        return subprocess.run([sys.executable, "-m", "ddae_core.cli", "import", source, "--workspace", str(workspace),
                               "--data", "builtin:shapes"], capture_output=True, text=True, cwd=ROOT, env=env)

    folder = workspace / "data" / "models" / "google--ddpm-cifar10-32"
    out = cli("hf:google/ddpm-cifar10-32")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert str(folder) in out.stderr and "could not be fetched" in out.stderr
    assert not list((workspace / "runs").iterdir())
    make_folder(folder, SMALL)
    out = cli("hf:google/ddpm-cifar10-32")
    assert out.returncode == 0, out.stderr
    out = cli("hf:not a repo")
    assert out.returncode == 2 and "hf:OWNER/NAME" in out.stderr
