"""The app and Slurm: the cluster profiles dialog, 'Run on' in the launch forms, and (marked `slurm`) a
training launched from the form onto a real Slurm whose curve fills in and whose Queue row shows the job."""

from __future__ import annotations

import shutil

import pytest

from app.run.panels import GridPanel, TrainingPanel
from ddae_core.jobs.cluster import ClusterProfile, default_cluster, load_profiles, read_slurm, save_profiles
from tests.app_support import MICRO_DATA, app_settings, micro_overrides, no_leftovers, studio, wait_status  # noqa: F401


def test_profiles_dialog_adds_edits_and_refuses_a_bad_value(qtbot, tmp_path):
    from app.launch.cluster_settings import ClusterProfilesDialog

    save_profiles(tmp_path, {"old": ClusterProfile("old", partition="cpu")})
    dialog = ClusterProfilesDialog(tmp_path)
    qtbot.addWidget(dialog)
    assert dialog.editor.text["partition"].text() == "cpu"
    dialog.add_profile("a100")
    dialog.editor.text["partition"].setText("gpu")
    dialog.editor.ints["gpus_per_node"].setValue(4)
    dialog.editor.lists["setup"].setPlainText("module load cuda\nsource venv/bin/activate")
    dialog.editor.text["time_limit"].setText("soon")
    dialog.save()
    assert "time_limit 'soon'" in dialog.error.text()
    assert list(load_profiles(tmp_path)) == ["old"]                # nothing written while a value is bad
    dialog.editor.text["time_limit"].setText("14:00:00")
    dialog.default.setCurrentIndex(dialog.default.findData("a100"))
    dialog.save()
    assert default_cluster(tmp_path) == "a100"
    profiles = load_profiles(tmp_path)
    assert profiles["a100"].gpus_per_node == 4 and profiles["a100"].setup == ["module load cuda",
                                                                               "source venv/bin/activate"]
    assert profiles["old"].partition == "cpu"


def test_launch_form_runs_on_a_chosen_profile(studio):
    window = studio(run_scheduler=False)
    save_profiles(window.store.workspace, {"test": ClusterProfile("test", time_limit="10")})
    form = window.launch_view.form("train")
    form.refresh_clusters()
    assert [form.run_on.itemText(i) for i in range(form.run_on.count())] == \
        ["this machine", "test (default partition, CPU only, time 10)"]
    form.set_values(data=MICRO_DATA, steps="4", batch_size="16", device="cpu", overrides=micro_overrides())
    form.run_on.setCurrentIndex(1)
    run_id = form.submit()
    assert run_id is not None and "for cluster test" in form.message.text()
    assert read_slurm(window.store.run_dir(run_id)) == {"cluster": "test"}
    window.queue_view.refresh()
    row = window.queue_view.model.row_at(window.queue_view.model.row_of(run_id))
    assert row.device == "test: not submitted yet"

    form.run_on.setCurrentIndex(0)
    local = form.submit()
    assert local is not None and read_slurm(window.store.run_dir(local)) == {}

    # A workspace default is what a form shows until the user picks.
    save_profiles(window.store.workspace, {"test": ClusterProfile("test", time_limit="10")}, default="test")
    probe = window.launch_view.form("probe")
    probe.refresh_clusters()
    assert probe.run_on.currentData() == "test"


@pytest.mark.slurm
def test_app_trains_on_slurm_with_a_live_curve_and_the_job_in_the_queue(studio, qtbot):
    from tests.test_slurm import _slurm_problem

    problem = _slurm_problem()
    if problem:
        pytest.skip(problem)
    window = studio()
    save_profiles(window.store.workspace, {"test": ClusterProfile(
        "test", time_limit="15", setup=["export OMP_NUM_THREADS=1"])})
    form = window.launch_view.form("train")
    form.refresh_clusters()
    form.run_on.setCurrentIndex(form.run_on.findData("test"))
    form.set_values(data=MICRO_DATA, steps="8", batch_size="16", device="cpu", checkpoint_every_steps="4",
                    overrides=micro_overrides())
    run_id = form.submit()
    assert run_id is not None, form.message.text()
    qtbot.waitUntil(lambda: read_slurm(window.store.run_dir(run_id)).get("job_id") is not None, timeout=20_000)
    job_id = read_slurm(window.store.run_dir(run_id))["job_id"]

    def queue_device() -> str:
        window.queue_view.refresh()
        row = window.queue_view.model.row_of(run_id)
        return window.queue_view.model.row_at(row).device if row is not None else ""

    qtbot.waitUntil(lambda: queue_device().startswith(f"test job {job_id}: "), timeout=20_000)
    training = window.run_view.panel(TrainingPanel)
    qtbot.waitUntil(lambda: "loss/train" in training.loss.series_names(), timeout=180_000)
    assert wait_status(qtbot, window, run_id, ("done", "failed", "interrupted"), 180) == "done"
    qtbot.waitUntil(lambda: len(training.loss.series_data("loss/train")[0]) == 8, timeout=10_000)
    assert f"Slurm job {job_id}" in (window.store.run_dir(run_id) / "log.txt").read_text()

    # A probe grid on it, on the cluster too: the heatmap fills in.
    probe = window.launch_view.show_kind("probe", run_id)
    probe.refresh_clusters()
    probe.run_on.setCurrentIndex(probe.run_on.findData("test"))
    probe.set_values(timesteps="1,11", train_limit="128", test_limit="64", epochs="1", device="cpu")
    probe_id = probe.submit()
    assert probe_id is not None and window.run_view.run_id == probe_id
    heatmap = window.run_view.panel(GridPanel).heatmap
    assert wait_status(qtbot, window, probe_id, ("done", "failed", "interrupted"), 180) == "done"
    qtbot.waitUntil(lambda: len(heatmap.cells()) == 8, timeout=10_000)
    assert read_slurm(window.store.run_dir(probe_id))["cluster"] == "test"


def test_profiles_dialog_doubts_empty_fields_once_and_checks_a_profile(qtbot, tmp_path, no_leftovers):
    from app.launch.cluster_settings import ClusterProfilesDialog

    dialog = ClusterProfilesDialog(tmp_path)
    qtbot.addWidget(dialog)
    dialog.add_profile("a100")
    dialog.editor.ints["gpus_per_node"].setValue(0)
    dialog.save()
    assert dialog.error.text() == ("Profile a100 has no partition (jobs go to Slurm's default one) and 0 GPUs per "
                                   "node (CPU-only jobs); set them, or press Save again to keep them.")
    assert load_profiles(tmp_path) == {}                          # not saved
    dialog.editor.text["python"].setText("conda run python")
    dialog.save()
    assert "python 'conda run python' must be one program" in dialog.error.text() and load_profiles(tmp_path) == {}
    dialog.editor.text["python"].setText("")
    dialog.editor.text["partition"].setText("gpu")
    dialog.editor.ints["gpus_per_node"].setValue(4)

    # Check saves, then runs `ddae cluster check a100` off the GUI thread; it fails here, and says why: without
    # Slurm, that its commands are missing; on CI's one-node test cluster, that it has no partition `gpu`.
    dialog.check_profile()
    assert load_profiles(tmp_path)["a100"].partition == "gpu"
    qtbot.waitUntil(lambda: "(the check failed: exit 1)" in dialog.check_output.toPlainText(), timeout=60_000)
    shown = dialog.check_output.toPlainText()
    if shutil.which("sbatch") is None:
        assert "slurm commands: FAILED: sbatch, squeue or scancel is not on PATH here" in shown, shown
    else:
        assert "squeue: ok" in shown and "sbatch --test-only: FAILED" in shown, shown
    assert "Traceback" not in shown
    qtbot.waitUntil(dialog.check_button.isEnabled, timeout=5_000)      # the worker ended: Check again
