"""What a user can type or have on disk that must end in one sentence, not a traceback (issue 12).

Through the CLI's main() or a real subprocess, on a micro model trained for a few real steps.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from db.testing import training_events, write_run
from ddae_core.cli import main as ddae
from ddae_core.jobs.eval_specs import probe_spec
from ddae_core.jobs.specs import create_job, execute, train_spec

from .fixtures import ROOT, micro_config

DATA = "builtin:shapes?n_train=96&n_test=48"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    """A micro DDPM trained 4 steps and a one-cell probe of it: (workspace, train run, an image file)."""
    ws = tmp_path_factory.mktemp("inputs-ws")
    cfg = micro_config()
    cfg["studio"].update({"checkpoint_every_steps": 4, "sample_every_steps": 4, "sample_steps": 2})
    cfg["n_sample"] = 4
    train = create_job(ws, train_spec(config=cfg, data=DATA, steps=4, batch_size=16, device="cpu"))
    assert execute(train, ws, handle_signals=False) == "done"
    probe = create_job(ws, probe_spec(train, timesteps="11", layers="out_3", train_limit=32, test_limit=16,
                                      epochs=1, device="cpu", baselines=False))
    assert execute(probe, ws, handle_signals=False) == "done"
    image = ws / "red.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(image)
    return ws, train, image


@pytest.mark.parametrize("timestep, message", [
    ("5000", "error: timestep: 5000 is outside 1..1000 (DDPM timesteps)\n"),
    ("-3", "error: timestep: -3 is outside 1..1000 (DDPM timesteps)\n"),
    ("0", "error: timestep: 0 is outside 1..1000 (DDPM timesteps)\n"),      # was taken as "the default"
])
def test_classify_refuses_a_timestep_outside_the_schedule(probed, timestep, message, capsys):
    ws, train, image = probed
    assert ddae(["classify", "--run", train.name, str(image), "--timestep", timestep, "--device", "cpu",
                 "--workspace", str(ws)]) == 2
    assert capsys.readouterr().err == message


def test_classify_past_the_heads_range_says_so_and_names_the_head_it_uses(probed, capsys):
    ws, train, image = probed
    assert ddae(["classify", "--run", train.name, str(image), "--timestep", "900", "--device", "cpu",
                 "--workspace", str(ws)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == ("warning: t=900 is outside the heads' range (t=11..11): the answer comes from the nearest "
                        "head, t=11, which was never trained at this noise level; do not trust it.")
    assert ddae(["classify", "--run", train.name, str(image), "--timestep", "11", "--device", "cpu",
                 "--workspace", str(ws)]) == 0
    assert "warning" not in capsys.readouterr().out                  # at a head's own level: no warning


def test_classify_a_labelled_folder_shows_each_true_class_and_the_accuracy(probed, tmp_path, capsys):
    ws, train, image = probed
    for shape, colour in (("circle", (200, 30, 30)), ("square", (30, 200, 30)), ("square", (30, 30, 200))):
        (tmp_path / "photos" / shape).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32), colour).save(tmp_path / "photos" / shape / f"{colour[0]}_{colour[2]}.png")
    (tmp_path / "photos" / "unlabelled.png").write_bytes(image.read_bytes())
    assert ddae(["classify", "--run", train.name, str(tmp_path / "photos"), "--device", "cpu",
                 "--workspace", str(ws)]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [line.split(":")[0] for line in lines[:4]] == ["unlabelled.png", "200_30.png", "30_200.png", "30_30.png"]
    assert "[true class" not in lines[0]
    right = 0
    for line, truth in zip(lines[1:4], ("circle", "square", "square")):
        top1 = line.split(": ")[1].split(" ")[0]
        assert f"[true class {truth}: {'right' if top1 == truth else 'wrong'}]" in line
        right += top1 == truth
    assert lines[4] == (f"accuracy: {right} of 3 right ({100 * right / 3:.1f}%) on the files whose folder names "
                        "their class")


def test_classify_save_onto_a_file_is_refused_before_classifying(probed, tmp_path, capsys):
    ws, train, image = probed
    taken = tmp_path / "out.png"
    taken.write_bytes(b"mine")
    assert ddae(["classify", "--run", train.name, str(image), "--save", str(taken), "--device", "cpu",
                 "--workspace", str(ws)]) == 2
    assert capsys.readouterr().err == (f"error: --save {taken} is a file, not a folder; give a folder (it is created "
                                       "if missing).\n")
    assert taken.read_bytes() == b"mine"


def test_sample_out_into_a_missing_folder_is_refused_before_sampling(probed, tmp_path, capsys):
    ws, train, _ = probed
    before = set((ws / "runs").iterdir())
    out = tmp_path / "missing" / "grid.png"
    assert ddae(["sample", "--run", train.name, "--n", "4", "--steps", "2", "--device", "cpu", "--out", str(out),
                 "--workspace", str(ws)]) == 2
    assert capsys.readouterr().err == (f"error: --out {out}: the folder {out.parent} does not exist; create it or "
                                       "choose another.\n")
    assert set((ws / "runs").iterdir()) == before                   # no sample run was started
    assert ddae(["sample", "--run", train.name, "--n", "4", "--steps", "2", "--device", "cpu", "--out", str(tmp_path),
                 "--workspace", str(ws)]) == 2
    assert "is a folder; give a file name such as" in capsys.readouterr().err


def test_deleting_a_run_whose_folder_is_a_link_removes_the_link_only(workspace, tmp_path, capsys):
    elsewhere = write_run(tmp_path / "other-disk", "20261126-130000-train-0001", events=training_events(20))
    link = workspace / "runs" / elsewhere.name
    link.symlink_to(elsewhere, target_is_directory=True)
    ws = ["--workspace", str(workspace)]
    assert ddae(["runs", "delete", elsewhere.name, "--yes", *ws]) == 0
    assert capsys.readouterr().out == (f"deleted {elsewhere.name} and the link {link}; the folder it pointed to, "
                                       f"{elsewhere}, is kept\n")
    assert not link.exists() and not link.is_symlink() and (elsewhere / "spec.yaml").is_file()
    assert ddae(["runs", "list", *ws]) == 0
    assert capsys.readouterr().out == "no runs yet\n"


def test_a_listing_piped_into_head_ends_without_a_traceback(workspace):
    for n in range(3):
        write_run(workspace, f"20261126-13000{n}-train-000{n}", events=training_events(20))
    ws = ["--workspace", str(workspace)]
    for command in (["runs", "list", *ws], ["queue", "list", "--all", *ws], ["presets"]):
        proc = subprocess.Popen([sys.executable, "-m", "ddae_core.cli", *command], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proc.stdout.close()                       # `| head -0`: the reader is gone before the first line
        assert proc.wait(timeout=60) == 1, command
        assert proc.stderr.read() == "", command


@pytest.fixture
def read_only(tmp_path):
    """make(folder) makes a folder read-only: chmod for a user; for root (whom chmod does not stop) a
    read-only bind mount, undone afterwards. Skips where neither is possible."""
    mounted = []

    def make(folder: Path) -> None:
        if os.geteuid() != 0:
            for path in (folder, *folder.iterdir()):
                if path.is_dir():
                    path.chmod(0o555)
            return
        done = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot make a read-only folder here: {done.stderr.decode().strip()}")
        mounted.append(folder)

    yield make
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=True)
    for path in tmp_path.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)


def test_a_read_only_workspace_is_named_instead_of_its_database(workspace, read_only, capsys):
    """It used to say the database could not be read and to reindex it (and reindex, serve, train: tracebacks)."""
    write_run(workspace, "20261126-130000-train-0001", events=training_events(20))
    assert ddae(["runs", "list", "--workspace", str(workspace)]) == 0
    capsys.readouterr()
    read_only(workspace)
    sentence = (f"error: Workspace {workspace} is read-only, so no run or index can be written there; make it "
                "writable or choose another with --workspace.\n")
    for command in (["runs", "list"], ["reindex"], ["queue", "serve", "--once", "--gpus", "none"],
                    ["train", "--preset", "tiny-ddpm", "--data", DATA, "--steps", "1"]):
        assert ddae([*command, "--workspace", str(workspace)]) == 2, command
        assert capsys.readouterr().err == sentence, command


def png_header(path: Path, width: int, height: int, bit_depth: int = 8, colour: int = 2) -> Path:
    """A PNG whose header says width x height (its pixel data is a stub): what PIL checks on open."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_classify_names_a_huge_image_and_a_folder_for_what_they_are(probed, tmp_path, capsys):
    ws, train, image = probed
    huge = png_header(tmp_path / "huge.png", 20000, 20000)            # was "not an image PIL can read"
    folder = tmp_path / "photos"                                        # was "does not exist"
    folder.mkdir()
    assert ddae(["classify", "--run", train.name, str(huge), str(folder), str(image), "--device", "cpu",
                 "--workspace", str(ws)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "huge.png: huge.png is too large to classify (over 40 megapixels); use a smaller image."
    assert lines[2] == f"photos: {folder} is a folder, not an image file; give the image files in it."
    assert lines[3].startswith("red.png: ") and "%" in lines[3]


def gray_ramp(path: Path, sixteen_bit: bool) -> Path:
    """A horizontal ramp from black to white, as a 16-bit or an 8-bit grayscale PNG."""
    import numpy as np

    ramp = np.tile(np.linspace(0, 1, 32), (32, 1))
    if sixteen_bit:
        Image.fromarray((ramp * 65535).round().astype(np.uint16)).save(path)
    else:
        Image.fromarray((ramp * 255).round().astype(np.uint8)).save(path)
    assert Image.open(path).mode == ("I;16" if sixteen_bit else "L")
    return path


def test_a_16_bit_png_reads_as_its_8_bit_twin_in_classify_and_in_a_folder(tmp_path):
    """Both used to clip 16-bit values at 255: mean 0.969 instead of 0.5."""
    from ddae_core.engine.data import load_split
    from ddae_core.engine.image_files import load_image

    deep, flat = gray_ramp(tmp_path / "deep.png", True), gray_ramp(tmp_path / "flat.png", False)
    deep_pixels, flat_pixels = load_image(deep, 32).image, load_image(flat, 32).image
    assert abs(float(deep_pixels.mean()) - 0.5) < 0.01
    assert float((deep_pixels - flat_pixels).abs().max()) <= 1 / 255 + 1e-6

    for split in ("train", "test"):
        for name, sixteen in (("deep", True), ("flat", False)):
            (tmp_path / "set" / split / name).mkdir(parents=True)
            for i in range(2):
                gray_ramp(tmp_path / "set" / split / name / f"{i}.png", sixteen)
    data = load_split(f"folder:{tmp_path / 'set'}", "train", data_root=tmp_path / "data")
    means = {data.classes[int(label)]: float(image.float().mean()) / 255
             for image, label in zip(data.images, data.labels)}
    assert abs(means["deep"] - 0.5) < 0.01 and abs(means["deep"] - means["flat"]) < 0.005


def test_several_gpus_never_quietly_mean_the_cpu(workspace, capsys):
    from ddae_core.jobs.gpu_slots import NeverFits, slots_needed

    assert ddae(["train", "--preset", "tiny-ddpm", "--data", DATA, "--steps", "1", "--gpus", "64",
                 "--workspace", str(workspace)]) == 2
    assert capsys.readouterr().err == ("error: --gpus 64 needs --queue: a job run in the foreground uses one device; "
                                       "add --queue and run `ddae queue serve` to train on several GPUs.\n")
    assert list((workspace / "runs").iterdir()) == []
    with pytest.raises(NeverFits, match=r"^Run r asks for 64 GPUs but this machine has none; resume it with "
                                        r"`ddae queue resume r --gpus 0` to run it on the CPU\.$"):
        slots_needed("r", "auto", 64, n_gpu=0, n_cpu=1)
    assert slots_needed("r", "auto", 1, n_gpu=0, n_cpu=1) == ("cpu", 1)     # the default request still runs


@pytest.mark.parametrize("flag, value, message", [
    ("--steps", "1e23", "error: steps: must be at most 1000000000000 (got 1e+23)\n"),     # was "a whole number"
    ("--steps", "100000000000000000000000",
     "error: steps: must be at most 1000000000000 (got 100000000000000000000000)\n"),
    ("--steps", "2.5", "error: steps: must be a whole number (got 2.5)\n"),
    ("--seed", "-1", "error: seed: must be at least 0 (got -1)\n"),                      # was a traceback
    ("--lr", "inf", "error: lr: must be a finite number (got inf)\n"),
])
def test_train_numbers_are_refused_with_the_right_sentence(workspace, flag, value, message, capsys):
    assert ddae(["train", "--preset", "tiny-ddpm", "--data", DATA, flag, value, "--workspace", str(workspace)]) == 2
    assert capsys.readouterr().err == message
    assert list((workspace / "runs").iterdir()) == []


@pytest.mark.parametrize("flag", ["--interval", "--kill-timeout"])
def test_serve_refuses_a_nan_or_infinite_number_of_seconds(workspace, flag, capsys):
    for value in ("nan", "inf"):
        assert ddae(["queue", "serve", "--once", "--gpus", "none", flag, value, "--workspace", str(workspace)]) == 2
        assert capsys.readouterr().err == ("error: --kill-timeout and --interval must be a finite number of seconds, "
                                           "greater than 0.\n")
    assert ddae(["queue", "serve", "--once", "--cpu-slots", "1000000000", "--workspace", str(workspace)]) == 2
    assert capsys.readouterr().err == "error: --cpu-slots must be from 0 to 256 (got 1000000000).\n"


def test_classify_still_reads_a_read_only_workspace(probed, read_only, tmp_path, capsys):
    """Only writing needs a writable workspace: classifying reads the run's files."""
    import shutil

    ws, train, image = probed
    copy = tmp_path / "copy"
    shutil.copytree(ws, copy, symlinks=True)
    read_only(copy)
    assert ddae(["classify", "--run", train.name, str(image), "--device", "cpu", "--workspace", str(copy)]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("red.png: ")
    assert ddae(["sample", "--run", train.name, "--n", "4", "--device", "cpu", "--workspace", str(copy)]) == 2
    assert "is read-only" in capsys.readouterr().err
