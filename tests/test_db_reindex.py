"""Reindex rebuilds the same index from the run folders alone; exports are deterministic."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest

from db import Ingester, Store, export_run_csv, reindex
from db.export import csv_name
from db.testing import append, artifact, grid, grid_cell, image, metric, run_id, status, training_events, write_run


def build_workspace(ws: Path) -> list[str]:
    """A few runs of every kind of event, ingested, then edited through the Store."""
    train, probe, queued, broken = run_id("train", 1), run_id("probe", 2), run_id("train", 3), run_id("sample", 4)
    write_run(ws, train, name="tiny ddpm", created=100.0, events=training_events(300))
    write_run(ws, probe, kind="probe", created=200.0, parent={"run": train, "checkpoint": "latest"},
              events=[status("running", pid=5), grid([11, 51, 101], ["out_6", "out_10", "mid"]),
                      *(grid_cell(layer, t, round(0.5 + 0.001 * t + 0.01 * i, 4))
                        for t in (101, 11, 51) for i, layer in enumerate(("mid", "out_6", "out_10"))),
                      metric("probe/accuracy", 0, 0.61), artifact("figure", "figures/grid.png"),
                      status("done")])
    write_run(ws, queued, created=300.0, queue={"priority": 1}, gpus=1)
    broken_dir = write_run(ws, broken, kind="sample", created=400.0,
                           events=[status("running"), "{not json", metric("fid", 1, 30.5),
                                   metric("fid", 2, float("nan")), metric("fid", 1, 29.0)])
    store = Store.open(ws)
    with Ingester(store) as ingester:
        ingester.ingest_once()
        append(broken_dir, [metric("fid", 2, 28.0), image(3), status("failed", error="Disk full.")],
               torn='{"type": "metric", "key": "fid", "st')
        ingester.ingest_once()
    store.set_tags(train, ["baseline", "paper"])
    store.set_notes(probe, "best cell at out_6, t=11")
    store.rename(queued, "wide queued")
    store.set_priority(queued, 7)
    store.close()
    return [train, probe, queued, broken]


def snapshot(ws: Path, out: Path) -> list[Path]:
    """Every run's CSVs plus a JSON of what the index says about it (no ids of the database file)."""
    written = []
    with Store.open(ws) as store:
        for summary in store.list_runs(order_by="id", descending=False):
            rid = summary.id
            written += export_run_csv(store, rid, out / rid)
            record = asdict(store.get_run(rid))
            facts = {
                "record": record, "summary": asdict(summary),
                "summaries": [asdict(s) for s in store.summaries(rid)],
                "artifacts": [asdict(a) for a in store.artifacts(rid)], "images": store.images(rid),
                "axes": asdict(store.grid_axes(rid)) if store.grid_axes(rid) else None,
                "children": [c.id for c in store.children(rid)],
            }
            path = out / rid / "index.json"
            path.write_text(json.dumps(facts, indent=1, sort_keys=True, default=str))
            written.append(path)
        queue = out / "queue.json"
        queue.write_text(json.dumps([asdict(q) for q in store.queued_jobs()], indent=1))
        written.append(queue)
    return written


def test_reindex_rebuilds_byte_identical_exports(tmp_path):
    ws = tmp_path / "ws"
    ids = build_workspace(ws)
    before = snapshot(ws, tmp_path / "before")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ws / 'studio.sqlite'}{suffix}").unlink(missing_ok=True)
    assert reindex(ws) == 4
    after = snapshot(ws, tmp_path / "after")
    assert [p.relative_to(tmp_path / "after") for p in after] == [p.relative_to(tmp_path / "before") for p in before]
    for a, b in zip(before, after):
        assert a.read_bytes() == b.read_bytes(), a.relative_to(tmp_path / "before")
    assert {p.parent.name for p in before if p.name == "loss_train.csv"} == {ids[0]}
    index = json.loads((tmp_path / "after" / ids[3] / "index.json").read_text())
    assert index["record"]["status"] == "failed" and index["summaries"][0]["count"] == 2
    assert json.loads((tmp_path / "after" / "queue.json").read_text())[0]["priority"] == 7


def test_reindex_keeps_the_old_file_and_leaves_no_temporaries(tmp_path):
    ws = tmp_path / "ws"
    build_workspace(ws)
    (ws / "studio.sqlite").write_bytes(b"corrupt" * 1000)     # the case reindex exists for
    for suffix in ("-wal", "-shm"):
        Path(f"{ws / 'studio.sqlite'}{suffix}").unlink(missing_ok=True)
    assert reindex(ws) == 4
    names = sorted(os.listdir(ws))
    assert "studio.sqlite.old" in names and not any(n.startswith("studio.sqlite.new") for n in names)
    assert (ws / "studio.sqlite.old").read_bytes() == b"corrupt" * 1000
    with Store.open(ws) as store:
        assert store.get_run("tiny ddpm").tags == ("baseline", "paper")


def test_reindex_refuses_while_an_ingester_runs(tmp_path):
    ws = tmp_path / "ws"
    with Store.open(ws) as store, Ingester(store):
        with pytest.raises(RuntimeError, match="only one ingester"):
            reindex(ws)


def test_export_csv_format(tmp_path):
    ws = tmp_path / "ws"
    ids = build_workspace(ws)
    with Store.open(ws) as store:
        paths = export_run_csv(store, ids[1], tmp_path / "out")
        assert [p.name for p in paths] == ["probe_accuracy.csv", "grid.csv"]
        rows = (tmp_path / "out" / "grid.csv").read_text().splitlines()
        assert rows[0] == "timestep,layer,accuracy"
        # In the order of the grid's axes: timesteps 11, 51, 101; layers out_6, out_10, mid.
        assert [tuple(r.split(",")[:2]) for r in rows[1:4]] == [("11", "out_6"), ("11", "out_10"), ("11", "mid")]
        assert rows[-1].startswith("101,mid,")
        paths = export_run_csv(store, ids[0], tmp_path / "train")
        lines = (tmp_path / "train" / "loss_train.csv").read_text().splitlines()
        assert lines[:2] == ["step,value,time", "0,1.0,1000.0"] and len(lines) == 31
        fid = (export_run_csv(store, ids[3], tmp_path / "fid")[0]).read_text().splitlines()
        assert fid == ["step,value,time", "1,29.0,1000.0", "2,28.0,1000.0"]
    assert csv_name("align/out_6") == "align_out_6.csv" and csv_name("a b:c/d") == "a_b_c_d.csv"


def test_an_edit_starts_from_meta_json_not_from_an_older_index(tmp_path):
    """A tag written to meta.json after the index was built (as by a tag given during a reindex) is kept."""
    ws = tmp_path / "ws"
    rid = run_id("train", 1)
    run_dir = write_run(ws, rid, events=[status("done")])
    with Store.open(ws) as store, Ingester(store) as ingester:
        ingester.ingest_once()
        store.add_tag(rid, "a")
        meta = json.loads((run_dir / "meta.json").read_text())
        (run_dir / "meta.json").write_text(json.dumps({**meta, "tags": ["a", "b"], "notes": "kept"}))
        assert store.add_tag(rid, "c") == ("a", "b", "c")
        assert store.get_run(rid).tags == ("a", "b", "c") and store.get_run(rid).notes == "kept"
        store.rename(rid, "renamed")
    assert json.loads((run_dir / "meta.json").read_text()) == {"tags": ["a", "b", "c"], "notes": "kept",
                                                                "name": "renamed"}


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_an_ingester_whose_index_file_was_deleted_or_replaced_rebuilds_it(tmp_path, how):
    ws = tmp_path / "ws"
    ids = [run_id("train", n) for n in range(3)]
    for rid in ids:
        write_run(ws, rid, events=[status("running"), metric("loss/train", 1, 0.5), status("done")])
    with Store.open(ws) as store, Ingester(store) as ingester:
        ingester.ingest_once()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{ws / 'studio.sqlite'}{suffix}").unlink(missing_ok=True)
        if how == "replaced":                           # an empty index of another process, renamed over it
            with Store.open(tmp_path / "other", db_path=tmp_path / "other.sqlite"):
                pass
            os.replace(tmp_path / "other.sqlite", ws / "studio.sqlite")
        stats = ingester.ingest_once()
        assert stats.runs_registered == 3 and store.count_runs() == 3
        assert [s.count for s in store.summaries(ids[0])] == [1]
        assert ingester.ingest_once().runs_registered == 0          # once only
