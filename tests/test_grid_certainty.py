"""The arithmetic behind 'how sure is this grid': intervals, the chance band, fitted levels, edges, selection."""

from __future__ import annotations

import math

import pytest

from ddae_core.engine.evaluation.certainty import (
    chance_ceiling,
    edge_note,
    edge_of_range,
    fitted_levels,
    held_out_choice,
    next_timesteps,
    selection_holdout,
    selection_of,
    selection_words,
    wilson_interval,
    within_chance,
)


def test_wilson_interval_matches_the_textbook_numbers():
    # 81 right of 263 (Wilson 1927 via Newcombe 1998, table I, example 2): 0.2553..0.3662.
    lo, hi = wilson_interval(81 / 263, 263)
    assert (lo, hi) == (pytest.approx(0.2553, abs=1e-4), pytest.approx(0.3662, abs=1e-4))
    # 0 of 10 (Newcombe's example 5): 0..0.2775, never below 0 as the normal approximation would go.
    assert wilson_interval(0.0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson_interval(0.5, 0) == (0.0, 1.0)


def test_the_interval_narrows_as_one_over_root_n():
    w200 = wilson_interval(0.4, 200)[1] - wilson_interval(0.4, 200)[0]
    w800 = wilson_interval(0.4, 800)[1] - wilson_interval(0.4, 800)[0]
    assert w200 / w800 == pytest.approx(2.0, rel=0.02)
    assert w200 == pytest.approx(2 * 1.96 * math.sqrt(0.4 * 0.6 / 200), rel=0.02)


def test_chance_band_is_chance_plus_two_binomial_sigmas():
    # 10 classes on 200 images: sigma = sqrt(0.1 * 0.9 / 200) = 0.0212, so the ceiling is 14.24%.
    assert chance_ceiling(10, 200) == pytest.approx(0.1 + 2 * 0.0212132, abs=1e-6)
    assert within_chance(0.14, 10, 200) and not within_chance(0.145, 10, 200)
    assert not within_chance(0.14, 10, 2000)        # more images, a narrower band: 11.3%


def test_fitted_levels_never_paint_noise_as_structure():
    # 9.5..11.0% on 200 images: the 95% interval at 11% is about 8.7 points wide, so the scale is too.
    lo, hi = fitted_levels([0.095, 0.10, 0.11], 200)
    width = wilson_interval(0.11, 200)[1] - wilson_interval(0.11, 200)[0]
    assert hi - lo == pytest.approx(width, abs=1e-9)
    assert (lo + hi) / 2 == pytest.approx(0.1025)
    # A grid whose spread is real keeps its own range, reaching down to the baselines marked on it.
    assert fitted_levels([0.30, 0.62], 2000, marks=[0.25]) == (0.25, 0.62)
    # Widening stays inside 0..1.
    lo, hi = fitted_levels([0.99, 1.0], 50)
    assert hi == 1.0 and lo == pytest.approx(1.0 - (wilson_interval(0.99, 50)[1] - wilson_interval(0.99, 50)[0]))


def test_a_best_noise_level_at_the_edge_is_named_with_what_to_add():
    grid = [1, 11, 21, 31, 41, 51, 61, 71, 81, 91, 101]
    assert edge_of_range(grid, 101) == "largest" and edge_of_range(grid, 1) == "smallest"
    assert edge_of_range(grid, 51) is None and edge_of_range([11], 11) is None
    assert next_timesteps(grid, 101, high=1000) == [121, 141]
    assert next_timesteps(grid, 101, high=130) == [121]
    assert next_timesteps([11, 21, 31], 11) == [1]
    assert next_timesteps([21, 41, 61], 21) == [1]
    assert next_timesteps(grid, 1) == [] and next_timesteps(grid, 51) == []
    note = edge_note(grid, 101, high=1000)
    assert "t=101" in note and "largest" in note and "t=121,141" in note
    assert "lowest the model has" in edge_note(grid, 1) and edge_note(grid, 51) == ""


def test_held_out_selection_where_the_split_allows():
    assert selection_holdout(10_000, None) == 1_000
    assert selection_holdout(2_000, None) == 0          # 200 held out would choose on noise: choose on test
    assert selection_holdout(64, 16) == 16 and selection_holdout(64, 0) == 0 and selection_holdout(64, 64) == 0
    old = {"best": {"timestep": 11, "layer": "out_3", "accuracy": 0.4}}      # a grid.json from before the field
    assert selection_of(old) == "test" and selection_words(old) == "best on test"
    new = {"selection": {"on": "held-out", "images": 1000, "accuracy": 0.41}}
    assert selection_of(new) == "held-out" and selection_words(new) == "chosen on 1,000 held-out training images"
    assert held_out_choice(old) is None and held_out_choice(None) is None
    assert held_out_choice({**old, **new}) == (11, "out_3")


def test_classify_knows_its_heads_range_and_a_labelled_folder():
    from ddae_core.engine.evaluation.certainty import head_range_note, tally, true_class

    heads = [1, 11, 21, 101]
    assert head_range_note(heads, 900).startswith("t=900 is outside the heads' range (t=1..101)")
    assert "nearest head, t=101" in head_range_note(heads, 900)
    assert head_range_note(heads, 50) == "" and head_range_note(heads, 101) == "" and head_range_note([], 900) == ""
    assert "nearest head, t=1" in head_range_note([1, 11], 0)
    classes = ["airplane", "cat", "truck"]
    assert true_class("data/test/Cat/0001.png", classes) == "cat"
    assert true_class("photos/holiday.png", classes) is None
    assert tally([("cat", "cat"), ("truck", "cat"), ("cat", None), (None, "truck")]) == (1, 3)
