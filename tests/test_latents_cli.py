"""`ddae cache latents` builds (or opens) a latent cache and `ddae cache list` shows its progress and size."""

from __future__ import annotations

from ddae_core.cli import main as ddae
from tests.latents_support import save_tiny_vae

DATA = "builtin:shapes?n_train=12&n_test=6"


def test_cache_latents_builds_once_and_cache_list_shows_it(tmp_path, workspace, capsys):
    vae = save_tiny_vae(tmp_path / "vae")
    assert ddae(["cache", "list", "--workspace", str(workspace)]) == 0
    assert "no latent caches yet" in capsys.readouterr().out

    command = ["cache", "latents", "--vae", str(vae), "--data", DATA, "--copies", "2", "--resolution", "64",
               "--device", "cpu", "--workspace", str(workspace)]
    assert ddae(command) == 0
    built = capsys.readouterr()
    assert "4x8x8 fp16 latents of 2 copies x 12 train + 6 test images" in built.out
    assert "latent cache" in built.err and "30/30" in built.err             # the progress line
    [folder] = (workspace / "data" / "latents").iterdir()
    assert str(folder) in built.out

    assert ddae(command) == 0                                                 # opened, not encoded again
    again = capsys.readouterr()
    assert str(folder) in again.out and "30/30" not in again.err

    assert ddae(["cache", "list", "--workspace", str(workspace)]) == 0
    header, row = capsys.readouterr().out.splitlines()
    fields = row.split()
    assert header.split()[:6] == ["cache", "vae", "copies", "res", "progress", "size"]
    assert fields[0] == folder.name and fields[2:5] == ["2", "64", "complete"] and fields[6] == "KB"
    assert row.endswith(DATA)


def test_cache_latents_refuses_a_missing_vae_folder_in_one_sentence(tmp_path, workspace, capsys):
    code = ddae(["cache", "latents", "--vae", str(tmp_path / "nowhere"), "--data", DATA,
                 "--workspace", str(workspace)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: VAE folder ") and "does not exist" in err
    assert len(err.splitlines()) == 1
    assert not (workspace / "data" / "latents").exists()
