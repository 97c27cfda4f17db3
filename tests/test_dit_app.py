"""The app's import dialog takes a DiT checkpoint and its VAE folder, and queues the same import as `ddae import`."""

from __future__ import annotations

import pytest
import torch
import yaml

from ddae_core.rundir import JobKind
from tests.app_support import app_settings, no_leftovers, studio  # noqa: F401
from tests.latents_support import save_tiny_vae
from tests.test_dit_import import DATA, FIXTURE

pytest.importorskip("diffusers")


def test_the_import_dialog_asks_for_the_vae_of_a_dit_and_queues_its_import(studio, qtbot, tmp_path):
    official = torch.load(FIXTURE, weights_only=True)
    checkpoint = tmp_path / "DiT-tiny.pt"
    torch.save({k: v.float() for k, v in official["state"].items()}, checkpoint)
    heads = tmp_path / "heads.yaml"
    heads.write_text(yaml.safe_dump({"network": {"num_heads": 4}}))
    window = studio(tmp_path / "ws", run_scheduler=False)
    dialog = window.import_model(str(checkpoint))
    assert "DiT checkpoint" in dialog.format.text() and "CC-BY-NC" in dialog.format.text()
    assert dialog.vae.isEnabled() and dialog.config.isEnabled()
    dialog.config.setText(str(heads))
    dialog.data.setText(DATA)
    assert dialog.submit() is None                  # no VAE yet: one sentence, nothing queued
    assert "--vae" in dialog.error.text() and "\n" not in dialog.error.text()
    assert window.store.queued_jobs() == []
    dialog.vae.setText(str(save_tiny_vae(tmp_path / "vae")))
    run_id = dialog.submit()
    assert run_id is not None and dialog.error.text() == ""
    record = window.store.get_run(run_id)
    assert record.kind == JobKind.IMPORT and record.spec["options"]["format"] == "dit"
    assert record.spec["config"]["network"]["num_heads"] == 4
