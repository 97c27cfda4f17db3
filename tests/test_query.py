"""The query line (db/query.py): precedence, parentheses, not, ranges, lists, tags, spec keys, errors, the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from db import Ingester, QueryError
from db.query import BoolOp, Compare, Not, parse
from db.testing import metric, run_id, status, write_run

from .fixtures import ROOT


@pytest.fixture
def runs(store, workspace):
    """Three finished train runs that differ in noise levels, best accuracy, loss, tags and framework."""
    table = [  # name, n_T, lr, best, loss, tags, model_type
        ("t1000", 1000, 2e-4, 0.91, 0.30, ["baseline"], "DDPM"),
        ("t256", 256, 1e-3, 0.85, 0.20, ["sweep:noise-T"], "DDPM"),
        ("t64", 64, 1e-3, 0.70, 0.40, ["paper"], "EDM"),
    ]
    for n, (name, n_T, lr, best, loss, tags, model_type) in enumerate(table):
        config = {"model_type": model_type, "diffusion": {"n_T": n_T, "betas": [1e-4, 0.02]},
                  "network": {"n_channels": 32}}
        write_run(workspace, run_id("train", n), name=name, created=1000.0 + n, config=config,
                  options={"steps": 100, "lr": lr},
                  events=[metric("loss/train", 10, loss), metric("probe/accuracy", 10, best), status("done")])
        if tags:
            store.register_run(workspace / "runs" / run_id("train", n))
            store.set_tags(run_id("train", n), tags)
    with Ingester(store) as ingester:
        ingester.ingest_once()
    return store


def names(store, where: str) -> list[str]:
    return sorted(r.name for r in store.list_runs(where=where))


def test_and_binds_tighter_than_or_and_not_tighter_than_and():
    tree = parse("a = 1 or b = 2 and not c = 3")
    assert tree == BoolOp("or", (Compare("a", "=", 1),
                                 BoolOp("and", (Compare("b", "=", 2), Not(Compare("c", "=", 3))))))
    assert parse("(a = 1 or b = 2) and c = 3") == BoolOp(
        "and", (BoolOp("or", (Compare("a", "=", 1), Compare("b", "=", 2))), Compare("c", "=", 3)))
    assert parse("   ") is None


def test_spec_keys_of_different_runs_are_filtered_in_the_database(runs):
    assert names(runs, "diffusion.n_T <= 256") == ["t256", "t64"]
    assert names(runs, "diffusion.n_T = 1000") == ["t1000"]
    assert names(runs, "n_channels = 32") == []                    # a key is the full path under config
    assert names(runs, "network.n_channels = 32") == ["t1000", "t256", "t64"]
    assert names(runs, "lr >= 0.001") == ["t256", "t64"]            # options.lr
    assert names(runs, "options.lr < 0.001") == ["t1000"]           # the top level: $.options.lr
    assert names(runs, "model_type = EDM") == ["t64"]
    assert runs.count_runs(where="diffusion.n_T in (64, 1000)") == 2


def test_precedence_parentheses_and_not_select_the_right_runs(runs):
    # and before or: (n_T <= 256 and best > 0.8) or tag:baseline.
    assert names(runs, "diffusion.n_T <= 256 and best > 0.8 or tag:baseline") == ["t1000", "t256"]
    assert names(runs, "diffusion.n_T <= 256 and (best > 0.8 or tag:baseline)") == ["t256"]
    assert names(runs, "tag:paper or tag:baseline and loss < 0.25") == ["t64"]
    assert names(runs, "(tag:paper or tag:baseline) and loss < 0.35") == ["t1000"]
    assert names(runs, "not tag:baseline") == ["t256", "t64"]
    assert names(runs, "not not tag:baseline") == ["t1000"]
    # A sweep's tag holds a colon itself; it reads whole, quoted or not.
    assert names(runs, "tag:sweep:noise-T") == names(runs, 'tag:"sweep:noise-T"') == ["t256"]
    assert names(runs, "tag:sweep") == []
    assert names(runs, "not (best > 0.8 and kind = train)") == ["t64"]


def test_ranges_lists_and_values_a_run_lacks(runs):
    assert names(runs, "best in 0.8..0.9") == ["t256"]
    assert names(runs, "best in 0.85..0.91") == ["t1000", "t256"]      # both ends included
    assert names(runs, "kind in (train, probe) and status in (done)") == ["t1000", "t256", "t64"]
    assert names(runs, "name in ('t64', t256)") == ["t256", "t64"]
    # No run has `seed`: a comparison on it is false, != true, so not stays the complement.
    assert names(runs, "seed = 1") == [] and names(runs, "seed != 1") == ["t1000", "t256", "t64"]
    assert names(runs, "not seed = 1") == ["t1000", "t256", "t64"]


def test_a_bare_number_is_a_number_and_a_quoted_one_a_string(runs):
    assert names(runs, "diffusion.n_T = 64") == ["t64"]
    assert names(runs, "diffusion.n_T = '64'") == []
    assert names(runs, "diffusion.n_T > 100") == ["t1000", "t256"]   # numerically, not as text ('64' > '100')
    assert names(runs, "best >= 9e-1") == ["t1000"]


@pytest.mark.parametrize(("query", "sentence", "column"), [
    ("diffusion.n_T <= ", "expected a value after '<=' at column 18, found the end of the query", 18),
    ("best > 0.8 loss < 1", "expected 'and', 'or' or the end of the query at column 12, found 'loss'", 12),
    ("(best > 0.8 or tag:x", "expected ')' to close the '(' of column 1, at column 21, found the end of the query",
     21),
    ("best in 0.8", "expected '..' and the range's upper end at column 12, found the end of the query", 12),
    ("kind in (train, trian)", "unknown kind 'trian' at column 17; use one of train, probe, align-uniform, "
     "finetune, noisy-classifier, sample, import, fid, similarity, segmentation", 17),
    ("best ! 1", "unexpected character '!' at column 6", 6),
    ("name = 'abc", "the quote at column 8 is never closed", 8),
    ("and best > 1", "expected a name (kind, status, name, best, loss, created, tag:X or a spec key such as "
     "diffusion.n_T) at column 1, found 'and'", 1),
    ("best 0.8", "expected a comparison (<= >= != = < >) or 'in' after 'best' at column 6, found '0.8'", 6),
])
def test_a_malformed_query_names_its_place_in_one_sentence_and_a_caret(store, query, sentence, column):
    with pytest.raises(QueryError) as caught:
        store.list_runs(where=query)
    assert caught.value.sentence == sentence and caught.value.column == column
    assert str(caught.value) == f"{sentence}\n  {query}\n  {' ' * (column - 1)}^"


def test_runs_list_where_in_the_cli(runs, workspace):
    def ddae(*args):
        return subprocess.run([sys.executable, "-m", "ddae_core.cli", "runs", "list", "--workspace",
                               str(workspace), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)

    done = ddae("--where", "diffusion.n_T <= 256 and best > 0.8 or tag:baseline")
    assert done.returncode == 0, done.stderr
    listed = [line.split()[1] for line in done.stdout.splitlines()[1:] if line.strip()]
    assert sorted(listed) == ["t1000", "t256"]
    assert ddae("--where", "diffusion.n_T < 10").stdout == "no runs match\n"
    bad = ddae("--where", "best >")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == ("error: expected a value after '>' at column 7, found the end of the query\n"
                          "  best >\n        ^\n")


def test_the_runs_view_filters_by_its_query_box_and_names_a_mistake_under_it(runs, qtbot):
    from PySide6.QtCore import Qt

    from app.runs.feed import RunsPager
    from app.runs.view import RunsView

    view = RunsView(RunsPager(runs))
    qtbot.addWidget(view)
    view.show()
    view.reload()
    shown = lambda: sorted(view.model.run_at(r).name for r in range(view.model.rowCount()))  # noqa: E731
    assert shown() == ["t1000", "t256", "t64"]
    qtbot.keyClicks(view.query, "diffusion.n_T <= 256 and best > 0.8 or tag:baseline")
    assert shown() == ["t1000", "t256", "t64"]                # nothing applied before Enter
    qtbot.keyClick(view.query, Qt.Key.Key_Return)
    assert shown() == ["t1000", "t256"] and view.query_error.isHidden()
    view.query.setText("best in 0.8")
    qtbot.keyClick(view.query, Qt.Key.Key_Return)
    assert view.query_error.isVisible() and view.query_error.text() == (
        "expected '..' and the range's upper end at column 12, found the end of the query")
    assert shown() == ["t1000", "t256"]                        # the last good query stays
    view.query.clear()                                         # cleared: every run, no mistake
    assert shown() == ["t1000", "t256", "t64"] and view.query_error.isHidden()
