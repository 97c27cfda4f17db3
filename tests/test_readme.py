"""README figures come from the files that measured them (bench.readme), printed by the one formatter."""

from __future__ import annotations

import json
import re
from statistics import NormalDist

import numpy as np
import pytest

from bench import readme
from bench.results import Result, load_all
from ddae_core.engine.evaluation.certainty import Z95
from ddae_core.engine.spec.options import ProbeOptions
from ddae_core.engine.training import BUDGET_CALIBRATION
from ddae_core.rundir.figures import percent, points

# Figures in README.md outside the generated blocks, each quoted from a named source (not measured here).
QUOTED = {
    "90.05%": "the official repository's README: DDPM_ddpm best-probe checkpoint (epoch 800)",
    "88.23%": "the official repository's README: DDPM_ddpm best-FID checkpoint (epoch 1999)",
    "85.73%": "the official repository's README: DiT-XL/2 linear probe on CIFAR-10 (layer-13)",
    "66.57%": "the official repository's README: DiT-XL/2 linear probe on Tiny-ImageNet (layer-13)",
    "84.3%": "the paper's Table 3: DiT-XL/2 linear probe on CIFAR-10",
    "66.3%": "the paper's Table 3: DiT-XL/2 linear probe on Tiny-ImageNet",
    "98.4%": "the paper's Table 4: DiT-XL/2 fine-tuned on CIFAR-10",
    "77.8%": "the paper's Table 4: DiT-XL/2 fine-tuned on Tiny-ImageNet",
}
# Figures in README.md outside the generated blocks that state a setting of the code, kept equal to it here.
SETTINGS = {"5%": 100 * BUDGET_CALIBRATION,
            "10%": ProbeOptions.model_fields["knn_preview"].default,      # the k-NN preview's share of the images
            "95%": 100 * (1 - 2 * (1 - NormalDist().cdf(Z95)))}      # the heatmap's interval
FIGURE = re.compile(r"\b\d+(?:\.\d+)?%")


def test_readme_generated_blocks_equal_what_the_files_give():
    text = readme.README.read_text()
    assert {m.group("name") for m in readme.BLOCK.finditer(text)} == set(readme.BLOCKS)
    assert readme.stale_blocks(text) == [], "README.md is stale: run python -m bench.readme"


def test_readme_has_no_typed_figure_outside_generated_blocks():
    outside = readme.BLOCK.sub("", readme.README.read_text())
    typed = [f for f in FIGURE.findall(outside) if f not in QUOTED and f not in SETTINGS]
    assert typed == [], f"figures typed by hand in README.md (generate them with bench.readme): {typed}"
    for shown, value in SETTINGS.items():
        assert float(shown.rstrip("%")) == pytest.approx(value, abs=1e-4)


def test_readme_quotes_every_bundled_grid_with_its_protocol_and_baselines():
    text = readme.README.read_text()
    for name in ("shapes", "cifar10"):
        facts = readme.example_facts(name)
        grid = readme._grid_sentence(facts)
        assert grid in " ".join(text.split())
        assert facts.protocol_label in grid
        assert percent(facts.pixels) in grid and percent(facts.random_init) in grid


def test_a_readme_figure_follows_its_file(tmp_path):
    """Change the shipped grid's best accuracy and the README's block goes stale: the test above can fail."""
    src = readme.EXAMPLES / "shapes"
    facts = readme.example_facts("shapes")
    info = json.loads((src / "example.json").read_text())
    probe = next(r["id"] for r in info["runs"] if r["kind"] == "probe")
    grid = json.loads((src / probe / "grid.json").read_text())
    grid["best"]["accuracy"] = facts.best_accuracy - 0.05
    copy = tmp_path / "shapes"
    for run in [*info.get("ancestors", []), *info["runs"]]:
        (copy / run["id"]).mkdir(parents=True)
        for f in (src / run["id"]).iterdir():
            if f.is_file():
                (copy / run["id"] / f.name).write_bytes(f.read_bytes())
    (copy / "example.json").write_text(json.dumps(info))
    (copy / probe / "grid.json").write_text(json.dumps(grid))
    changed = readme.example_facts("shapes", root=tmp_path)
    assert readme._grid_sentence(changed) != readme._grid_sentence(facts)
    assert percent(facts.best_accuracy - 0.05) in readme._grid_sentence(changed)


def test_stage_facts_see_the_stall_and_the_steps():
    facts = readme.example_facts("shapes")
    first, second = facts.stages
    # The first stage's machine stalled for about 20 minutes; the second ran straight through.
    assert 19 < first.stall_min < 21 and second.stall_min == 0
    assert first.steps + second.steps == facts.steps
    info = json.loads((readme.EXAMPLES / "shapes" / "example.json").read_text())
    assert second.steps == info["steps"]


def test_benchmark_lines_are_the_recorded_ones():
    block = readme.benchmarks_block()
    results = load_all()
    assert results, "bench/results/ holds no recorded line"
    for r in results:
        assert isinstance(r, Result) and r.line in block and r.date in block


@pytest.mark.parametrize("value, shown", [
    (np.float32(807 / 2000), "40.4%"),      # 0.40349999 as stored
    (0.4035, "40.4%"),
    (np.float32(645 / 2000), "32.3%"),      # 0.3225, half up
    (0.909, "90.9%"),
    (1.0, "100.0%"),
    (0.0, "0.0%"),
    (None, "-"),
])
def test_one_formatter_rounds_a_stored_fraction_half_up(value, shown):
    assert percent(value) == shown


def test_points_are_signed_and_never_minus_zero():
    assert points(float(np.float32(807 / 2000)) - float(np.float32(645 / 2000))) == "+8.1"
    assert points(-0.058) == "-5.8"
    assert points(-0.0004) == "+0.0"


def test_a_benchmark_records_its_last_line_where_the_readme_reads_it(tmp_path, monkeypatch, capsys):
    from bench import results

    monkeypatch.setattr(results, "RESULTS", tmp_path)
    kept = results.record("store", "store: ingest: 1 events/s, history: 2.0 ms, run list: 3.0 ms")
    assert capsys.readouterr().out.strip() == kept.line
    assert results.load("store") == kept and results.load_all() == [kept]
    assert kept.machine and re.fullmatch(r"\d{4}-\d{2}-\d{2}", kept.date)
    monkeypatch.setenv("DDAE_BENCH_NO_RECORD", "1")
    results.record("gui", "gui: p99 stall: 1.0 ms")
    assert results.load("gui") is None
