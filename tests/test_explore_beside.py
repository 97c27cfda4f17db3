"""A train run's probe and segmentation children side by side: the Run view's mIoU beside its accuracy, Compare's
probe grids and similarity runs, the runs table's best column, and evaluations of one run launched twice."""

from __future__ import annotations

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
    codes = [ddae(probe)]
    ingest(ws)          # as the app or `ddae queue serve` would between the two: the first name is now taken
    codes.append(ddae(probe))
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
