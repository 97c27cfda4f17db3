"""A train run's probe and segmentation children side by side: the Run view's mIoU beside its accuracy, Compare's
probe grids and similarity runs, the runs table's best column, and evaluations of one run launched twice."""

from __future__ import annotations

import numpy as np
import pytest

from ddae_core.cli import main as ddae
from ddae_core.jobs.specs import create_job, execute, train_spec
from tests.app_support import app_settings, no_leftovers, studio  # noqa: F401
from tests.fixtures import ingest, micro_config

DATA = "builtin:shapes?n_train=96&n_test=48"
TINY = ["--epochs", "1", "--train-limit", "32", "--test-limit", "16", "--device", "cpu"]


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """A micro train run with two probe children (one command run twice), a segmentation child and a similarity run.

    The probe grid is t=11 x (out_1, out_3); the segmentation grid t=11,51 x out_3: they overlap in one cell.
    """
    ws = tmp_path_factory.mktemp("beside-ws")
    cfg = micro_config()
    cfg["studio"].update({"checkpoint_every_steps": 4, "sample_every_steps": 100, "sample_steps": 2})
    cfg["n_sample"] = 4
    parent = create_job(ws, train_spec(config=cfg, data=DATA, steps=4, batch_size=16, device="cpu"))
    assert execute(parent, ws, handle_signals=False) == "done"
    probe = ["probe", "--run", parent.name, "--timesteps", "11", "--layers", "out_1,out_3", "--no-baselines",
             *TINY, "--workspace", str(ws)]
    codes = [ddae(probe), ddae(probe)]      # back to back, nothing ingesting: the first registered its name
    segment = ddae(["segment", parent.name, "--timesteps", "11,51", "--layers", "out_3", *TINY,
                    "--workspace", str(ws)])
    similarity = ddae(["similarity", parent.name, "--random-init", "--t", "11", "--layers", "out_1,out_3",
                       "--images", "16", "--device", "cpu", "--workspace", str(ws)])
    ingest(ws)
    return ws, parent, codes, (segment, similarity)


def runs_of(ws, kind):
    from db import Store

    with Store.open(ws) as store:
        return [r for r in store.list_runs() if r.kind == kind]


def test_a_second_probe_of_one_run_gets_a_numbered_name_not_a_refusal(family, capsys):
    ws, parent, codes, _ = family
    assert codes == [0, 0]
    names = sorted(r.name for r in runs_of(ws, "probe"))
    assert names == [f"probe of {parent.name}", f"probe of {parent.name} (2)"]
    # A name the user chose is still refused when taken, in one sentence.
    assert ddae(["probe", "--run", parent.name, "--name", names[0], *TINY, "--workspace", str(ws)]) == 2
    assert names[0] in capsys.readouterr().err


def test_the_train_runs_grid_shows_the_segmentation_miou_beside_its_accuracy_on_the_same_axes(family, studio, qtbot):
    from app.run.grid_beside import MIOU, MIOU_TITLE
    from app.run.panels import GridPanel
    from ddae_core.engine.evaluation.segmentation import read_segmentation

    ws, parent, _, codes = family
    assert codes == (0, 0)
    (segmentation,) = runs_of(ws, "segmentation")
    miou = read_segmentation(ws / "runs" / segmentation.id)["miou"]
    window = studio(ws, run_scheduler=False)
    window.show_run(parent.name)
    panel = window.run_view.panel(GridPanel)
    beside = panel.beside
    qtbot.waitUntil(lambda: beside.choice.model().item(3).isEnabled() and len(panel.heatmap.cells()) == 2,
                    timeout=10_000)
    beside.show_beside(MIOU)
    assert beside.heatmap.isVisibleTo(panel) and beside.heatmap.axes() == panel.heatmap.axes() == ([11], ["out_1", "out_3"])
    # Only the shared cell is drawn, with the segmentation run's own number; the others are named, not lost.
    assert beside.heatmap.cells() == {(11, "out_3"): pytest.approx(miou["11"]["out_3"])}
    status = beside.heatmap.status.text()
    assert f"segmentation run {segmentation.name}: 1 of the probe grid's 2 cells" in status
    assert "No segmentation cell at out_1 at t=11." in status and "not shown: out_3 at t=51." in status
    assert beside.heatmap.plot.titleLabel.text == MIOU_TITLE
    assert panel.heatmap.plot.titleLabel.text.startswith("Linear probe accuracy")


def test_compare_shows_a_segmentation_grid_as_miou_and_a_similarity_runs_cka(family, qtbot, app_settings):
    from app.compare.feed import RunBundle
    from db import Store
    from ddae_core.engine.evaluation.similarity import read_similarity
    from tests.app_support import compare_runs, compare_view

    ws, parent, _, codes = family
    assert codes == (0, 0)
    probe = next(r for r in runs_of(ws, "probe") if r.name == f"probe of {parent.name}")     # the CLI's first
    (segmentation,) = runs_of(ws, "segmentation")
    (similarity,) = runs_of(ws, "similarity")
    result = read_similarity(ws / "runs" / similarity.id)
    with Store.open(ws) as store:
        view = compare_view(qtbot, store)
        compare_runs(view, [probe.id, segmentation.id, similarity.id])
        grids = view.grids
        # The segmentation grid sits among the probe grids, its cells called mIoU; the similarity run has none.
        assert set(grids.heatmaps) == {probe.id, segmentation.id}
        seg_map = grids.heatmaps[segmentation.id]
        assert "(mIoU)" in seg_map.plot.titleLabel.text and seg_map.value_name == "mIoU"
        assert grids.heatmaps[probe.id].value_name == "accuracy" and "(mIoU)" not in \
            grids.heatmaps[probe.id].plot.titleLabel.text
        assert set(seg_map.cells()) == {(11, "out_3"), (51, "out_3")}
        assert "accuracy or mIoU" in grids.message.text()
        assert grids.difference.value_name == "mIoU − accuracy"
        # The summary: the mIoU in a column of its own, the similarity run's measures as columns.
        headers, rows = view.summary_model.headers(), {r[0]: r for r in view.summary_model.rows()}
        seg_row, sim_row = rows[segmentation.name], rows[similarity.name]
        best = RunBundle.best_cell(next(b for b in view.bundles() if b.id == segmentation.id))
        assert seg_row[headers.index("best accuracy")] is None
        assert float(seg_row[headers.index("best mIoU")]) == pytest.approx(best[2])
        assert float(rows[probe.name][headers.index("best accuracy")]) > 0
        assert sim_row[headers.index("similarity/cka_mean")] == pytest.approx(float(np.mean(result["cka"])), abs=1e-6)
        # Its CKA heatmap, as its Run view shows it.
        panel = view.similarity.panels[similarity.id]
        assert list(view.similarity.panels) == [similarity.id]
        cka = panel.heatmaps["cka"].cells()
        assert cka[(0, "out_3")] == pytest.approx(result["cka"][0][1]) and len(cka) == 4
        assert similarity.name in panel.summary.text() and "B = random init" in panel.summary.text()
        view.close()


def test_the_probe_form_queued_twice_without_a_name_numbers_the_second(family, studio):
    ws, parent, _, _ = family
    window = studio(ws, run_scheduler=False)
    form = window.launch_view.show_kind("probe", parent.name)
    form.set_values(timesteps="11", layers="out_1", device="cpu")
    first, second = form.submit(), form.submit()
    assert first and second and first != second
    names = {window.store.get_run(r).name for r in (first, second)}
    assert names == {f"probe of {parent.name} (3)", f"probe of {parent.name} (4)"}    # the CLI made (1) and (2)
    form.set_values(name=f"probe of {parent.name}")
    assert form.submit() is None and "is already the name of run" in form.error_of("name")
