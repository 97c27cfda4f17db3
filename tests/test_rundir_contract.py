"""The run-directory contract (ddae_core.rundir): the one atomic write, the one line reader, the enums."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from db import Ingester, Store
from db.testing import append, artifact, image, run_id, status, write_run
from ddae_core.rundir import (
    FINAL_STATUSES,
    ArtifactKind,
    EventType,
    JobKind,
    RunStatus,
    atomic_write,
    atomic_write_text,
    complete_lines,
    ends_torn,
    read_new_lines,
)

REPO = Path(__file__).resolve().parents[1]


class Boom(Exception):
    pass


def test_a_failing_writer_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "grid.json"
    atomic_write_text(path, "old")

    def write(fh):
        fh.write("half of the new")
        raise Boom

    with pytest.raises(Boom):
        atomic_write(path, write)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["grid.json"]


def test_a_full_disk_is_raised_as_enospc_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "step_000001.pt"

    def write(fh):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as caught:
        atomic_write(path, write, binary=True)
    assert caught.value.errno == errno.ENOSPC       # training.py turns exactly this into its one sentence
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_the_whole_file_in_utf8(tmp_path):
    path = tmp_path / "meta.json"
    atomic_write_text(path, "a much longer first version")
    atomic_write_text(path, "é")
    assert path.read_bytes() == "é".encode()
    atomic_write(path, lambda fh: fh.write(b"\x00\x01"), binary=True, fsync=False)
    assert path.read_bytes() == b"\x00\x01"


def test_a_torn_last_line_is_not_returned_until_it_is_complete(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"a":1}\n{"b":')
    assert complete_lines(path.read_bytes()) == ([b'{"a":1}'], 8)
    first = read_new_lines(path, 0, 1 << 20)
    assert first.lines == [b'{"a":1}'] and first.end == 8 and ends_torn(path)
    torn = read_new_lines(path, first.end, 1 << 20)
    assert torn.lines == [] and torn.end == first.end              # the half line waits
    with open(path, "ab") as fh:
        fh.write(b"2}\n")
    done = read_new_lines(path, torn.end, 1 << 20)
    assert done.lines == [b'{"b":2}'] and done.end == path.stat().st_size and not ends_torn(path)
    assert read_new_lines(path, done.end, 1 << 20) is None          # nothing new


def test_a_rewritten_file_is_read_again_from_its_start(tmp_path):
    path = tmp_path / "log.txt"
    path.write_bytes(b"one\ntwo\nthree\n")
    path.write_bytes(b"new\n")
    found = read_new_lines(path, 14, 1 << 20)
    assert found.rewound and found.start == 0 and found.lines == [b"new"]
    assert read_new_lines(tmp_path / "missing", 0, 10) is None


def test_a_line_longer_than_the_limit_comes_back_marked_overlong(tmp_path):
    path = tmp_path / "log.txt"
    path.write_bytes(b"x" * 100)
    found = read_new_lines(path, 0, 64)
    assert found.overlong and found.end == 64 and found.lines == [b"x" * 64]


def test_enum_members_are_their_strings_in_json_and_yaml():
    assert RunStatus.DONE == "done" and JobKind.NOISY_CLASSIFIER == "noisy-classifier"
    assert json.dumps({"status": RunStatus.CANCELLED}) == '{"status": "cancelled"}'
    assert yaml.safe_dump({"kind": JobKind.ALIGN_UNIFORM}) == "kind: align-uniform\n"
    assert set(FINAL_STATUSES) < set(RunStatus) and RunStatus.QUEUED not in FINAL_STATUSES
    assert [str(t) for t in EventType] == ["status", "metric", "progress", "image", "artifact", "grid", "grid_cell"]


def test_every_status_and_kind_round_trips_through_the_index(tmp_path):
    with Store.open(tmp_path / "ws") as store, Ingester(store) as ingester:
        ids = {}
        for n, kind in enumerate(JobKind):
            ids[kind] = run_id(kind, n)
            write_run(store.workspace, ids[kind], kind=kind, events=[status(RunStatus.RUNNING, 1.0)])
        worker_statuses = [s for s in RunStatus if s != RunStatus.QUEUED]
        art_dir = run_id(JobKind.TRAIN, 99)
        write_run(store.workspace, art_dir, events=[
            *(status(s, 2.0 + i) for i, s in enumerate(worker_statuses)),
            image(10), *(artifact(k, f"files/{k}.bin", 1) for k in ArtifactKind if k != ArtifactKind.IMAGE)])
        ingester.ingest_once()
        for kind, rid in ids.items():
            record = store.get_run(rid)
            assert record.kind == kind and type(record.kind) is str and record.status == RunStatus.RUNNING
        for s in worker_statuses:
            append(store.run_dir(ids[JobKind.PROBE]), [status(s, 10.0)])
            ingester.ingest_once()
            assert store.get_run(ids[JobKind.PROBE]).status == s
        store.set_status(ids[JobKind.FID], RunStatus.QUEUED)
        assert store.get_run(ids[JobKind.FID]).status == "queued"
        assert store.images(art_dir) == [(10, "samples/step_000010.png")]
        for kind in ArtifactKind:
            assert [a.kind for a in store.artifacts(art_dir, kind)] == [kind]
        assert store.list_runs(kind=[JobKind.IMPORT])[0].id == ids[JobKind.IMPORT]


def test_the_contract_loads_without_torch_or_qt():
    code = ("import sys, ddae_core.rundir, db; "
            "bad = [m for m in ('torch', 'PySide6', 'ddae_core.engine', 'ddae_core.jobs') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
