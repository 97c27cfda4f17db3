"""The index and run metadata under concurrent real processes: nothing acknowledged is lost, nothing is hidden.

Tags, notes and reindexes at once (processes, not threads); an index deleted under `ddae queue serve`; two
reindexes at once; a reindex killed mid-build; a checkpoint write killed mid-write. Each test is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from db import Store
from db.testing import metric, status, write_run
from ddae_core.rundir import INGEST_LOCK, META_LOCK, SCHEDULER_LOCK, lock_holder, waiting_lock

from .fixtures import ROOT

pytestmark = pytest.mark.usefixtures("no_leftover_processes")

RUNS = [f"20261126-130000-train-{n:04x}" for n in range(4)]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "DDAE_CPU_THREADS": "1"}


def python(code: str, *args: str) -> subprocess.Popen:
    """A Python process running `code` (sys.argv[1:] = args) with this checkout on its path."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env(), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ddae(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ddae_core.cli", *args], env=env(), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout_s: float = 120) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{proc.args} did not finish within {timeout_s} s:\n{out}\n{err}") from None
    return proc.returncode, out, err


def indexed_workspace(workspace: Path) -> Path:
    for n, rid in enumerate(RUNS):
        write_run(workspace, rid, events=[status("running"), metric("loss/train", 1, 1.0 + n), status("done")])
    with Store.open(workspace) as store:
        from db import Ingester

        with Ingester(store) as ingester:
            ingester.ingest_once()
    return workspace


WRITER = """
    import sys
    from db import Store
    workspace, me, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    runs = sys.argv[4:]
    with Store.open(workspace) as store:
        for i in range(rounds):
            tag = f"w{me}-{i}"
            store.add_tag(runs[i % len(runs)], tag)
            print("tag", runs[i % len(runs)], tag, flush=True)
            store.set_notes(runs[me % len(runs)], tag)
            print("note", runs[me % len(runs)], tag, flush=True)
"""

REINDEXER = """
    import sys
    from db import IngestLockError, reindex
    done = refused = 0
    for _ in range(int(sys.argv[2])):
        try:
            reindex(sys.argv[1])
            done += 1
        except IngestLockError:
            refused += 1
    print(done, refused)
"""


@pytest.mark.parametrize("attempt", range(3))
def test_tags_and_notes_written_while_reindexes_run_are_all_kept(workspace, attempt):
    """Every tag a writer process was told it added survives, in meta.json and in the index; each run's
    notes are the last ones its writer set."""
    indexed_workspace(workspace)
    writers = [python(WRITER, str(workspace), str(me), "12", *RUNS) for me in range(4)]
    reindexers = [python(REINDEXER, str(workspace), "4") for _ in range(2)]
    acknowledged: dict[str, set[str]] = {rid: set() for rid in RUNS}
    last_note: dict[str, str] = {}
    for proc in writers:
        code, out, err = finish(proc)
        assert code == 0, err[-3000:]
        for line in out.splitlines():
            what, rid, value = line.split()
            if what == "tag":
                acknowledged[rid].add(value)
            else:
                last_note[rid] = value
    reindexed = 0
    for proc in reindexers:
        code, out, err = finish(proc)
        assert code == 0, err[-3000:]
        reindexed += int(out.split()[0])
    assert reindexed >= 1 and sum(map(len, acknowledged.values())) == 48

    with Store.open(workspace) as store:
        for rid in RUNS:
            meta = json.loads((workspace / "runs" / rid / "meta.json").read_text())
            assert acknowledged[rid] <= set(meta["tags"]), f"meta.json of {rid} lost tags"
            assert acknowledged[rid] <= set(store.get_run(rid).tags), f"the index lost tags of {rid}"
            assert meta["notes"] == store.get_run(rid).notes == last_note[rid]
    assert not list(workspace.glob("studio.sqlite.new*"))


def test_ddae_runs_tag_and_ddae_reindex_processes_at_once_keep_every_printed_tag(workspace):
    indexed_workspace(workspace)
    ws = ["--workspace", str(workspace)]
    tags = [ddae("runs", "tag", RUNS[n % 2], f"cli-{n}", *ws) for n in range(4)]
    reindexes = [ddae("reindex", *ws) for _ in range(2)]
    printed: dict[str, set[str]] = {RUNS[0]: set(), RUNS[1]: set()}
    for n, proc in enumerate(tags):
        code, out, err = finish(proc)
        assert code == 0 and "Traceback" not in err, err
        assert f"cli-{n}" in out
        printed[RUNS[n % 2]].add(f"cli-{n}")
    for proc in reindexes:
        code, out, err = finish(proc)
        assert "Traceback" not in err and (code == 0 or err.startswith("error: ")), err
    with Store.open(workspace) as store:
        for rid, wanted in printed.items():
            assert wanted <= set(store.get_run(rid).tags)


def test_two_reindexes_at_once_end_with_one_index_and_one_clear_refusal(workspace):
    indexed_workspace(workspace)
    ws = ["--workspace", str(workspace)]
    # The first reindex takes the ingest lock, then waits for meta.lock (held here, as a long tag would).
    with waiting_lock(workspace / META_LOCK):
        first = ddae("reindex", *ws)
        deadline = time.monotonic() + 60
        while "reindex" not in _lock_text(workspace):
            assert time.monotonic() < deadline and first.poll() is None, "the first reindex never took the lock"
            time.sleep(0.05)
        code, out, err = finish(ddae("reindex", *ws))
        assert code == 2 and out == ""
        assert err.startswith(f"error: {workspace} is being reindexed by pid {first.pid} ")
        assert "changed nothing" in err and err.count("\n") == 1
        assert (workspace / "studio.sqlite").is_file()              # the refusal touched nothing
    code, out, err = finish(first)
    assert code == 0 and out.startswith("reindexed 4 runs"), err
    assert not list(workspace.glob("studio.sqlite.new*"))
    with Store.open(workspace) as store:
        assert store.count_runs() == 4


def _count(workspace: Path) -> int:
    with Store.open(workspace) as store:
        return store.count_runs()


def _lock_text(workspace: Path) -> str:
    try:
        return (workspace / INGEST_LOCK).read_text()
    except FileNotFoundError:
        return ""


def test_a_reindex_killed_while_building_leaves_nothing_the_next_command_trips_on(workspace):
    indexed_workspace(workspace)
    ws = ["--workspace", str(workspace)]
    with waiting_lock(workspace / META_LOCK):       # holds the reindex after its lock, before its swap
        killed = ddae("reindex", *ws)
        deadline = time.monotonic() + 60
        while "reindex" not in _lock_text(workspace):
            assert time.monotonic() < deadline and killed.poll() is None
            time.sleep(0.05)
        (workspace / f"studio.sqlite.new-{killed.pid}").write_bytes(b"half an index")   # as if it had begun
        killed.send_signal(signal.SIGKILL)
        finish(killed)
    code, out, err = finish(ddae("runs", "list", *ws))
    assert code == 0 and all(rid in out for rid in RUNS), err
    code, out, err = finish(ddae("reindex", *ws))
    assert code == 0 and out.startswith("reindexed 4 runs"), err
    assert not list(workspace.glob("studio.sqlite.new*"))


def test_deleting_the_index_under_queue_serve_shows_every_run_at_the_next_command(workspace):
    indexed_workspace(workspace)
    # A queued probe that waits for a checkpoint of a run training on another host: it stays queued.
    parent, queued = "20261126-130000-train-0009", "20261126-130000-probe-0010"
    write_run(workspace, parent, events=[status("running")])
    write_run(workspace, queued, kind="probe", parent={"run": parent, "checkpoint": "latest"},
              queue={"priority": 0, "gpus": 0})
    ws = ["--workspace", str(workspace)]
    serve = ddae("queue", "serve", "--cpu-slots", "1", "--gpus", "none", "--interval", "0.2", *ws)
    try:
        deadline = time.monotonic() + 60
        while lock_holder(workspace / SCHEDULER_LOCK) is None or _count(workspace) < 6:
            assert time.monotonic() < deadline and serve.poll() is None, finish(serve)
            time.sleep(0.1)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{workspace / 'studio.sqlite'}{suffix}").unlink(missing_ok=True)
        code, out, err = finish(ddae("runs", "list", *ws))
        assert code == 0 and "no runs yet" not in out, err
        assert all(rid in out for rid in [*RUNS, parent, queued]), out + err
        code, out, err = finish(ddae("queue", "list", *ws))
        assert code == 0 and queued in out and "queued" in out, out + err

        # `ddae reindex`, the documented repair, works while the scheduler runs: the scheduler rebuilds.
        code, out, err = finish(ddae("reindex", *ws))
        assert code == 0 and "rebuilt the index" in out and "6 runs" in out, out + err
        code, out, err = finish(ddae("runs", "list", *ws))
        assert all(rid in out for rid in [*RUNS, parent, queued]), out + err
    finally:
        serve.send_signal(signal.SIGINT)
        finish(serve, 60)
