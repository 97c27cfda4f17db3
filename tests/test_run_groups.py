"""The lab's run table in the database: setting columns, "only what varies", groups equal to their members."""

from __future__ import annotations

import statistics

import pytest

from db.testing import write_lab
from ddae_core.rundir.errors import UserError
from tests.fixtures import ingest


@pytest.fixture
def lab(workspace):
    truth = write_lab(workspace, n_Ts=(1000, 256, 64), seeds=3)
    ingest(workspace)
    return truth


def test_every_setting_is_a_typed_key_in_its_section(store, lab):
    keys = dict(store.setting_keys())
    assert keys["diffusion.n_T"] == "diffusion"
    assert keys["network.ch"] == "network"
    assert keys["seed"] == "training"              # a train run's option
    assert keys["protocol"] == "evaluation"        # a probe's option
    assert [k for k, _ in store.setting_keys()][0].startswith("network.")     # sections in the table's order
    train = next(iter(lab))
    values = store.column_values([train], ["diffusion.n_T", "diffusion.betas", "lrate", "fid", "best_layer"])[train]
    assert values == {"diffusion.n_T": lab[train]["n_T"], "diffusion.betas": "[0.0001,0.02]", "lrate": 2e-4,
                      "fid": pytest.approx(lab[train]["fid"]), "best_layer": "out_6"}


def test_only_what_varies_among_the_listed_runs(store, lab):
    assert set(store.varying_keys(kind="train")) == {"diffusion.n_T", "seed"}
    assert set(store.varying_keys(kind="train", where="diffusion.n_T = 256")) == {"seed"}
    # Across kinds, keys that only some runs have vary too (a probe has no seed).
    assert {"seed", "protocol", "lrate"} <= set(store.varying_keys())


def test_groups_equal_what_their_members_give(store, lab):
    metrics = ["best", "fid", "fid_step", "loss", "gain_pixels"]
    groups = store.group_runs(["diffusion.n_T"], metrics, kind="train")
    assert [g.values for g in groups] == [(64,), (256,), (1000,)]
    for group in groups:
        members = [t for t in lab.values() if t["n_T"] == group.values[0]]
        assert group.n == len(members) == 3
        for name in metrics:
            numbers = [m[name] for m in members]
            stats = group.stats[name]
            assert stats.count == 3
            assert stats.mean == pytest.approx(statistics.mean(numbers))
            assert stats.std == pytest.approx(statistics.stdev(numbers), abs=1e-9)
            assert (stats.min, stats.max) == pytest.approx((min(numbers), max(numbers)))
        assert group.protocols == ("fast",)
        assert group.baseline_pixels == pytest.approx(0.3)
        ids = {r.id for r in store.group_members(["diffusion.n_T"], group.values, kind="train")}
        assert ids == {rid for rid, t in lab.items() if t["n_T"] == group.values[0]}


def test_groups_by_two_columns_filter_in_the_database_and_keep_missing_values(store, lab):
    groups = store.group_runs(["diffusion.n_T", "seed"], ["best"], where="kind = train and diffusion.n_T in 200..2000")
    assert len(groups) == 6 and all(g.n == 1 for g in groups)
    assert groups[0].stats["best"].std is None                 # one member: no spread
    by_kind = store.group_runs(["kind", "seed"], ["best"])
    missing = [g for g in by_kind if g.values[1] is None]      # probes and FID runs have no seed
    assert {g.values[0] for g in missing} == {"probe", "fid"}
    assert {r.kind for r in store.group_members(["kind", "seed"], ("probe", None))} == {"probe"}


def test_sort_by_a_setting_or_a_metric_in_the_database(store, lab):
    by_fid = [r.id for r in store.list_runs(kind="train", order_by="fid", descending=False)]
    assert by_fid == sorted(lab, key=lambda rid: lab[rid]["fid"])
    by_t = [r.id for r in store.list_runs(kind="train", order_by="diffusion.n_T", descending=True)]
    assert [lab[rid]["n_T"] for rid in by_t] == sorted((t["n_T"] for t in lab.values()), reverse=True)
    with pytest.raises(ValueError, match="Cannot sort runs by"):
        store.list_runs(order_by="colour")


def test_axes_give_one_value_per_matching_run(store, lab):
    axes = store.axes(["diffusion.n_T", "best", "seed"], kind="train", where="best > 0.55")
    expected = [rid for rid in sorted(lab) if lab[rid]["best"] > 0.55]
    assert list(axes.run_ids) == expected
    assert list(axes.values[0]) == [lab[rid]["n_T"] for rid in expected]
    assert list(axes.values[1]) == pytest.approx([lab[rid]["best"] for rid in expected])
    # Several kinds (an IN list on the raw cursor), a metric read through its subquery, and no match at all.
    both = store.axes(["kind", "fid"], kind=["train", "fid"], status="done")
    assert sorted(both.values[0]).count("train") == len(lab) == sorted(both.values[0]).count("fid")
    fids = dict(zip(both.run_ids, both.values[1]))
    assert [fids[rid] for rid in lab] == pytest.approx([truth["fid"] for truth in lab.values()])
    assert store.axes(["diffusion.n_T", "best"], where="best > 2").values == ((), ())


def test_bad_group_requests_are_one_sentence(store, lab):
    with pytest.raises(UserError, match="Cannot aggregate 'colour'"):
        store.group_runs(["diffusion.n_T"], ["colour"])
    with pytest.raises(UserError, match="Group by at least one column"):
        store.group_runs([], ["best"])


def test_an_index_from_before_settings_gets_them_when_opened(workspace, lab):
    """A database of schema 0003 (no run_settings) is filled from the spec JSON of its run rows on upgrade."""
    from alembic import command
    from sqlalchemy import create_engine

    from db import Store
    from db.engine import alembic_config

    engine = create_engine(f"sqlite:///{workspace / 'studio.sqlite'}")
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0003")
    engine.dispose()
    with Store.open(workspace) as store:
        assert set(store.varying_keys(kind="train")) == {"diffusion.n_T", "seed"}
        assert len(store.group_runs(["diffusion.n_T"], ["best"], kind="train")) == 3


def test_the_query_line_names_metrics_too(store, lab):
    low_fid = {r.id for r in store.list_runs(kind="train", where="fid < 21.5 or best_layer = out_3")}
    assert low_fid == {rid for rid, t in lab.items() if t["fid"] < 21.5}
    assert store.count_runs(kind="train", where="gain_pixels in 0.3..0.36 and best_t = 51") == sum(
        0.3 <= t["gain_pixels"] <= 0.36 for t in lab.values())
