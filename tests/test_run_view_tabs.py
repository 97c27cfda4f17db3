"""The Run view builds a trained model's snapshot tabs (samples, grid, accuracy/FID, evaluations) when first shown."""

from __future__ import annotations

from pathlib import Path

from app.run.deferred_panel import DeferredPanel
from app.run.feed import RunUpdate
from app.run.panels import ChildrenPanel, GridPanel, Panel, SamplesPanel, TrainingPanel
from db import testing as fake
from tests.app_support import app_settings, no_leftovers, studio, trained_run_with_samples  # noqa: F401
from tests.fixtures import ingest


class _Recorder(Panel):
    title = "Recorder"

    def __init__(self):
        super().__init__()
        self.updates: list[RunUpdate] = []

    def apply(self, update: RunUpdate) -> None:
        self.updates.append(update)


def test_a_deferred_panel_gets_the_newest_of_each_snapshot_field_once(qtbot):
    deferred = DeferredPanel(_Recorder, _Recorder)
    qtbot.addWidget(deferred)
    first, second, third = (RunUpdate(record=f"record {i}", first=i == 0) for i in range(3))
    first.images, first.children = [(1, Path("a.png"))], ["child"]
    second.images, second.checkpoints = [(1, Path("a.png")), (2, Path("b.png"))], "checkpoints"
    third.appended = {"loss/train": "points"}
    for update in (first, second, third):
        deferred.apply(update)
    panel = deferred.build()
    assert len(panel.updates) == 1
    got = panel.updates[0]
    assert got.record == "record 2" and got.first
    assert got.images == second.images and got.children == ["child"] and got.checkpoints == "checkpoints"
    assert got.appended == {} and got.cells is None


def test_train_run_tabs_are_built_when_shown_with_what_they_missed(studio, qtbot, tmp_path):
    ws = tmp_path / "ws"
    train = trained_run_with_samples(ws, side=32)
    ingest(ws)
    window = studio(ws)
    window.show_run(train.name)
    view = window.run_view
    window.tabs.setCurrentWidget(view)
    assert isinstance(view.panels[0], TrainingPanel)
    deferred = [p for p in view.panels if isinstance(p, DeferredPanel)]
    assert {p.cls for p in deferred} >= {SamplesPanel, GridPanel, ChildrenPanel}
    # A probe of it arrives while its tabs are unbuilt.
    probe = fake.write_run(ws, fake.run_id("probe", 2), kind="probe", name="grid",
                           parent={"run": train.name, "checkpoint": "latest"},
                           events=[fake.status("running"), fake.grid([1], ["out_6"]), fake.grid_cell("out_6", 1, 0.7)])
    qtbot.waitUntil(lambda: deferred[[p.cls for p in deferred].index(GridPanel)].pending is not None
                    and deferred[[p.cls for p in deferred].index(GridPanel)].pending.cells is not None, timeout=10_000)

    samples_tab = view.tabs.indexOf(deferred[[p.cls for p in deferred].index(SamplesPanel)])
    view.tabs.setCurrentIndex(samples_tab)                      # shown: built in its place, still current
    qtbot.waitUntil(lambda: isinstance(view.tabs.widget(samples_tab), SamplesPanel), timeout=5_000)
    assert view.tabs.currentIndex() == samples_tab and view.tabs.tabText(samples_tab) == SamplesPanel.title
    assert view.tabs.widget(samples_tab).viewer.steps() == [100]
    assert sum(isinstance(p, DeferredPanel) for p in view.panels) == len(deferred) - 1

    grid = view.panel(GridPanel)                                # asked for: built now
    assert isinstance(grid, GridPanel) and grid.source == probe.name and len(grid.heatmap.cells()) == 1
    view.show_tab(ChildrenPanel)
    assert view.tabs.currentWidget() is view.panel(ChildrenPanel)
    assert view.panel(ChildrenPanel).table.rowCount() == 1
