"""The fast probe protocol against the official one, whole-grid (bench.grid_agreement), on a model that knows something."""

from __future__ import annotations

import argparse
import math

import pytest

from bench.grid_agreement import agreement_line, grid_agreement, ranks, spearman
from bench.probe_grid import both_protocols, cells_of, import_example
from ddae_core.jobs import examples

T, L = [1, 11, 51], ["out_1", "out_2", "out_3", "out_4"]


def grid(values: list[list[float]]) -> dict[int, dict[str, float]]:
    return {t: dict(zip(L, row)) for t, row in zip(T, values)}


OFFICIAL = grid([[0.20, 0.50, 0.60, 0.30], [0.22, 0.55, 0.70, 0.31], [0.18, 0.52, 0.65, 0.25]])


def test_identical_grids_agree_fully():
    a = grid_agreement(T, L, OFFICIAL, OFFICIAL)
    assert (a.mean_diff, a.max_diff, a.rank_correlation, a.cells) == (0, 0, pytest.approx(1.0), 12)
    assert a.best_official == a.best_fast == (11, "out_3") and a.best_apart == (0, 0) and a.meets_goals()


def test_differences_are_points_over_every_cell_and_the_best_cells_are_located():
    fast = {t: dict(row) for t, row in OFFICIAL.items()}
    fast[1]["out_1"] += 0.012                   # 1.2 points
    fast[51]["out_4"] -= 0.024                  # 2.4 points: max
    fast[51]["out_2"] = 0.75                    # the fast grid's best cell moves 1 noise level and 2 layers
    a = grid_agreement(T, L, OFFICIAL, fast)
    assert a.max_diff == pytest.approx(23.0)    # 0.52 -> 0.75
    assert a.mean_diff == pytest.approx((1.2 + 2.4 + 23.0) / 12)
    assert a.best_official == (11, "out_3") and a.best_fast == (51, "out_2") and a.best_apart == (1, 1)
    assert 0.8 < a.rank_correlation < 1 and not a.meets_goals()
    line = agreement_line("shapes", 21.04, a)
    assert line == (f"probe grid (shapes): speedup 21.0x, mean |cell diff| {a.mean_diff:.2f} points, max 23.00 "
                    f"points, rank correlation {a.rank_correlation:.3f}, best cell official (t=11, out_3) fast "
                    "(t=51, out_2)")


def test_spearman_is_over_ranks_with_ties_averaged():
    assert list(ranks([0.3, 0.1, 0.3, 0.2])) == [2.5, 0, 2.5, 1]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 1000]) == pytest.approx(1.0)      # monotone, not linear
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))


def test_only_shared_cells_count_and_no_shared_cell_is_an_error():
    partial = {1: dict(OFFICIAL[1])}
    assert grid_agreement(T, L, OFFICIAL, partial).cells == 4
    with pytest.raises(ValueError, match="no cell in common"):
        grid_agreement(T, L, OFFICIAL, {})


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fast_protocol_agrees_with_the_official_one_on_the_bundled_shapes_model(tmp_path):
    """Both protocols on the bundled shapes model at a small scale (about 45 s of one CPU thread).

    Scaled down: 2 noise levels x 6 layers whose accuracies spread from near chance to ~57%, 512 training
    images, 4 epochs; heads in batches of 32 at lr 3e-3 (the same in both protocols), so that 64 Adam steps
    bring them near where the official 15 epochs at 128 and 1e-3 would, for the same forward passes.
    """
    ws = tmp_path / "ws"
    parent, _ = import_example(ws, "shapes")
    args = argparse.Namespace(
        timesteps="11,101", layers="out_1,out_3,out_4,out_6,out_7,out_9", data="builtin:shapes", epochs=4, views=1,
        train_limit=512, test_limit=500, device="cpu", baselines=False, batch_size=32, lr=3e-3)
    results = both_protocols(ws, parent, args, verbose=False)
    official, fast = results["official"].grid, results["fast"].grid
    a = grid_agreement(official["timesteps"], official["layers"], cells_of(official), cells_of(fast))
    # Features that know something: the best cell far above raw pixels (shipped beside the model, ~10%).
    pixels = examples.manifest("shapes")["baselines"]["pixels"]["accuracy"]
    assert min(official["best"]["accuracy"], fast["best"]["accuracy"]) > pixels + 0.25, (official["best"], pixels)
    # Thresholds for 500 test images: a cell's binomial std is up to 2.2 points, but both protocols score the
    # same images, so what differs is the heads (one cached view against fresh augmentations and noise every
    # epoch, bf16 against fp32 features) and the test pass's noise draws (drawn per batch, and the batches
    # differ: 32 against 128). Measured here: mean 1.03, max 2.2 points, Spearman 0.984, the same best cell.
    # Mean <= 2 points leaves room for another CPU's bf16 (or none) yet fails a protocol that is off by a few
    # points everywhere; Spearman >= 0.9 over cells from 12% to 58% fails a reordering of the layers.
    assert a.mean_diff <= 2.0 and a.rank_correlation >= 0.9 and max(a.best_apart) <= 1, a
