"""The Runs view while runs stream, on a real index, real ingest and real widgets: its groups and its setting and
metric columns follow the changes, read on the live hub's reader thread (never the GUI thread's), once per
refresh however many changes came, and not at all while the view is hidden."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import Qt

from app.live import LiveHub
from app.runs.feed import RunsPager
from app.runs.view import RunsView
from db import Store, testing as fake
from tests.app_support import no_leftovers  # noqa: F401
from tests.fixtures import ingest

BY, METRICS = ["diffusion.n_T"], ["loss", "best"]


@pytest.fixture
def lab(workspace):
    truth = fake.write_lab(workspace, n_Ts=(1000, 256, 64), seeds=2)
    ingest(workspace)
    return truth


def recording(monkeypatch, store: Store) -> list[tuple[str, int]]:
    """The lab's two reads on `store`, each with the thread that made it (its ident: current_thread() would leave
    a dummy Thread behind for the reader's QThread)."""
    calls: list[tuple[str, int]] = []
    for name in ("group_runs", "column_values"):
        original = getattr(store, name)

        def call(*args, _name=name, _original=original, **kwargs):
            calls.append((_name, threading.get_ident()))
            return _original(*args, **kwargs)

        monkeypatch.setattr(store, name, call)
    return calls


def grouped_view(qtbot, store: Store, hub: LiveHub) -> RunsView:
    """The train runs, with a setting and a metric column, grouped by n_T with the loss and best accuracy."""
    view = RunsView(RunsPager(store), hub)
    qtbot.addWidget(view)
    view.show()
    view.reload()                   # the page itself is read here, as the window does
    view.kind.setCurrentIndex(view.kind.findData("train"))
    view.lab.set_columns(["diffusion.n_T", "loss"])
    view.lab.group_button.setChecked(True)
    view.lab.groups.set_grouping(BY, METRICS)
    return view


def direct(store: Store):
    """The groups as the Store computes them, read here (the class's method: not recorded)."""
    return Store.group_runs(store, BY, METRICS, kind="train")


def loss_shown(view: RunsView, run_id: str):
    return view.model.index(view.model.row_of(run_id), view.model.column_names().index("loss")).data(
        Qt.ItemDataRole.UserRole)


def test_groups_and_columns_follow_streaming_runs_read_on_the_hubs_thread(qtbot, no_leftovers, workspace, lab,
                                                                           monkeypatch):
    with Store.open(workspace) as store:
        calls = recording(monkeypatch, store)
        hub = LiveHub(store)
        view = grouped_view(qtbot, store, hub)
        panel = view.lab.groups
        assert panel.model.rowCount() == 0          # asked of the reader, not read on this thread
        hub.start()
        try:
            qtbot.waitUntil(lambda: panel.groups == direct(store) and panel.model.rowCount() == 3, timeout=10_000)
            member = next(rid for rid, t in lab.items() if t["n_T"] == 256)
            qtbot.waitUntil(lambda: loss_shown(view, member) == lab[member]["loss"], timeout=10_000)
            setup = list(calls)
            panel.tree.expand(panel.model.index(1, 0))          # the user's click reads its members here
            calls.clear()

            # A member streams a new loss: its group's mean and the table's column follow.
            fake.append(workspace / "runs" / member, [fake.metric("loss/train", 200, 0.5)])
            ingest(workspace)
            qtbot.waitUntil(lambda: loss_shown(view, member) == 0.5, timeout=10_000)
            qtbot.waitUntil(lambda: panel.groups == direct(store), timeout=10_000)
            t256 = next(g for g in panel.groups if g.values == (256,))
            assert t256.stats["loss"].max == 0.5 and t256.n == 2

            # A new run joins the group: n follows, and the open group stays open.
            fake.write_run(workspace, fake.run_id("train", 40), name="T256 seed 2",
                           config={"diffusion": {"n_T": 256, "betas": [1e-4, 0.02]}, "network": {"ch": 32},
                                   "lrate": 2e-4}, options={"seed": 2, "steps": 100},
                           events=[fake.status("running"), fake.metric("loss/train", 10, 0.3)])
            ingest(workspace)
            qtbot.waitUntil(lambda: panel.model.item(1, 1).text() == "3", timeout=10_000)
            assert panel.groups == direct(store)
            assert panel.model.item(1, 0).text() == "diffusion.n_T = 256"
            assert panel.tree.isExpanded(panel.model.index(1, 0))
        finally:
            hub.stop()
        gui = threading.main_thread().ident
        assert {name for name, _ in setup} == {"group_runs", "column_values"}
        assert {name for name, _ in calls} == {"group_runs", "column_values"}
        assert all(thread is not gui for _, thread in setup + calls), "the GUI thread read the database"
        view.close()


def test_a_burst_of_changes_and_requests_is_read_once_per_refresh_and_never_while_hidden(qtbot, workspace, lab,
                                                                                           monkeypatch):
    with Store.open(workspace) as store:
        calls = recording(monkeypatch, store)
        hub = LiveHub(store)            # polled by the test: each poll() is one refresh of the reader
        view = grouped_view(qtbot, store, hub)
        panel = view.lab.groups
        assert hub.poll() and panel.groups == direct(store)
        train = list(lab)
        calls.clear()
        for step, run in enumerate(train[:3]):
            fake.append(workspace / "runs" / run, [fake.metric("loss/train", 300 + step, 0.2)])
            ingest(workspace)
            view.lab.refresh_values()           # the page asks too, as after a reload
        assert hub.poll()
        assert [name for name, _ in calls].count("group_runs") == 1
        assert [name for name, _ in calls].count("column_values") == 1
        assert panel.groups == direct(store)

        view.hide()
        calls.clear()
        fake.append(workspace / "runs" / train[0], [fake.metric("loss/train", 400, 0.9)])
        ingest(workspace)
        hub.poll()
        assert calls == []                      # hidden: the change passes it by ...
        view.show()
        assert hub.poll() and [name for name, _ in calls].count("group_runs") == 1    # ... and is read once shown
        assert panel.groups == direct(store)

        panel.set_grouping([], METRICS)         # no grouping: no more group reads, and none shown again
        calls.clear()
        fake.append(workspace / "runs" / train[1], [fake.metric("loss/train", 500, 0.8)])
        ingest(workspace)
        assert hub.poll()
        assert "group_runs" not in [name for name, _ in calls] and panel.model.rowCount() == 0
        hub.stop()


def test_the_gui_thread_never_waits_for_a_watchers_read(qtbot, workspace):
    """Asking for a read, or watching anew, while the reader is inside a slow read returns at once."""
    with Store.open(workspace) as store:
        hub = LiveHub(store)
        inside, release = threading.Event(), threading.Event()

        def slow(changes):
            inside.set()
            release.wait(10)
            return "read"

        hub.watch("slow", slow, lambda result: None, request=True)
        reader = threading.Thread(target=hub.cycle)
        reader.start()
        try:
            assert inside.wait(10)
            started = time.monotonic()
            hub.request("slow")
            hub.watch("other", lambda changes: None, lambda result: None)
            hub.pause("other")
            waited = time.monotonic() - started
        finally:
            release.set()
            reader.join(10)
        assert waited < 1.0, f"the GUI thread waited {waited:.1f} s for a read"
        assert hub.poll()                       # the request made meanwhile is read at the next cycle
        hub.stop()
