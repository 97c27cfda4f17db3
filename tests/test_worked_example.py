"""The README's worked example, small: the paper's noise-configuration ablation (Figure 4) as one grid sweep.

`ddae train --grid diffusion.n_T=... --seeds 2 --sweep ...` queues a train run per T and seed, each probing
its checkpoint as it is saved; the real scheduler runs them all in worker processes; then the runs table's
groups (db groups API: Store.group_runs) must hold, per T, the count and the mean best probe of its members,
and the parallel-coordinates axes one line per run with its T and best probe. The README runs the same
commands with the tiny preset, T in {1000, 256, 64} and more steps (docs/noise-ablation.sh).
"""

from __future__ import annotations

import statistics

import pytest
import yaml

from db import Store
from ddae_core.cli import main as ddae
from ddae_core.jobs.scheduler import Scheduler

from .fixtures import MICRO_DATA, micro_train_config, tick_until

SWEEP = "noise-T"
TAG = f"sweep:{SWEEP}"
T_VALUES = (1000, 64)


def test_the_noise_ablation_runs_as_one_sweep_and_its_groups_agree_with_their_members(tmp_path, capsys):
    ws = tmp_path / "ws"
    config = tmp_path / "micro.yaml"
    config.write_text(yaml.safe_dump({**micro_train_config(), "n_sample": 4}))
    grid = ",".join(map(str, T_VALUES))
    assert ddae(["train", "--config", str(config), "--data", MICRO_DATA, "--device", "cpu", "--steps", "4",
                 "--batch-size", "16", "--data-limit", "128", "--checkpoint-every", "4",
                 "--grid", f"diffusion.n_T={grid}", "--seeds", "2", "--grid-name", SWEEP,
                 "--sweep", "all", "--sweep-fid-n", "0", "--sweep-probe", "11,out_3",
                 "--queue", "--workspace", str(ws)]) == 0
    assert f"queued sweep {SWEEP} (4 runs, tag {TAG})" in capsys.readouterr().out

    with Store.open(ws) as store:
        trains = store.list_runs(tag=TAG)
        assert len(trains) == 4
        scheduler = Scheduler(ws, store, cpu_slots=2, gpus=[])
        scheduler.require()

        def finished() -> bool:
            probes = store.list_runs(kind="probe")
            runs = [store.get_run(r.id) for r in trains] + probes
            return len(probes) == len(trains) and all(r.status in ("done", "failed", "cancelled") for r in runs)

        try:
            tick_until(scheduler, finished, timeout_s=300, interval_s=0.3)
        finally:
            scheduler.close()
        probes = store.list_runs(kind="probe")
        failed = [r for r in [*trains, *probes] if store.get_run(r.id).status != "done"]
        assert not failed, (store.run_dir(failed[0].id) / "log.txt").read_text()[-2000:]

        # Each member's best probe is its own probe child's (the checkpoint sweep's one cell).
        best_of = {}
        for run in trains:
            children = [p for p in probes if store.get_run(p.id).parent_run == run.id]
            assert len(children) == 1
            best_of[run.id] = store.get_run(children[0].id).best_accuracy
            assert best_of[run.id] is not None and 0 <= best_of[run.id] <= 1
        t_of = {run.id: store.get_run(run.id).spec["config"]["diffusion"]["n_T"] for run in trains}
        assert sorted(t_of.values()) == sorted(T_VALUES * 2)

        # The grouped table: one row per T, its n and mean +- std over the two seeds, from the database.
        groups = store.group_runs(["diffusion.n_T"], ["best"], tag=TAG)
        assert [g.values for g in groups] == [(t,) for t in sorted(T_VALUES)]
        for group in groups:
            (t,) = group.values
            members = [run_id for run_id in best_of if t_of[run_id] == t]
            assert group.n == len(members) == 2
            assert {r.id for r in store.group_members(["diffusion.n_T"], group.values, tag=TAG)} == set(members)
            values = [best_of[m] for m in members]
            stats = group.stats["best"]
            assert stats.count == 2
            assert stats.mean == pytest.approx(statistics.mean(values))
            assert stats.std == pytest.approx(statistics.stdev(values), abs=1e-9)
            assert (stats.min, stats.max) == (pytest.approx(min(values)), pytest.approx(max(values)))

        # The parallel-coordinates plot of best probe against T: one line per run.
        axes = store.axes(["diffusion.n_T", "best"], tag=TAG)
        assert sorted(axes.run_ids) == sorted(best_of)
        lines = dict(zip(axes.run_ids, zip(*axes.values)))
        assert lines == {run_id: (t_of[run_id], pytest.approx(best_of[run_id])) for run_id in best_of}

    # The CLI's grouped table says the same.
    assert ddae(["runs", "list", "--tag", TAG, "--group-by", "diffusion.n_T", "--workspace", str(ws)]) == 0
    table = capsys.readouterr().out
    assert all(str(t) in table for t in T_VALUES)
