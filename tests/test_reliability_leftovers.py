"""One sentence, never a traceback, and nothing left behind: a damaged index, a full disk, an overflowing
learning rate, a checkpoint write killed midway, run folders missing a file, odd image files and names.

The full-disk cases mount a 1 MB tmpfs (root only; skipped with the reason where mounting is not allowed).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from db import Ingester, Store
from db.store import NEVER_STARTED
from db.testing import metric, status, write_run
from ddae_core.cli import main as ddae
from ddae_core.engine.evaluation.classify import FileResult
from ddae_core.engine.image_files import ImageFileError, load_image
from ddae_core.jobs.specs import create_job, execute

from .fixtures import ROOT, micro_train_spec

RUNS = [f"20261126-130000-train-{n:04x}" for n in range(3)]


def indexed(workspace: Path, steps: int = 50) -> Path:
    for rid in RUNS:
        write_run(workspace, rid, events=[status("running"), *(metric("loss/train", s, 1.0 / s) for s in
                                                                 range(1, steps + 1)), status("done")])
    with Store.open(workspace) as store, Ingester(store) as ingester:
        ingester.ingest_once()
    return workspace


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("where", ["after its header", "in its tables"])
def test_a_damaged_index_is_one_sentence_that_offers_reindex_on_list_show_and_tag(workspace, capsys, where):
    """Scrambled after the first pages (found as the index opens), or the runs table's page (found by the
    queries that read it): never a traceback, and `ddae reindex` repairs it."""
    indexed(workspace, steps=2000)
    db = workspace / "studio.sqlite"
    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        runs_page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs'").fetchone()[0]
    conn.close()
    size = db.stat().st_size
    start, length = (8192, size - 8192) if where == "after its header" else ((runs_page - 1) * page_size, page_size)
    with open(db, "r+b") as fh:
        fh.seek(start)
        fh.write(b"\xa5" * length)
    ws = ["--workspace", str(workspace)]
    errors = []
    for command in (["runs", "list"], ["runs", "show", RUNS[0]], ["runs", "tag", RUNS[0], "x"]):
        if ddae([*command, *ws]) != 0:
            errors.append(one_error_line(capsys))
            assert "ddae reindex" in errors[-1]
        capsys.readouterr()
    assert errors and (where != "in its tables" or "is damaged (database disk image is malformed)" in errors[0])
    assert ddae(["reindex", *ws]) == 0
    capsys.readouterr()
    assert ddae(["runs", "list", *ws]) == 0
    out = capsys.readouterr().out
    assert all(rid in out for rid in RUNS), out


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MB tmpfs; fill(path) then takes every byte left."""
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(mount)], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"a small tmpfs cannot be mounted here to fill a disk ({exc})")
    if done.returncode != 0:
        pytest.skip(f"a small tmpfs cannot be mounted here to fill a disk (mount: {done.stderr.strip()})")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def fill(disk: Path) -> None:
    try:
        with open(disk / "filler", "ab") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
    except OSError:
        pass


def test_a_full_disk_is_one_sentence_and_leaves_nothing_half_written(full_disk, capsys):
    """Reindex, `ddae train --queue` and an export on a full disk."""
    workspace = indexed(full_disk / "ws")
    ws = ["--workspace", str(workspace)]
    before = (workspace / "studio.sqlite").read_bytes()
    fill(full_disk)

    assert ddae(["reindex", *ws]) == 2
    assert "full" in one_error_line(capsys)
    assert (workspace / "studio.sqlite").read_bytes() == before
    assert not list(workspace.glob("studio.sqlite.new*"))

    runs_before = sorted(os.listdir(workspace / "runs"))
    assert ddae(["train", "--preset", "tiny-ddpm", "--queue", "--steps", "2", "--device", "cpu", *ws]) == 2
    assert "full" in one_error_line(capsys)
    assert sorted(os.listdir(workspace / "runs")) == runs_before          # no empty run folder

    # An export from a workspace elsewhere into the full disk.
    elsewhere = indexed(full_disk.parent / "ws")
    out = full_disk / "csv"
    assert ddae(["runs", "export", RUNS[0], "--csv", str(out), "--workspace", str(elsewhere)]) == 2
    assert "csv" in one_error_line(capsys)
    assert not out.exists() or os.listdir(out) == []


def test_a_learning_rate_that_would_overflow_is_refused_in_one_sentence(workspace, capsys):
    assert ddae(["train", "--preset", "tiny-ddpm", "--lr", "1e308", "--steps", "1", "--workspace",
                 str(workspace)]) == 2
    assert "lr: must be at most 10" in one_error_line(capsys)
    assert os.listdir(workspace / "runs") == []


KILLED_WRITER = """
    import sys, time
    from ddae_core.rundir import atomic_write
    def write(fh):
        fh.write(b"x" * (1 << 20))
        fh.flush()
        print("writing", flush=True)
        time.sleep(600)
    atomic_write(sys.argv[1], write, binary=True)
"""


def test_a_checkpoint_write_killed_midway_leaves_a_temp_file_that_resume_and_reindex_remove(workspace):
    run_dir = create_job(workspace, micro_train_spec(steps=4, checkpoint_every=4))
    assert execute(run_dir, workspace, handle_signals=False) == "done"
    checkpoints = run_dir / "checkpoints"

    def killed_write(target: Path) -> Path:
        writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_WRITER), str(target)],
                                  env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline() == "writing\n"
        writer.send_signal(signal.SIGKILL)
        writer.wait(30)
        (temp,) = target.parent.glob(f".{target.name}.tmp-*")
        assert temp.stat().st_size == 1 << 20
        return temp

    dead = killed_write(checkpoints / "step_000008.pt")
    live = checkpoints / f".step_000012.pt.tmp-{os.uname().nodename}-{os.getpid()}-abcdef"    # a writer alive
    live.write_bytes(b"still being written")
    assert execute(run_dir, workspace, handle_signals=False) == "done"      # resumes from step 4
    assert not dead.exists() and live.exists()

    dead_meta = killed_write(run_dir / "meta.json")
    assert ddae(["reindex", "--workspace", str(workspace)]) == 0
    assert not dead_meta.exists() and live.exists()
    assert sorted(p.name for p in checkpoints.iterdir()) == [live.name, "step_000004.pt"]


def test_run_folders_missing_a_file_are_shown_as_what_they_are(workspace, caplog):
    old = time.time() - 3600
    never = write_run(workspace, RUNS[0], created=old)                  # no events.jsonl, an hour old
    starting = write_run(workspace, RUNS[1])                           # no events.jsonl yet, just made
    no_spec = workspace / "runs" / RUNS[2]
    no_spec.mkdir()
    (no_spec / "events.jsonl").write_text("")
    os.utime(no_spec, (old, old))
    with Store.open(workspace) as store, Ingester(store) as ingester:
        ingester.ingest_once()
        record = store.get_run(never.name)
        assert (record.status, record.error) == ("interrupted", NEVER_STARTED)
        assert store.get_run(starting.name).status == "running"
        assert store.count_runs() == 2
    assert f"Not indexing run {RUNS[2]}: its folder has no spec.yaml" in caplog.text


def test_a_pipe_or_a_device_given_as_an_image_is_named_as_such(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(ImageFileError, match="is not a regular file"):
            load_image(path, 32)
    with pytest.raises(ImageFileError, match="does not exist"):
        load_image(tmp_path / "gone.png", 32)


def test_a_newline_in_a_file_name_cannot_forge_a_result_line(tmp_path):
    path = tmp_path / "cat.png: dog 99.9%\nreal.png"
    path.write_bytes(b"not an image")
    with pytest.raises(ImageFileError) as caught:
        load_image(path, 32)
    line = FileResult(path, error=str(caught.value)).as_text()
    assert "\n" not in line and "\\n" in line
    ok = FileResult(path, top=[("cat", 0.5)]).as_text()
    assert ok.count("\n") == 0 and ok.startswith("cat.png: dog 99.9%\\nreal.png: ")
