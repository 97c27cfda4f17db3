"""The worker's log.txt in words: progress, cancel and resume lines, and a summary at the end."""

from __future__ import annotations

import io

from ddae_core.jobs.worklog import LogEcho, note


def test_log_echo_says_what_the_worker_does_and_sums_up_at_the_end():
    out = io.StringIO()
    echo = LogEcho(out)
    echo({"type": "status", "status": "running", "time": 1000.0, "pid": 5, "device": "cpu", "resumed_from": 400})
    for done in range(0, 101):
        echo({"type": "progress", "done": done, "total": 100, "stage": "train", "time": 1000.0 + done})
    echo({"type": "metric", "key": "loss/train", "step": 100, "value": 0.07, "time": 1100.0})
    echo({"type": "artifact", "kind": "checkpoint", "step": 100, "path": "checkpoints/x.pt", "time": 1100.0})
    echo({"type": "grid_cell", "layer": "out_6", "timestep": 11, "accuracy": 0.724})
    echo({"type": "status", "status": "cancelled", "time": 1200.0})
    lines = out.getvalue().splitlines()
    assert "running (device cpu, pid 5); resumed from the checkpoint of step 400" in lines[0]
    assert sum(line.endswith("%)") for line in lines) == 11       # one line a tenth, not one per event
    assert any(line.endswith("checkpoint saved at step 100") for line in lines)
    assert "cancelled at train 100/100 after 3:20" in lines[-2]
    assert lines[-1].endswith("summary: train 100/100; loss/train 0.07 (step 100); "
                              "1 grid cells, best out_6 at t=11 72.4%")


def test_note_appends_a_dated_line(tmp_path):
    (tmp_path / "log.txt").write_text("before\n")
    note(tmp_path, "cancel requested (running)")
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert lines[0] == "before" and lines[1].startswith("--- ") and lines[1].endswith("cancel requested (running)")
    note(tmp_path / "missing", "nothing happens")            # a folder that is gone is not an error
