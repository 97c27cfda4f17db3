"""The unified view (issue 14): FID and probe accuracy per checkpoint of a train run, from its sweep's
fid and probe children: the Qt-free gather, the Run view's panel live as jobs finish, Compare's scatter,
and one sweep of real micro runs end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PySide6.QtGui import QColor, QGuiApplication

from app.run.checkpoints import CheckpointReader, best_table, gather_checkpoints
from app.run.unified import CompareTradeoff, UnifiedPanel
from db import Ingester, Store, testing as fake
from ddae_core.rundir import FID_RESULTS, GRID
from tests.app_support import app_settings, compare_runs, compare_view, no_leftovers, studio  # noqa: F401 - fixtures
from tests.fixtures import ingest
from tests.test_fid import random_weights  # noqa: F401 - fixture

# The paper's DDPM_ddpm numbers, as if its checkpoints were steps: (step, FID, accuracy).
SWEEP = [(200, 5.80, 0.8710), (400, 4.62, 0.8890), (800, 4.09, 0.9005), (1600, 3.80, 0.8902), (1999, 3.62, 0.8823)]
DATA = "builtin:shapes?n_train=1000"        # with batch_size 50: 20 steps an epoch


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def train_run(ws: Path, n: int = 1, name: str = "DDPM_ddpm") -> Path:
    return fake.write_run(ws, fake.run_id("train", n), name=name, data=DATA, created=1000.0 + n,
                          options={"steps": 2000, "batch_size": 50}, events=fake.training_events(2000, every=100))


def sweep_jobs(ws: Path, train: Path, points, n0: int = 10, done: bool = True, sweep: str | None = None) -> list[Path]:
    """An fid and a probe child per (step, fid, accuracy), as `ddae sweep` names and marks them."""
    made = []
    for i, (step, fid, acc) in enumerate(points):
        common = {"parent": {"run": train.name, "checkpoint": step}, "created": 2000.0 + n0 + i}
        end = [fake.status("done")] if done else []
        made.append(fake.write_run(
            ws, fake.run_id("fid", n0 + i), kind="fid", name=f"fid of {train.name} at step {step}",
            options={"n": 10000, "sweep": sweep or train.name}, **common,
            events=[fake.status("running"), fake.metric("fid", step, fid), fake.image(step), *end]))
        made.append(fake.write_run(
            ws, fake.run_id("probe", n0 + i), kind="probe", name=f"probe of {train.name} at step {step}",
            options={"protocol": "fast", "sweep": sweep or train.name}, **common,
            events=[fake.status("running"), fake.grid([11], ["out_6"]), fake.grid_cell("out_6", 11, acc),
                    fake.metric("probe/accuracy", step, acc), *end]))
    return made


def test_gather_pairs_fid_and_accuracy_by_checkpoint_and_sweep_jobs_win(workspace):
    train = train_run(workspace)
    sweep_jobs(workspace, train, SWEEP)
    # A hand-launched grid of the latest checkpoint (step 1999, known from its metric's step) scores higher than
    # the sweep's cell there; the sweep's own probe is what the curve shows.
    fake.write_run(workspace, fake.run_id("probe", 90), kind="probe", created=5000.0,
                   parent={"run": train.name, "checkpoint": "latest"}, options={"protocol": "fast"},
                   events=[fake.grid([1, 11], ["out_5", "out_6"]), fake.grid_cell("out_5", 1, 0.95),
                           fake.metric("probe/accuracy", 1999, 0.95), fake.status("done")])
    # A probe still running (its best cell so far) and an fid job still queued, for a checkpoint not swept yet.
    fake.write_run(workspace, fake.run_id("probe", 91), kind="probe", parent={"run": train.name, "checkpoint": 3000},
                   created=5001.0, options={"protocol": "fast", "sweep": train.name},
                   events=[fake.status("running"), fake.grid([11, 51], ["out_6"]), fake.grid_cell("out_6", 11, 0.70)])
    fake.write_run(workspace, fake.run_id("fid", 92), kind="fid", parent={"run": train.name, "checkpoint": 3000},
                   created=5002.0, options={"sweep": train.name}, queue={"priority": 0})
    ingest(workspace)
    with Store.open(workspace) as store:
        results = gather_checkpoints(store, train.name)
    assert [p.step for p in results.points] == [200, 400, 800, 1600, 1999, 3000]
    assert [(p.step, p.fid, p.accuracy) for p in results.paired()] == SWEEP
    at_1999 = results.points[4]
    assert at_1999.accuracy == 0.8823 and at_1999.probe_run == fake.run_id("probe", 14)
    partial = results.points[-1]
    assert (partial.fid, partial.accuracy, partial.accuracy_final) == (None, 0.70, False)
    assert partial.cell == "out_6 at t=11 (so far)"
    assert results.waiting == 2 and results.failed == 0
    assert (results.best_probe().step, results.best_fid().step) == (800, 1999)
    headers, rows = best_table(results, steps_per_epoch=20.0)
    assert headers[:5] == ["checkpoint", "step", "epoch", "FID", "probe accuracy"]
    assert rows == [("best linear probe", 800, 40.0, 4.09, 0.9005, "out_6 at t=11"),
                    ("best FID", 1999, 99.95, 3.62, 0.8823, "out_6 at t=11")]
    assert "6 checkpoint(s): 5 with FID, 6 with probe accuracy, 5 with both." in results.status_text(train.name)


def test_the_reader_rereads_only_children_that_changed(workspace):
    train = train_run(workspace)
    sweep_jobs(workspace, train, SWEEP[:2])
    ingest(workspace)
    with Store.open(workspace) as store:
        reader = CheckpointReader(store, train.name)
        first = reader.read()
        calls = []
        original = store.metric_history
        store.metric_history = lambda *a, **k: calls.append(a) or original(*a, **k)
        assert reader.read() == first and calls == []          # nothing new: no curve is read again
        fake.write_run(workspace, fake.run_id("fid", 40), kind="fid", parent={"run": train.name, "checkpoint": 400},
                       created=9000.0, options={"sweep": "again"}, events=[fake.metric("fid", 400, 4.5)])
        ingest(workspace)
        again = reader.read()
        assert [a[0] for a in calls] == [fake.run_id("fid", 40)]
        assert [p.fid for p in again.points] == [5.80, 4.5]     # the newer sweep's job wins


def test_a_child_deleted_while_it_is_read_is_left_out(workspace):
    train = train_run(workspace)
    sweep_jobs(workspace, train, SWEEP[:2])
    ingest(workspace)
    with Store.open(workspace) as store:
        children = store.children(train.name)
        store.delete_run(fake.run_id("fid", 10))
        results = CheckpointReader(store, train.name).read(children)
        assert [(p.step, p.fid) for p in results.points] == [(200, None), (400, 4.62)]


def test_run_view_shows_the_unified_view_live_as_sweep_jobs_finish(studio, qtbot, tmp_path):
    ws = tmp_path / "ws"
    train = train_run(ws)
    ingest(ws)
    window = studio(ws, run_scheduler=False)
    window.show_run(train.name)
    panel = window.run_view.panel(UnifiedPanel)
    window.run_view.show_tab(UnifiedPanel)
    assert panel.pages.currentWidget() is panel.empty and not panel.copy_row.isEnabled()
    assert panel.empty.text() == (f"No FID yet: `ddae sweep --run {train.name}` (or Evaluate checkpoints while "
                                  "training, in Launch) queues FID and probe jobs per checkpoint.")

    # The first checkpoints' jobs finish; then the rest, one by one, while the view is open.
    sweep_jobs(ws, train, SWEEP[:2])
    ingest(ws)
    window.hub.poll()
    qtbot.waitUntil(lambda: panel.tradeoff.series_names() == ["checkpoints"], timeout=5000)
    assert panel.pages.currentIndex() == 1
    assert [s for s, _, _ in panel.tradeoff.points("checkpoints")] == [200, 400]
    for i, point in enumerate(SWEEP[2:]):
        sweep_jobs(ws, train, [point], n0=20 + i)
        ingest(ws)
        window.hub.poll()
    qtbot.waitUntil(lambda: len(panel.tradeoff.points("checkpoints")) == 5, timeout=5000)
    assert panel.tradeoff.points("checkpoints") == [(s, f, a) for s, f, a in SWEEP]
    colors = [c.name() for c in panel.tradeoff.point_colors("checkpoints")]
    assert len(set(colors)) == 5 and panel.tradeoff.colorbar.isVisible()     # coloured by step
    steps, values, _ = panel.fid_plot.series_data("FID")
    assert steps.tolist() == [s for s, _, _ in SWEEP] and values.tolist() == [f for _, f, _ in SWEEP]
    assert panel.accuracy_plot.series_data("probe accuracy")[1].tolist() == pytest.approx([100 * a for *_, a in SWEEP])
    assert panel.fid_plot.plot.getViewBox().linkedView(0) is panel.accuracy_plot.plot.getViewBox()

    # The paper's two rows, in the run's epochs (20 steps each).
    model = panel.table_model
    assert [model.index(r, 0).data() for r in range(2)] == ["best linear probe", "best FID"]
    assert [model.index(0, c).data() for c in range(5)] == ["best linear probe", "800", "40", "4.09", "90.1%"]   # 90.05 half up
    assert [model.index(1, c).data() for c in range(5)] == ["best FID", "1999", "99.95", "3.62", "88.2%"]
    # The same pair as the official README's table row, copied as `ddae runs readme-row` prints it.
    assert panel.copy_row.isEnabled()
    panel.copy_row.click()
    copied = QGuiApplication.clipboard().text()
    assert copied == window.store.readme_row(train.name) and copied.strip().startswith("<tr>") and "<td>90.05</td>" in copied
    # The FID jobs' sample grids on a step slider: the shown checkpoint is ringed in the scatter.
    assert panel.samples.steps() == [s for s, _, _ in SWEEP] and panel.samples.slider.isEnabled()
    panel.samples.slider.setValue(1)
    assert panel.tradeoff.ring.data["x"].tolist() == [4.62]
    panel.select_row(1)
    assert panel.tradeoff.ring.data["x"].tolist() == [3.62] and panel.samples.current_step() == 1999

    out = tmp_path / "out"
    out.mkdir()
    for fmt in ("png", "svg", "csv"):
        assert getattr(panel.tradeoff, f"export_{fmt}")(out / f"tradeoff.{fmt}").stat().st_size > 0
    assert read_csv(out / "tradeoff.csv")[:2] == [["series", "step", "fid", "accuracy"],
                                                  ["DDPM_ddpm", "200", "5.8", "0.871"]]
    panel.export_table_csv(out / "best.csv")
    assert read_csv(out / "best.csv")[1] == ["best linear probe", "800", "40.0", "4.09", "0.9005", "out_6 at t=11"]


def test_an_fid_run_shows_its_curve_and_samples_by_step(studio, tmp_path):
    from app.run.panels import CurvesPanel, SamplesPanel

    ws = tmp_path / "ws"
    train = train_run(ws)
    fid = fake.write_run(ws, fake.run_id("fid", 3), kind="fid", parent={"run": train.name, "checkpoint": "latest"},
                         options={"checkpoints": "all"},
                         events=[e for s, f, _ in SWEEP for e in (fake.metric("fid", s, f), fake.image(s))])
    ingest(ws)
    window = studio(ws, run_scheduler=False)
    window.show_run(fid.name)
    curve = window.run_view.panel(CurvesPanel).plots[0][0]
    assert curve.series_data("fid")[0].tolist() == [s for s, _, _ in SWEEP]
    assert curve.title() == "FID by checkpoint"                     # the standard pair: no mark
    viewer = window.run_view.panel(SamplesPanel).viewer
    assert viewer.steps() == [s for s, _, _ in SWEEP] and viewer.slider.isEnabled()
    # Another fid run, of other Inception weights or dims: its curve is titled non-standard.
    other = fake.write_run(ws, fake.run_id("fid", 4), kind="fid", parent={"run": train.name, "checkpoint": "latest"},
                           events=[fake.metric("fid", 200, 9.5), fake.metric("fid/nonstandard", 200, 1.0)])
    ingest(ws)
    window.show_run(other.name)
    curve = window.run_view.panel(CurvesPanel).plots[0][0]
    assert curve.title() == "FID (non-standard) by checkpoint"


def test_compare_puts_several_runs_trade_offs_on_one_axis(qtbot, workspace, app_settings):
    a, b = train_run(workspace, 1, "run A"), train_run(workspace, 2, "run B")
    sweep_jobs(workspace, a, SWEEP[:3])
    sweep_jobs(workspace, b, [(s, f + 1.0, acc - 0.05) for s, f, acc in SWEEP[:2]], n0=50)
    store = Store.open(workspace)
    ingester = Ingester(store, workspace)
    ingester.acquire()
    try:
        ingester.ingest_once()
        view = compare_view(qtbot, store)
        compare_runs(view, [a.name, b.name])
        panel = view.findChild(CompareTradeoff)
        assert panel is not None
        plot = panel.plot
        assert sorted(plot.series_names()) == sorted([a.name, b.name])
        assert len(plot.points(a.name)) == 3 and len(plot.points(b.name)) == 2
        # Each run in its own colour, the one it has in every other panel of Compare.
        assert {c.name() for c in plot.point_colors(a.name)} == {view.colors[a.name].name()}
        assert {c.name() for c in plot.point_colors(b.name)} == {view.colors[b.name].name()}
        assert not plot.colorbar.isVisible()
        rows = panel.model.rows()
        assert rows[0][:4] == ("run A", 800, 4.09, 0.9005) and rows[1][0] == "run B"

        # A sweep job of run B finishes while Compare is open.
        sweep_jobs(workspace, b, [(1600, 4.2, 0.86)], n0=60)
        ingester.ingest_once()
        view.hub.poll()
        assert [s for s, _, _ in plot.points(b.name)] == [200, 400, 1600]
        written = view.export_all(workspace / "exports")
        assert {p.name for p in written} >= {"accuracy_vs_fid.png", "accuracy_vs_fid.svg", "accuracy_vs_fid.csv",
                                             "best_checkpoints.csv"}
        view.close()
    finally:
        ingester.release()
        store.close()


def test_compare_tradeoff_without_sweeps_says_how_to_get_them(qtbot, workspace):
    train = train_run(workspace)
    ingest(workspace)
    with Store.open(workspace) as store:
        from app.compare.feed import gather
        from app.run.checkpoints import gather_checkpoints

        panel = CompareTradeoff()
        qtbot.addWidget(panel)
        panel.update_runs({train.name: gather_checkpoints(store, train.name)}, [gather(store, train.name)],
                          {train.name: QColor("#1f77b4")})
        assert panel.plot.is_empty() and "`ddae sweep --run RUN` queues FID and probe jobs" in \
            panel.plot.empty_label.text()


# Launch: the train form's sweep group and the fid form.
@pytest.fixture
def inception_file(tmp_path, monkeypatch) -> Path:
    """A stand-in weights file where $DDAE_INCEPTION points (forms check it exists, nothing loads it)."""
    from ddae_core.engine.evaluation import inception

    path = tmp_path / "inception.pth"
    path.write_bytes(b"not loaded by these tests")
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(path))
    monkeypatch.setattr(inception, "hub_weights", lambda: tmp_path / "no-hub" / inception.WEIGHTS_FILE)
    return path


def test_train_form_sweep_group_queues_the_plan_ddae_train_sweep_makes(studio, inception_file, monkeypatch):
    from ddae_core.engine.config import parse_model_config
    from ddae_core.engine.evaluation import inception
    from ddae_core.jobs.sweep import sweep_plan
    from tests.app_support import MICRO_DATA, micro_overrides

    window = studio(run_scheduler=False)
    form = window.launch_view.form("train")
    form.set_values(data=MICRO_DATA, steps="8", batch_size="16", device="cpu", overrides=micro_overrides())
    assert not form.rows["sweep_fid_n"].isEnabled()             # the group's values wait for its box
    assert "sweep" not in form.build_spec()["options"]
    form.set_values(sweep=True, sweep_checkpoints="every 4", sweep_fid_n="64", sweep_probe="11,out_3")
    assert form.rows["sweep_fid_n"].isEnabled()
    spec = form.build_spec()
    assert spec["options"]["sweep"] == sweep_plan(parse_model_config(spec["config"]), window.store.workspace,
                                                  checkpoints="every 4", fid_n=64, probe="11,out_3", device="cpu")

    # Bad values are marked at their own field, in the CLI's words.
    form.set_values(sweep_checkpoints="sometimes")
    assert form.submit() is None
    assert form.error_of("sweep_checkpoints") == "Checkpoints must be all or every K, K a number of steps " \
                                                 "(got 'sometimes')."
    form.set_values(sweep_checkpoints="all", sweep_fid_n="1")
    assert form.submit() is None
    assert form.error_of("sweep_fid_n") == "FID samples must be 0 (no FID) or at least 2."
    form.set_values(sweep_fid_n="0", sweep_probe="none")
    assert form.submit() is None
    assert "asks for neither FID nor a probe" in form.message.text() + form.error_of("sweep")
    monkeypatch.delenv(inception.WEIGHTS_ENV)
    form.set_values(sweep_fid_n="", sweep_probe="")
    assert form.submit() is None
    assert "Or set FID samples to 0 for probes only." in form.error_of("sweep_fid_n")
    assert window.store.count_runs() == 0

    monkeypatch.setenv(inception.WEIGHTS_ENV, str(inception_file))
    run_id = form.submit()
    assert run_id is not None
    plan = window.store.get_run(run_id).spec["options"]["sweep"]
    assert plan["checkpoints"] == "all" and plan["fid"]["n"] == 10000 and plan["probe"]["layers"] == ["out_3"]


def test_fid_form_scores_one_checkpoint_or_all(studio, inception_file):
    from tests.app_support import MICRO_DATA, micro_overrides

    window = studio(run_scheduler=False)
    train = window.launch_view.form("train")
    train.set_values(data=MICRO_DATA, steps="4", batch_size="16", device="cpu", overrides=micro_overrides())
    parent = train.submit()
    window.hub.poll()
    window.run_view.show_run(parent)
    assert "FID of checkpoints…" in [a.text() for a in window.run_view.header.menu.actions()]
    form = window.launch_view.show_kind("fid", parent)
    combo = form.rows["checkpoint"].editor
    assert [combo.itemText(i) for i in range(combo.count())] == ["latest", "all"]
    form.set_values(checkpoint="all", n="64", dims="64", device="cpu", sampler="ddpm")
    spec = form.build_spec()
    assert spec["kind"] == "fid" and spec["parent"] == {"run": parent, "checkpoint": "latest"}
    assert {k: spec["options"][k] for k in ("checkpoints", "n", "dims", "sampler")} == \
        {"checkpoints": "all", "n": 64, "dims": 64, "sampler": "ddpm"}
    form.set_values(n="1")
    assert form.submit() is None and form.error_of("n").startswith("Samples must be at least 2")
    form.set_values(n="64", inception="/no/such/weights.pth")
    assert form.submit() is None and "which is not a file" in form.error_of("inception")
    form.set_values(inception="")
    run_id = form.submit()
    assert window.store.get_run(run_id).kind == "fid"


# Real micro runs: a training whose sweep queues its jobs, run one after another.
@pytest.mark.slow
def test_a_real_sweep_fills_the_unified_view_as_its_jobs_finish(qtbot, workspace, random_weights):
    from app.run.feed import RunFeed
    from ddae_core.engine.config import parse_model_config
    from ddae_core.jobs.specs import create_job, execute
    from ddae_core.jobs.sweep import sweep_plan
    from ddae_core.rundir import read_spec
    from tests.fixtures import micro_config, micro_train_spec
    from tests.gui_fixtures import one_torch_thread
    from tests.test_fid import FID_DATA

    spec = micro_train_spec(steps=6, checkpoint_every=2)
    spec["options"]["sweep"] = sweep_plan(parse_model_config(micro_config()), workspace, fid_n=4, steps=2,
                                          batch_size=4, dims=64, inception=random_weights, probe="11,out_3",
                                          data=FID_DATA, device="cpu")
    panel = UnifiedPanel()
    qtbot.addWidget(panel)
    with one_torch_thread(), Store.open(workspace) as store, Ingester(store, workspace) as ingester:
        run_dir = create_job(workspace, spec)
        assert execute(run_dir, workspace, handle_signals=False) == "done"
        specs = {p: read_spec(p) for p in (workspace / "runs").iterdir() if p != run_dir}
        jobs = sorted(specs, key=lambda p: (specs[p]["parent"]["checkpoint"], specs[p]["kind"]))
        assert [(specs[p]["parent"]["checkpoint"], specs[p]["kind"]) for p in jobs] == \
            [(step, kind) for step in (2, 4, 6) for kind in ("fid", "probe")]
        ingester.ingest_once()
        feed = RunFeed(store, run_dir.name)
        panel.apply(feed.poll())
        assert panel.results.waiting == 6 and "6 evaluation job(s) queued or running" in panel.status.text()
        for i, job in enumerate(jobs):
            assert execute(job, workspace, handle_signals=False) == "done", (job / "log.txt").read_text()
            ingester.ingest_once()
            panel.apply(feed.poll())
            assert len(panel.results.paired()) == (i + 1) // 2
    results = panel.results
    assert [p.step for p in results.paired()] == [2, 4, 6] and results.waiting == 0
    # Each point carries its own jobs' numbers, as their result files hold them.
    job_of = {(int(specs[p]["parent"]["checkpoint"]), specs[p]["kind"]): p for p in jobs}
    for point in results.paired():
        fid = json.loads((job_of[(point.step, "fid")] / FID_RESULTS).read_text())["fid"][str(point.step)]
        best = json.loads((job_of[(point.step, "probe")] / GRID).read_text())["best"]
        assert (point.fid, point.accuracy) == pytest.approx((fid, best["accuracy"]))
        assert point.cell == f"{best['layer']} at t={best['timestep']}" == "out_3 at t=11"
    assert [s for s, _, _ in panel.tradeoff.points("checkpoints")] == [2, 4, 6]
    assert panel.samples.steps() == [2, 4, 6] and panel.samples.message() == ""      # the FID jobs' grids
    headers, rows = panel.table_rows()
    best_probe, best_fid = rows
    assert best_probe[1] == results.best_probe().step and best_fid[3] == min(p.fid for p in results.paired())
    # A random Inception at 64 dims: every place the FIDs show says they are not the standard FID.
    assert not results.fid_standard and "FID (non-standard)" in headers
    assert panel.tradeoff.label("checkpoints").endswith("(non-standard FID)")
    assert panel.fid_plot.series_label("FID") == "FID (non-standard)"
