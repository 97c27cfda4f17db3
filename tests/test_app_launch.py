"""Launch forms: bad values refused at their field; a tiny job launched from the form runs and shows live."""

from __future__ import annotations

import os

import pytest

from app.run.panels import GridPanel, SamplesPanel, TrainingPanel
from tests.app_support import MICRO_DATA, app_settings, micro_overrides, no_leftovers, studio, wait_status  # noqa: F401
from tests.fixtures import micro_train_config


def _runs_on_disk(window) -> list[str]:
    return sorted(os.listdir(window.store.workspace / "runs"))


def test_invalid_fields_are_refused_at_their_field(studio):
    window = studio(run_scheduler=False)
    form = window.launch_view.form("train")

    form.set_values(steps="abc", data=MICRO_DATA)
    assert form.submit() is None
    assert form.error_of("steps") == "Steps must be a whole number (got 'abc')."
    assert "fix the marked field" in form.message.text()

    form.set_values(steps="8", data="folder:/no/such/folder")
    assert form.submit() is None
    assert "does not exist" in form.error_of("data")
    assert form.error_of("steps") == ""          # the earlier mark is gone

    form.set_values(data=MICRO_DATA, overrides="network: {ch_mults: [1, 2], is_attn: [false]}")
    assert form.submit() is None
    assert "is_attn" in form.error_of("overrides")

    form.set_values(overrides="network: [unclosed")
    assert form.submit() is None
    assert "not valid YAML" in form.error_of("overrides")

    form.set_values(overrides="", batch_size="0")
    assert form.submit() is None
    assert form.error_of("batch_size").startswith("Batch size must be at least 1")

    probe = window.launch_view.form("probe")
    assert probe.submit() is None
    assert "not chosen" in probe.error_of("parent")

    # Nothing was written or queued by any of these.
    assert _runs_on_disk(window) == []
    assert window.store.queued_jobs() == []
    assert window.store.count_runs() == 0


def test_evaluation_fields_are_checked_against_the_parent(studio):
    window = studio(run_scheduler=False)
    train = window.launch_view.form("train")
    train.set_values(data=MICRO_DATA, steps="4", batch_size="16", device="cpu", overrides=micro_overrides())
    parent = train.submit()
    assert parent is not None
    window.hub.poll()
    probe = window.launch_view.show_kind("probe", parent)
    assert probe.values()["parent"] == parent
    probe.set_values(timesteps="0,5000", device="cpu")
    assert probe.submit() is None
    assert probe.error_of("timesteps") == "Timesteps: 0 is outside 1..1000 (DDPM timesteps)."
    probe.set_values(timesteps="1,11", layers="out_99")
    assert probe.submit() is None
    assert "out_99 is not a layer" in probe.error_of("layers")
    probe.set_values(layers="all", protocol="official", standardize=True)
    assert probe.submit() is None
    assert "fast protocol only" in probe.error_of("standardize")
    assert [q.run for q in window.store.queued_jobs()] == [parent]


@pytest.mark.slow
def test_launched_job_runs_and_its_curve_and_heatmap_fill_in(studio, qtbot):
    window = studio()
    form = window.launch_view.form("train")
    form.set_values(data=MICRO_DATA, steps="8", batch_size="16", device="cpu", checkpoint_every_steps="4",
                    sample_every_steps="4", overrides=micro_overrides())
    run_id = form.submit()
    assert run_id is not None, (form.message.text(), {n: form.error_of(n) for n in form.rows if form.error_of(n)})

    # It enters the queue (the Queue view shows it), runs, and the Run view follows it live.
    qtbot.waitUntil(lambda: window.queue_view.model.row_of(run_id) is not None, timeout=5000)
    assert window.run_view.run_id == run_id
    training = window.run_view.panel(TrainingPanel)
    qtbot.waitUntil(lambda: "loss/train" in training.loss.series_names(), timeout=90_000)
    assert wait_status(qtbot, window, run_id, ("done", "failed"), 120) == "done"
    qtbot.waitUntil(lambda: len(training.loss.series_data("loss/train")[0]) == 8, timeout=10_000)
    steps, values, _ = training.loss.series_data("loss/train")
    assert list(steps) == list(range(1, 9)) and all(v > 0 for v in values)
    samples = window.run_view.panel(SamplesPanel)
    qtbot.waitUntil(lambda: samples.viewer.steps() == [4, 8], timeout=10_000)

    # A probe grid on it from the probe form, with tiny limits; its cells appear in the heatmap.
    probe = window.launch_view.show_kind("probe", run_id)
    probe.set_values(timesteps="1,11", train_limit="128", test_limit="64", epochs="2", device="cpu")
    probe_id = probe.submit()
    assert probe_id is not None and window.run_view.run_id == probe_id
    heatmap = window.run_view.panel(GridPanel).heatmap
    qtbot.waitUntil(lambda: len(heatmap.cells()) > 0, timeout=90_000)
    assert wait_status(qtbot, window, probe_id, ("done", "failed"), 60) == "done"
    qtbot.waitUntil(lambda: len(heatmap.cells()) == 8, timeout=10_000)
    assert heatmap.axes() == ([1, 11], ["out_1", "out_2", "out_3", "out_4"])
    cells = {(c.timestep, c.layer): c.accuracy for c in window.store.grid_cells(probe_id)}
    assert heatmap.cells() == pytest.approx(cells)
    assert heatmap.outlined_cell() is not None

    # The train run's view shows its newest probe grid too.
    window.show_run(run_id)
    train_grid = window.run_view.panel(GridPanel).heatmap
    assert len(train_grid.cells()) == 8


@pytest.mark.slow
def test_demo_trains_then_its_probe_fills_the_heatmap_in_the_train_view(studio, qtbot):
    from app.first_run import DEMO_TAG
    window = studio()
    assert window.banner.isVisible()
    cfg = micro_train_config()
    window.demo.minutes = 10 / 60                 # the shortest budget the demo takes
    window.demo.train_overrides = {"config": cfg, "data": MICRO_DATA, "batch_size": 16}
    window.demo.probe_options = {"train_limit": 128, "test_limit": 64, "epochs": 2}
    window.demo.example = None      # the user's own run's part of the demo (the example's: test_app_views)
    window.banner.button.click()
    train_id = window.run_view.run_id
    assert window.store.get_run(train_id).tags == (DEMO_TAG,)
    loss = window.run_view.panel(TrainingPanel).loss
    qtbot.waitUntil(lambda: "loss/train" in loss.series_names(), timeout=90_000)
    assert wait_status(qtbot, window, train_id, ("done", "failed"), 120) == "done"

    # Done: the probe is queued by itself and the train run's view turns to its heatmap as it fills in.
    qtbot.waitUntil(lambda: bool(window.store.children(train_id)), timeout=10_000)
    probe_id = window.store.children(train_id)[0].id
    grid = window.run_view.panel(GridPanel)
    assert window.run_view.run_id == train_id and window.run_view.tabs.currentWidget() is grid
    assert wait_status(qtbot, window, probe_id, ("done", "failed"), 120) == "done"
    qtbot.waitUntil(lambda: len(grid.heatmap.cells()) == 4 * len(grid.heatmap.axes()[1]), timeout=10_000)
    assert window.demo.pending() == []


def test_duplicate_names_are_refused_or_numbered_and_a_second_demo_asks_first(studio, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from app.main_window import MainWindow
    from app.runs.model import RunTableModel

    window = studio(run_scheduler=False)
    form = window.launch_view.form("train")
    form.set_values(data=MICRO_DATA, steps="4", batch_size="16", device="cpu", overrides=micro_overrides(),
                    name="gui-small")
    first = form.submit()
    assert first is not None
    # The form keeps the name; submitting again is refused at the name field, with a free name offered.
    assert form.submit() is None
    assert form.error_of("name") == (f"Name: “gui-small” is already the name of run {first}; choose another name, "
                                     "such as “gui-small (2)”.")
    # An automatic name another run has gets a number.
    form.set_values(name="")
    auto = [form.submit(), form.submit()]
    names = [window.store.get_run(r).name for r in auto]
    assert names[1] == names[0] + " (2)"
    # Renaming in the table to a taken name is refused too.
    window.runs_view.reload()
    row = window.runs_view.model.row_of(auto[1])
    index = window.runs_view.model.index(row, RunTableModel.COLUMNS.index("name"))
    window.runs_view.model.setData(index, "gui-small")
    assert f"“gui-small” is already the name of run {first}" in window.runs_view.message.text()
    assert window.store.get_run(auto[1]).name == names[1]

    # Run > Run the demo on a workspace that had one asks first (No is the default) and queues nothing on No.
    window.demo.train_overrides = {"config": micro_train_config()}
    window.demo.example = None
    window.start_demo()
    before = window.store.count_runs()
    box = window.demo_question(window.demo.earlier_runs())
    assert "demo: tiny-ddpm on builtin:shapes" in box.text()
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.No)

    class No:
        def exec(self):
            return QMessageBox.StandardButton.No

    monkeypatch.setattr(MainWindow, "demo_question", lambda self, earlier: No())
    window.start_demo()
    assert window.store.count_runs() == before


