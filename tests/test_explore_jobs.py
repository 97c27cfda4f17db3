"""The similarity and segmentation job kinds on a micro model: spec refusals, the runs, numbers checked directly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ddae_core.cli import main as ddae
from ddae_core.engine.checkpoint import load_model
from ddae_core.engine.errors import ConfigError
from ddae_core.engine.evaluation.segmentation import CLASSES, HEADS_FILE, PixelHeads, shapes_with_masks
from ddae_core.engine.evaluation.similarity import linear_cka, read_similarity
from ddae_core.engine.evaluation.sources import random_init_model
from ddae_core.jobs.explore_specs import segmentation_spec, similarity_spec
from ddae_core.jobs.specs import create_job, execute, train_spec
from ddae_core.rundir import list_checkpoints

from .fixtures import micro_config

DATA = "builtin:shapes?n_train=96&n_test=48"


def run(ws, spec):
    run_dir = create_job(ws, spec)
    return run_dir, execute(run_dir, ws, handle_signals=False)


def events(run_dir, type_):
    lines = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return [e for e in lines if e["type"] == type_]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A micro DDPM model trained for 8 steps, with checkpoints at 4 and 8."""
    ws = tmp_path_factory.mktemp("explore-ws")
    cfg = micro_config()
    cfg["studio"].update({"checkpoint_every_steps": 4, "sample_every_steps": 100, "sample_steps": 2})
    cfg["n_sample"] = 4
    run_dir, status = run(ws, train_spec(config=cfg, data=DATA, steps=8, batch_size=16, device="cpu"))
    assert status == "done"
    return ws, run_dir


def test_similarity_spec_refuses_a_comparison_with_itself_and_two_second_models(trained):
    ws, parent = trained
    with pytest.raises(ConfigError, match="other: .*second run"):
        similarity_spec(parent, device="cpu")
    with pytest.raises(ConfigError, match="random_init"):
        similarity_spec(parent, other=parent.name, random_init=True, device="cpu")
    spec = similarity_spec(parent, checkpoint=8, other_checkpoint=4, device="cpu", layers="out_1,out_3")
    assert spec["options"]["timestep"] == 11 and spec["options"]["layers"] == ["out_1", "out_3"]


def test_similarity_between_two_checkpoints_matches_cka_on_the_same_features(trained):
    ws, parent = trained
    run_dir, status = run(ws, similarity_spec(parent, checkpoint=8, other_checkpoint=4, layers="out_1,out_3",
                                              images=24, k=5, device="cpu"))
    assert status == "done"
    result = read_similarity(run_dir)
    assert result["a"]["checkpoint"] == 8 and result["b"]["checkpoint"] == 4
    assert result["layers_a"] == result["layers_b"] == ["out_1", "out_3"] and result["images"] == 24
    # The same images with the same noise, extracted here directly, give the same CKA.
    from ddae_core.engine.data import load_split
    from ddae_core.engine.evaluation.features import extract_features

    images = load_split(DATA, "test", limit=24, resolution=32).images
    steps = dict(list_checkpoints(parent))
    feats = [extract_features(load_model(steps[s], device="cpu"), images, 11, ["out_1", "out_3"]) for s in (8, 4)]
    for r, a in enumerate(["out_1", "out_3"]):
        for c, b in enumerate(["out_1", "out_3"]):
            assert result["cka"][r][c] == pytest.approx(linear_cka(feats[0][a], feats[1][b]), abs=1e-5)
    assert 0 <= np.min(result["mutual_knn"]) and np.max(result["mutual_knn"]) <= 1
    assert [e["path"] for e in events(run_dir, "artifact")] == ["similarity.json"]


def test_similarity_against_random_init_from_the_cli(trained, capsys):
    ws, parent = trained
    code = ddae(["similarity", parent.name, "--random-init", "--t", "51", "--layers", "out_2,out_3", "--images", "16",
                 "--device", "cpu", "--workspace", str(ws)])
    assert code == 0
    out = capsys.readouterr().out
    assert "B = random init" in out and "CKA at t=51 on 16 images" in out
    run_dir = next(p for p in (ws / "runs").iterdir() if "-similarity-" in p.name and
                   read_similarity(p)["b"]["name"] == "random init")
    result = read_similarity(run_dir)
    model = load_model(list_checkpoints(parent)[-1][1], device="cpu")
    assert random_init_model(model) is not None and result["timestep"] == 51
    assert np.asarray(result["cka"]).shape == (2, 2)


def test_segmentation_spec_refuses_data_without_masks(trained):
    _, parent = trained
    with pytest.raises(ConfigError, match="data: must be builtin:shapes"):
        segmentation_spec(parent, data="cifar10", device="cpu")


def test_segmentation_grid_reports_miou_equal_to_a_direct_confusion_count(trained):
    ws, parent = trained
    spec = segmentation_spec(parent, timesteps="11", layers="out_1,out_3", epochs=2, batch_size=48, train_limit=64,
                             test_limit=48, device="cpu")
    run_dir, status = run(ws, spec)
    assert status == "done"
    cells = {(e["timestep"], e["layer"]): e["accuracy"] for e in events(run_dir, "grid_cell")}
    assert set(cells) == {(11, "out_1"), (11, "out_3")}
    # Recompute: the saved heads on the test images with the test pass's noise (seed 0, one batch of 48).
    saved = torch.load(run_dir / HEADS_FILE)
    model = load_model(list_checkpoints(parent)[-1][1], device="cpu")
    heads = PixelHeads({n: model.net.tap_channels[n] for n in saved["layers"]}, len(CLASSES))
    heads.load_state_dict(saved["heads"][11])
    images, masks = shapes_with_masks(DATA, "test", 48, 32)
    noise = torch.randn((48, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        acts, _, _ = model.forward_pass(images.float() / 255, 11, saved["layers"], noise=noise)
        logits = {n: F.interpolate(h(acts[n]), size=(32, 32), mode="bilinear", align_corners=False)
                  for n, h in zip(heads.layers, heads.heads)}
    for layer, value in logits.items():
        predicted, truth = value.argmax(1).numpy().ravel(), masks.numpy().ravel().astype(int)
        counts = np.zeros((11, 11))
        np.add.at(counts, (truth, predicted), 1)
        ious = [counts[c, c] / (counts[c].sum() + counts[:, c].sum() - counts[c, c])
                for c in range(11) if counts[c].sum() + counts[:, c].sum() > 0]
        assert cells[(11, layer)] == pytest.approx(float(np.mean(ious)), abs=1e-5)
    result = json.loads((run_dir / "segmentation.json").read_text())
    assert result["best"]["miou"] == pytest.approx(max(cells.values()), abs=1e-6)


def test_run_view_shows_the_similarity_heatmaps_with_a_best_cells_row_argmax_and_the_miou_grid(trained, qtbot):
    from functools import partial

    from app.run.explore_panels import SegmentationPanel, SimilarityPanel
    from app.run.feed import RunFeed
    from app.run.view import RunView
    from db import Store
    from ddae_core.jobs.eval_specs import probe_spec
    from tests.fixtures import ingest

    ws, parent = trained
    run(ws, probe_spec(parent, timesteps="11", layers="out_1,out_2,out_3", protocol="knn", baselines=False,
                       train_limit=64, test_limit=48, device="cpu"))
    similarity, _ = run(ws, similarity_spec(parent, random_init=True, layers="out_1,out_2,out_3", images=24,
                                            device="cpu"))
    segmentation, _ = run(ws, segmentation_spec(parent, timesteps="11,51", layers="out_3", epochs=1, train_limit=32,
                                                test_limit=16, device="cpu"))
    ingest(ws)
    result = read_similarity(similarity)
    cell = result["best_cell"]
    assert cell is not None and cell["timestep"] == result["timestep"] == 11
    row = result["cka"][result["layers_a"].index(cell["layer"])]
    with Store.open(ws) as store:
        view = RunView(partial(RunFeed, store))
        qtbot.addWidget(view)
        assert view.show_run(similarity.name)
        panel = view.panel(SimilarityPanel)
        assert panel.highlighted("cka") == (cell["layer"], result["layers_b"][int(np.argmax(row))])
        heatmap = panel.heatmaps["cka"]
        assert heatmap.axes() == ([0, 1, 2], ["out_1", "out_2", "out_3"])
        assert heatmap.cells()[(1, "out_3")] == pytest.approx(result["cka"][1][2])
        assert "Where does B hold what A's best cell holds?" in panel.summary.text()
        assert "B = random init" in panel.summary.text()
        assert view.show_run(segmentation.name)
        grid = view.panel(SegmentationPanel).heatmap
        cells = {(e["timestep"], e["layer"]): e["accuracy"] for e in events(segmentation, "grid_cell")}
        assert grid.cells() == pytest.approx(cells) and len(cells) == 2
        assert "mIoU" in grid.status.text()


def test_launch_forms_of_similarity_and_segmentation_name_the_bad_field(trained, qtbot):
    from app.launch.kinds import KIND
    from app.launch.view import LaunchForm

    ws, parent = trained
    form = LaunchForm(KIND["similarity"], None)
    qtbot.addWidget(form)
    values = {**form.values(), "parent": parent.name}
    with pytest.raises(ConfigError, match="other"):
        KIND["similarity"].build(values, ws)
    spec = KIND["similarity"].build({**values, "random_init": True, "layers": "out_3"}, ws)
    assert spec["options"]["random_init"] and spec["options"]["layers"] == ["out_3"]
    segment = LaunchForm(KIND["segmentation"], None)
    qtbot.addWidget(segment)
    with pytest.raises(ConfigError, match="data"):
        KIND["segmentation"].build({**segment.values(), "parent": parent.name, "data": "cifar10"}, ws)
    spec = KIND["segmentation"].build({**segment.values(), "parent": parent.name}, ws)
    assert spec["kind"] == "segmentation" and spec["options"]["epochs"] == 5


def test_segment_from_the_cli_and_similarity_queued_through_the_one_door(trained, capsys):
    from db import Store

    ws, parent = trained
    code = ddae(["segment", parent.name, "--timesteps", "11", "--layers", "out_3", "--epochs", "1", "--train-limit", "16",
                 "--test-limit", "8", "--device", "cpu", "--workspace", str(ws)])
    captured = capsys.readouterr()
    assert code == 0 and "segmentation" in captured.out, captured.err
    assert ddae(["segment", parent.name, "--data", "cifar10", "--workspace", str(ws)]) == 2
    assert "data: must be builtin:shapes" in capsys.readouterr().err
    assert ddae(["similarity", parent.name, "--random-init", "--queue", "--device", "cpu", "--workspace", str(ws)]) == 0
    with Store.open(ws) as store:
        queued = [store.get_run(q.run) for q in store.queued_jobs()]
    assert [r.kind for r in queued] == ["similarity"] and queued[0].parent_ref == parent.name
