"""`hf:OWNER/NAME`: a diffusers model folder from the Hugging Face Hub, kept under the workspace's data/models/.

The folder is used as it is when it already holds the files, so a machine that is offline imports what was
put there by hand; otherwise `huggingface_hub` (the diffusers extra) fetches the JSON and safetensors
files into it. Tests never reach this download.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import UserError
from .diffusers_ddpm import is_diffusers_folder

PREFIX = "hf:"
REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
FILES = ["*.json", "*.safetensors", "README.md"]


def is_hub_source(text: str) -> bool:
    return str(text).startswith(PREFIX)


def hub_folder(workspace: Path, repo: str) -> Path:
    return workspace / "data" / "models" / repo.replace("/", "--")


def fetch(text: str, workspace: Path) -> Path:
    """The local folder of `hf:OWNER/NAME`, fetched if it does not hold a model yet; one sentence on failure."""
    repo = text[len(PREFIX):]
    if not REPO.fullmatch(repo):
        raise UserError(f"{text} does not name a Hub model as hf:OWNER/NAME (e.g. hf:google/ddpm-cifar10-32).")
    folder = hub_folder(workspace, repo)
    if is_diffusers_folder(folder):
        return folder
    by_hand = (f"download config.json, diffusion_pytorch_model.safetensors and scheduler_config.json from "
               f"https://huggingface.co/{repo} into {folder} and run the import again")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise UserError(f"Fetching {text} needs huggingface_hub (pip install 'ddae-studio[diffusers]'); or "
                        f"{by_hand}.") from None
    try:
        snapshot_download(repo, local_dir=folder, allow_patterns=FILES)
    except Exception as exc:  # noqa: BLE001 (offline, unknown repo, HTTP: the hub's error classes vary by version)
        raise UserError(f"{text} could not be fetched ({exc.__class__.__name__}); {by_hand}.") from None
    return folder
