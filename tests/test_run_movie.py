"""The heatmap over training: real probe grids of one micro model at three checkpoints, as the Run view's movie."""

from __future__ import annotations

import json

import pytest

from app.run.feed import RunFeed
from app.run.movie_panel import MoviePanel
from app.run.view import RunView
from ddae_core.jobs.eval_specs import probe_spec
from ddae_core.jobs.specs import create_job, execute, train_spec
from tests.fixtures import ingest, micro_config

DATA = "builtin:shapes?n_train=96&n_test=48"
STEPS = (4, 8, 12)
TIMESTEPS, LAYERS = (11, 51), ("out_1", "out_2", "out_3")


def _run(ws, spec):
    run_dir = create_job(ws, spec)
    assert execute(run_dir, ws, handle_signals=False) == "done"
    return run_dir


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    """A micro model trained 12 steps (checkpoints at 4, 8, 12), a small k-NN grid probed at each checkpoint."""
    ws = tmp_path_factory.mktemp("movie-ws")
    (ws / "runs").mkdir()
    cfg = micro_config()
    cfg["studio"].update({"checkpoint_every_steps": 4, "sample_every_steps": 100, "sample_steps": 2})
    cfg["n_sample"] = 4
    train = _run(ws, train_spec(config=cfg, data=DATA, steps=12, batch_size=16, device="cpu"))
    grids = {}
    for step in STEPS:
        probe = _run(ws, probe_spec(train, checkpoint=step, timesteps="11,51", layers=",".join(LAYERS),
                                    protocol="knn", baselines=False, train_limit=64, test_limit=48, device="cpu"))
        events = [json.loads(line) for line in (probe / "events.jsonl").read_text().splitlines()]
        grids[step] = {(e["timestep"], e["layer"]): e["accuracy"] for e in events if e["type"] == "grid_cell"}
    ingest(ws)
    return ws, train, grids


def _argmax(cells: dict) -> tuple[int, str]:
    """The best cell directly: the highest, ties to the lower noise level, then the earlier layer."""
    return max(cells, key=lambda c: (cells[c], -TIMESTEPS.index(c[0]), -LAYERS.index(c[1])))


def test_feed_collects_each_checkpoints_grid_and_the_path_is_the_per_step_argmax(probed):
    from db import Store

    ws, train, grids = probed
    with Store.open(ws) as store:
        movie = RunFeed(store, train.name).poll().movie
    assert movie.steps() == list(STEPS)
    assert movie.timesteps == TIMESTEPS and movie.layers == LAYERS
    for frame in movie.frames:
        assert {(t, layer): v for t, layer, v in frame.cells} == grids[frame.step]
    assert movie.path() == [(step, *_argmax(grids[step])) for step in STEPS]


def test_slider_shows_each_steps_values_and_play_walks_the_checkpoints(probed, qtbot):
    from db import Store

    ws, train, grids = probed
    with Store.open(ws) as store:
        update = RunFeed(store, train.name).poll()
        panel = MoviePanel()
        qtbot.addWidget(panel)
        panel.apply(update)
    assert panel.index == len(STEPS) - 1                     # the newest checkpoint first
    for index, step in enumerate(STEPS):
        panel.slider.setValue(index)
        assert panel.step_label.text() == f"step {step} ({index + 1} of 3)"
        assert panel.heatmap.cells() == pytest.approx(grids[step])
        assert f"Best: {_argmax(grids[step])[1]} at t={_argmax(grids[step])[0]}" in panel.heatmap.status.text()
    assert panel.heatmap.path() == [_argmax(grids[step]) for step in STEPS]
    values = [v for cells in grids.values() for v in cells.values()]
    if max(values) > min(values):
        assert panel.heatmap.levels() == pytest.approx((min(values), max(values)))   # one scale for all frames
    panel.timer.setInterval(20)
    panel.play_button.click()                                # from the last frame: starts again at the first
    assert panel.play_button.text() == "Pause" and panel.index == 0
    qtbot.waitUntil(lambda: panel.index == len(STEPS) - 1 and not panel.timer.isActive(), timeout=5000)
    assert panel.play_button.text() == "Play"


def test_run_view_of_the_train_run_has_the_movie_tab(probed, qtbot):
    from functools import partial

    from db import Store

    ws, train, grids = probed
    with Store.open(ws) as store:
        view = RunView(partial(RunFeed, store))
        qtbot.addWidget(view)
        assert view.show_run(train.name)
        panel = view.panel(MoviePanel)
        assert panel is not None and panel.movie.steps() == list(STEPS)
        assert panel.heatmap.cells() == pytest.approx(grids[STEPS[-1]])
