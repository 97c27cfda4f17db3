"""`python -m app.screenshots OUT_DIR`: each main view of the app, rendered from real runs, as PNG.

A temporary workspace gets a real demo: tiny-ddpm trained on builtin:shapes for `--steps`,
probe grids on a middle and the last checkpoint, alignment/uniformity over its checkpoints and a
noise-conditional classifier. Every job runs in a worker subprocess (`python -m ddae_core.worker`),
never in this process. Then the window opens on the offscreen platform and each view is grabbed.
`--quick` uses a micro network and a few steps, for checking the script itself. `--only unified` makes
and renders only the unified view: a training whose sweep queues an FID and a probe job per checkpoint.
`--only examples` installs the bundled examples and renders their grids, and the Classify view on the
CIFAR-10 one with cifar10-mini test photos (from the shared folder beside the checkout). `--only probes` probes
the shapes example with `--protocol aggregate` and renders its grid with the k-NN grid beside it, and with the
learned aggregation weights beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ddae_core.rundir import LOG, RUNS_DIR, JobKind, RunStatus

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SIZE = (1360, 860)


def run_worker(run_dir: Path) -> str:
    """Run the job in a worker subprocess (its output to log.txt, as the scheduler does); its final status."""
    with open(run_dir / LOG, "ab") as log:
        code = subprocess.call([sys.executable, "-m", "ddae_core.worker", str(run_dir)], stdout=log,
                               stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1])
    return {0: RunStatus.DONE, 3: RunStatus.CANCELLED}.get(code, RunStatus.FAILED)


def make_runs(ws: Path, steps: int, quick: bool) -> dict[str, str]:
    """The demo's runs, created with the engine's spec functions and run by workers; kind -> run id."""
    from ddae_core.engine.config import load_config
    from ddae_core.jobs.eval_specs import align_spec, noisy_spec, probe_spec
    from ddae_core.jobs.specs import create_job, train_spec
    from ddae_core.rundir import list_checkpoints

    cfg = load_config("tiny-ddpm")
    cfg["studio"]["log_every_steps"] = 2
    data, limits = "builtin:shapes", {"train_limit": 2000, "test_limit": 500}
    if quick:
        cfg["network"].update(ch_mults=[1, 2], is_attn=[False, True], n_blocks=1)
        cfg["linear"]["blockname"] = "out_3"
        cfg["studio"].update(sample_steps=4, log_every_steps=1)
        data, limits = "builtin:shapes?n_train=512&n_test=128", {"train_limit": 256, "test_limit": 128}
    # A fixed number of steps, not a time budget: the same curve on every machine.
    every = max(1, steps // 4)
    spec = train_spec(config=cfg, data=data, steps=steps, batch_size=32, device="cpu", gpus=0,
                      name="demo: tiny-ddpm on builtin:shapes", checkpoint_every_steps=every,
                      sample_every_steps=every)
    runs = {"train": create_job(ws, spec)}
    print(f"training {runs['train'].name} for {steps} steps…", flush=True)
    if run_worker(runs["train"]) != RunStatus.DONE:
        raise SystemExit(f"The demo's training failed; see {runs['train'] / LOG}.")
    steps = [s for s, _ in list_checkpoints(runs["train"])]
    middle = steps[len(steps) // 2 - 1] if len(steps) > 1 else steps[-1]
    jobs = {
        "probe-early": probe_spec(runs["train"], checkpoint=middle, timesteps="1,11,51,101", device="cpu",
                                  name=f"probe grid at step {middle}", **limits),
        "probe": probe_spec(runs["train"], timesteps="1,11,51,101", device="cpu",
                            name=f"probe grid at step {steps[-1]}", **limits),
        "align": align_spec(runs["train"], layers="out_5,out_6,out_7" if not quick else "out_2,out_3",
                            limit=limits["test_limit"], device="cpu", name="alignment and uniformity"),
        "noisy": noisy_spec(runs["train"], epochs=3, device="cpu", name="noise-conditional classifier", **limits),
    }
    for key, job in jobs.items():
        job["device"]["gpus"] = 0
        runs[key] = create_job(ws, job)
        print(f"{key}: {runs[key].name}…", flush=True)
        if run_worker(runs[key]) != RunStatus.DONE:
            print(f"  {key} did not finish; see {runs[key] / LOG}", flush=True)
    return {key: d.name for key, d in runs.items()}


def random_inception(folder: Path) -> Path:
    """An FID Inception at random initialisation, for a machine without the standard weights file.

    Its FIDs are real Frechet distances of a meaningless feature space: the view's mechanics, not its values.
    """
    import torch
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "random_inception.pth"
    torch.save(net.state_dict(), path)
    return path


def make_sweep_runs(ws: Path, steps: int, quick: bool) -> dict[str, str]:
    """A tiny-ddpm training whose sweep queues an FID and a probe job per checkpoint, each run by a worker."""
    from ddae_core.engine.config import load_config, parse_model_config
    from ddae_core.engine.evaluation.inception import find_weights
    from ddae_core.jobs.specs import create_job, train_spec
    from ddae_core.jobs.sweep import sweep_plan
    from ddae_core.rundir import read_spec

    cfg = load_config("tiny-ddpm")
    data = "builtin:shapes?n_train=1000&n_test=300"
    if quick:
        cfg["network"].update(ch_mults=[1, 2], is_attn=[False, True], n_blocks=1)
        cfg["linear"]["blockname"] = "out_3"
        cfg["studio"].update(sample_steps=4)
        data = "builtin:shapes?n_train=256&n_test=64"
    try:
        weights, fid_note, fid = find_weights(ws), "", {"fid_n": 1000, "dims": 2048}
    except Exception:  # noqa: BLE001 - no weights file: a random network (its cheap 64 features) shows the mechanics
        weights, fid_note = random_inception(ws / "data"), " (FID of a random Inception)"
        fid = {"fid_n": 200, "dims": 64}
    every = max(1, steps // 6)
    spec = train_spec(config=cfg, data=data, steps=steps, batch_size=32, device="cpu", gpus=0,
                      name="tiny-ddpm with a checkpoint sweep" + fid_note, checkpoint_every_steps=every,
                      sample_every_steps=every)
    if quick:
        fid["fid_n"] = 64
    spec["options"]["sweep"] = sweep_plan(parse_model_config(cfg), ws, steps=20, batch_size=100, inception=weights,
                                          device="cpu", **fid)
    train = create_job(ws, spec)
    print(f"training {train.name} for {steps} steps, with a sweep every {every} steps…", flush=True)
    if run_worker(train) != RunStatus.DONE:
        raise SystemExit(f"The sweep's training failed; see {train / LOG}.")
    jobs = sorted((p for p in (ws / RUNS_DIR).iterdir() if p.name > train.name),
                  key=lambda p: (read_spec(p)["parent"]["checkpoint"], p.name))
    for job in jobs:
        print(f"{job.name}…", flush=True)
        if run_worker(job) != RunStatus.DONE:
            print(f"  it did not finish; see {job / LOG}", flush=True)
    return {"sweep-train": train.name}


def open_window(ws: Path):
    """The workspace indexed to its last event, and a main window on it (no scheduler), shown and settled."""
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from db import Ingester, Store

    with Store.open(ws) as store, Ingester(store) as ingester:
        while ingester.ingest_once().events:
            pass
    app = QApplication.instance() or QApplication([])
    app.setStyle("Fusion")
    window = MainWindow(ws, run_scheduler=False)
    window.resize(*SIZE)
    window.show()
    settle(app, 1.5)
    return app, window


def render_unified(ws: Path, runs: dict[str, str], out: Path) -> list[Path]:
    """Only the unified view of the sweep's training run."""
    from app.run.unified import UnifiedPanel

    app, window = open_window(ws)
    window.show_run(runs["sweep-train"])
    view = window.run_view
    view.show_tab(UnifiedPanel)
    view.splitter.setSizes([760, 60])
    panel = view.panel(UnifiedPanel)
    panel.select_row(0)
    shots = [shoot(window, app, out, "run-unified")]
    window.close()
    return shots


def make_example_runs(ws: Path, _steps: int, _quick: bool) -> dict[str, str]:
    """The bundled examples, installed as `ddae import-example` does: name -> its train run id."""
    from ddae_core.jobs import examples

    return {name: examples.install(ws, name)[0].name for name in examples.available()}


def render_examples(ws: Path, runs: dict[str, str], out: Path) -> list[Path]:
    """Each bundled example's probe grid (baselines on the colour bar), and Classify on the CIFAR-10 one."""
    from app.run.panels import GridPanel
    from ddae_core.jobs.examples import CLASSIFY_EXAMPLE, DEMO_EXAMPLE

    app, window = open_window(ws)
    shots = []
    for name, train_id in runs.items():
        window.show_run(train_id)
        window.run_view.show_tab(GridPanel)
        window.run_view.panel(GridPanel).set_fit(True)
        shots.append(shoot(window, app, out, "example-probe-grid" if name == DEMO_EXAMPLE else f"example-{name}-grid"))
    photos = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-mini" / "test"
    if CLASSIFY_EXAMPLE in runs and photos.is_dir():
        window.tabs.setCurrentWidget(window.classify_view)
        window.hub.poll()       # Classify lists its runs now rather than on the reader's next tick
        window.classify_view.prefer_run(runs[CLASSIFY_EXAMPLE])
        window.classify_view.load_files([sorted(folder.glob("*.jpg"))[7] for folder in sorted(photos.iterdir())])
        window.classify_view.wait_idle(120_000)
        shots.append(shoot(window, app, out, "classify-cifar10"))
    window.close()
    return shots


def make_probe_runs(ws: Path, _steps: int, quick: bool) -> dict[str, str]:
    """An aggregate probe grid (k-NN cells, standardised heads, learned aggregation) of the shapes example."""
    from ddae_core.jobs import examples
    from ddae_core.jobs.eval_specs import probe_spec
    from ddae_core.jobs.specs import create_job

    train_dir, _ = examples.install(ws, "shapes")
    limits = {"train_limit": 256, "test_limit": 128} if quick else {"train_limit": 2000, "test_limit": 500}
    probe = create_job(ws, probe_spec(train_dir, timesteps="1,11,51,101", layers="all", protocol="aggregate",
                                      data="builtin:shapes", device="cpu", baselines=False,
                                      name="shapes: k-NN, standardised heads and learned aggregation", **limits))
    if run_worker(probe) != RunStatus.DONE:
        raise SystemExit(f"the aggregate probe did not finish; see {probe / LOG}")
    return {"probe": probe.name}


def render_probes(ws: Path, runs: dict[str, str], out: Path) -> list[Path]:
    """The aggregate grid with the k-NN grid beside it, then with its learned weights beside it."""
    from app.run.grid_beside import KNN, WEIGHTS
    from app.run.panels import GridPanel

    app, window = open_window(ws)
    window.show_run(runs["probe"])
    window.run_view.show_tab(GridPanel)
    panel = window.run_view.panel(GridPanel)
    panel.set_fit(True)
    shots = []
    for what, name in ((KNN, "run-grid-knn-beside"), (WEIGHTS, "run-grid-aggregate-weights")):
        panel.beside.show_beside(what)
        shots.append(shoot(window, app, out, name))
    window.close()
    return shots


def settle(app, seconds: float = 0.6) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def shoot(window, app, out: Path, name: str) -> Path:
    """Grab the window to OUT/name.png, as a 256-colour PNG (a third of the size; the UI has few colours)."""
    from PIL import Image

    settle(app)
    path = out / f"{name}.png"
    window.grab().save(str(path))
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)
    print(f"wrote {path}", flush=True)
    return path


def render(ws: Path, runs: dict[str, str], out: Path) -> list[Path]:
    from app.main_window import MainWindow
    from app.run.panels import GridPanel, SamplesPanel, TrainingPanel

    app, window = open_window(ws)
    shots = []
    store = window.store
    store.set_tags(runs["train"], ["demo", "baseline"])
    store.set_notes(runs["train"], "The README's demo run.")
    window.runs_view.reload()
    window.runs_view.select([runs["train"]])
    window.tabs.setCurrentWidget(window.runs_view)
    shots.append(shoot(window, app, out, "runs"))

    window.show_run(runs["train"])
    view = window.run_view
    view.panel(TrainingPanel).loss.set_log_y(True)
    shots.append(shoot(window, app, out, "run-training"))
    view.show_tab(SamplesPanel)
    shots.append(shoot(window, app, out, "run-samples"))
    window.show_run(runs["probe"])
    view.show_tab(GridPanel)
    view.panel(GridPanel).set_fit(True)
    shots.append(shoot(window, app, out, "run-probe-grid"))
    for key, name in (("align", "run-align-uniform"), ("noisy", "run-noisy-classifier")):
        window.show_run(runs[key])
        shots.append(shoot(window, app, out, name))

    window.evaluate(JobKind.PROBE, runs["train"])
    form = window.launch_view.form(JobKind.PROBE)
    form.set_values(timesteps="1,11,21,51", quick=True, device="cpu")
    shots.append(shoot(window, app, out, "launch-probe"))

    # The queue with a job running (its worker started here, as the scheduler would) and one waiting.
    running = window.launcher.submit(form.build_spec(), priority=2)
    sample = window.launch_view.show_kind(JobKind.SAMPLE, runs["train"])
    sample.set_values(device="cpu")
    window.launcher.submit(sample.build_spec(), priority=0)
    shots.append(shoot_queue(window, app, out, store.run_dir(running)))
    window.compare_runs([runs["probe-early"], runs["probe"]])
    window.hub.poll()
    settle(app, 2.0)
    shots.append(shoot(window, app, out, "compare"))
    images = test_images(ws, Path(tempfile.mkdtemp(prefix="ddae-classify-")))
    window.tabs.setCurrentWidget(window.classify_view)
    window.hub.poll()
    window.classify_view.set_run(runs["train"])
    window.classify_view.load_files(images)
    window.classify_view.wait_idle(60_000)
    shots.append(shoot(window, app, out, "classify"))
    shutil.rmtree(images[0].parent, ignore_errors=True)
    window.close()

    # What a new user sees first: an empty workspace offers the demo.
    empty = MainWindow(ws.parent / "empty", run_scheduler=False)
    empty.resize(*SIZE)
    empty.show()
    shots.append(shoot(empty, app, out, "first-run"))
    empty.close()
    return shots


def shoot_queue(window, app, out: Path, run_dir: Path) -> Path:
    """Start the queued job's worker, wait for its progress bar to move, grab the Queue, then cancel it."""
    from db import Ingester

    with open(run_dir / LOG, "ab") as log:
        worker = subprocess.Popen([sys.executable, "-m", "ddae_core.worker", str(run_dir)], stdout=log,
                                  stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1])
    try:
        ingester = Ingester(window.store)
        ingester.require()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and worker.poll() is None:
            ingester.ingest_once()
            record = window.store.get_run(run_dir.name)
            if record.status == RunStatus.RUNNING and (record.progress_done or 0) > 0:
                break
            settle(app, 1.0)
        time.sleep(3)                          # a few seconds of progress, for the ETA
        ingester.ingest_once()
        window.hub.poll()
        window.queue_view.refresh()
        window.queue_view.select(run_dir.name)
        window.tabs.setCurrentWidget(window.queue_view)
        return shoot(window, app, out, "queue")
    finally:
        worker.terminate()                     # SIGTERM: the job stops cleanly as cancelled
        worker.wait(120)
        ingester.ingest_once()
        ingester.release()


def test_images(ws: Path, folder: Path, n: int = 6) -> list[Path]:
    """A few held-out builtin:shapes images as PNG files, to drop on Classify."""
    from PIL import Image

    from ddae_core.engine.data import load_split

    folder.mkdir(parents=True, exist_ok=True)
    data = load_split("builtin:shapes?n_train=16&n_test=64", "test", data_root=ws / "data")
    paths = []
    for i in range(n):
        path = folder / f"{data.classes[int(data.labels[i])]}-{i}.png"
        Image.fromarray(data.images[i].permute(1, 2, 0).numpy()).resize((128, 128), Image.NEAREST).save(path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the PNG files (created)")
    parser.add_argument("--steps", type=int, default=240, help="training steps of the demo run (default 240)")
    parser.add_argument("--quick", action="store_true", help="a micro network and a few steps (checks the script)")
    parser.add_argument("--only", choices=["all", "unified", "examples", "probes"], default="all",
                        help="unified: make and render only the unified view (a training with a checkpoint sweep); "
                             "examples: the bundled examples' grids and Classify on the CIFAR-10 one; "
                             "probes: an aggregate grid with the k-NN grid and the aggregation weights beside it")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="make the workspace here and keep it (default: a temporary one, removed); "
                             "if it already holds the runs of an earlier --keep, only render again")
    args = parser.parse_args(argv)
    made = "screenshot-runs.json" if args.only == "all" else f"screenshot-{args.only}-runs.json"
    make, draw = {"all": (make_runs, render), "unified": (make_sweep_runs, render_unified),
                  "examples": (make_example_runs, render_examples),
                  "probes": (make_probe_runs, render_probes)}[args.only]
    return make_and_render(args, made, make, draw)


def make_and_render(args, made_name: str, make, draw) -> int:
    """Make the runs (`make(ws, steps, quick)`) in a workspace (args.keep, or a temporary one) unless it already
    holds them (listed in its `made_name` file), then render them into args.out (`draw(ws, runs, out)`)."""
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="ddae-screenshots-"))
    os.environ["DDAE_STUDIO_SETTINGS"] = str(tmp / "settings.ini")     # never the user's settings
    ws = args.keep or tmp / "ws"
    (ws / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    made = ws / made_name
    try:
        if made.is_file():
            runs = json.loads(made.read_text())
        else:
            runs = make(ws, 24 if args.quick else args.steps, args.quick)
            made.write_text(json.dumps(runs))
        shots = draw(ws, runs, args.out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(shots)} screenshots in {args.out}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
