"""Shared test fixtures. Tests never touch the user's workspace or settings."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures" / "official"
CIFAR_MINI = SHARED / "data" / "cifar10-mini"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not present (the shared folder beside the checkout)")
    return path


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Point HOME, the workspace default and Qt settings at a temporary folder."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DDAE_WORKSPACE", str(home / "ddae-workspace"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    yield


@pytest.fixture
def workspace(tmp_path) -> Path:
    ws = tmp_path / "ws"
    (ws / "runs").mkdir(parents=True)
    (ws / "data").mkdir()
    return ws


def micro_config(framework: str = "ddpm", **network) -> dict:
    """A tiny network (0.3M parameters) for tests where the architecture's size does not matter."""
    from ddae_core.config import load_config

    cfg = load_config("tiny-ddpm" if framework == "ddpm" else "tiny-edm")
    cfg["network"].update({"ch_mults": [1, 2], "is_attn": [False, True], "n_blocks": 1, **network})
    cfg["linear"]["blockname"] = "out_3"
    return cfg
