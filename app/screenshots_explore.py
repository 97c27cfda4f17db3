"""`python -m app.screenshots_explore OUT_DIR`: the views that explore what layers hold, rendered from real runs.

- run-grid-movie: tiny-ddpm trained from scratch on builtin:shapes, the demo's probe grid (standardised heads)
  at each of its checkpoints,
  the Run view's "Grid over training" tab on a middle checkpoint (the best cell's path drawn over it);
- run-similarity: the bundled shapes example against the same network at random init (CKA and mutual k-NN);
- classify-lens: Classify on the bundled example, the lens at a clicked pixel of a shape;
- run-segmentation: the bundled example's per-pixel probe grid (mIoU).
Every job runs in a worker subprocess, as in app.screenshots; `--quick` uses fewer steps and images (to check
the script), `--keep DIR` keeps the workspace and renders again from it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ddae_core.rundir import LOG, RUNS_DIR, RunStatus

from .screenshots import make_and_render, open_window, run_worker, settle, shoot, test_images

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _run(ws: Path, spec: dict, what: str) -> str:
    from ddae_core.jobs.specs import create_job

    spec["device"]["gpus"] = 0
    run_dir = create_job(ws, spec)
    print(f"{what}: {run_dir.name}…", flush=True)
    if run_worker(run_dir) != RunStatus.DONE:
        raise SystemExit(f"{what} did not finish; see {run_dir / LOG}.")
    return run_dir.name


def make_runs(ws: Path, steps: int, quick: bool) -> dict[str, str]:
    from ddae_core.engine.config import load_config
    from ddae_core.jobs import examples
    from ddae_core.jobs.eval_specs import probe_spec
    from ddae_core.jobs.explore_specs import segmentation_spec, similarity_spec
    from ddae_core.jobs.specs import train_spec
    from ddae_core.rundir import list_checkpoints

    images = {"train_limit": 300, "test_limit": 200} if quick else {"train_limit": 1000, "test_limit": 500}
    runs = {"example": examples.install(ws, examples.DEMO_EXAMPLE)[0].name}
    example = ws / RUNS_DIR / runs["example"]
    cfg = load_config("tiny-ddpm")
    runs["train"] = _run(ws, train_spec(config=cfg, data="builtin:shapes", steps=steps, batch_size=32, device="cpu",
                                        gpus=0, name="tiny-ddpm from scratch, a grid per checkpoint",
                                        checkpoint_every_steps=max(1, steps // 4), sample_every_steps=steps),
                         "training")
    for step, _ in list_checkpoints(ws / RUNS_DIR / runs["train"]):
        _run(ws, probe_spec(ws / RUNS_DIR / runs["train"], checkpoint=step, timesteps="1,11,51,101",
                            baselines=False, device="cpu", name=f"probe grid at step {step}",
                            **examples.DEMO_PROBE, **images),
             f"probe at step {step}")
    runs["similarity"] = _run(ws, similarity_spec(example, random_init=True, images=images["test_limit"],
                                                  layers="out_3,out_4,out_5,out_6,out_7,out_8,out_9", device="cpu",
                                                  name="the shapes example against its random init"), "similarity")
    runs["segmentation"] = _run(ws, segmentation_spec(example, timesteps="1,11,51,101", epochs=2 if quick else 3,
                                                      device="cpu", name="segmentation grid of the shapes example",
                                                      **images), "segmentation")
    return runs


def render(ws: Path, runs: dict[str, str], out: Path) -> list[Path]:
    from app.run.explore_panels import SegmentationPanel, SimilarityPanel
    from app.run.movie_panel import MoviePanel

    app, window = open_window(ws)
    view, shots = window.run_view, []
    window.show_run(runs["train"])
    view.show_tab(MoviePanel)
    view.splitter.setSizes([760, 60])
    movie = view.panel(MoviePanel)
    movie.show_frame(max(0, len(movie.movie.frames) // 2))
    shots.append(shoot(window, app, out, "run-grid-movie"))
    window.show_run(runs["similarity"])
    view.show_tab(SimilarityPanel)
    view.splitter.setSizes([760, 60])
    shots.append(shoot(window, app, out, "run-similarity"))
    window.show_run(runs["segmentation"])
    view.show_tab(SegmentationPanel)
    view.splitter.setSizes([760, 60])
    shots.append(shoot(window, app, out, "run-segmentation"))

    folder = Path(tempfile.mkdtemp(prefix="ddae-lens-"))
    window.tabs.setCurrentWidget(window.classify_view)
    window.hub.poll()
    classify = window.classify_view
    classify.set_run(runs["example"])
    classify.load_files(test_images(ws, folder))
    classify.select_file(0)
    classify.wait_idle(120_000)                 # the thumbnails' labels first: a newer request replaces them
    classify.set_noise_level(11)
    classify.wait_idle(120_000)
    classify.lens.set_layer("out_5")            # the segmentation grid's best layer
    classify.lens.set_second(3)
    classify.lens.wait_idle(120_000)
    settle(app, 1.0)
    classify.lens.click(14, 13)
    shots.append(shoot(window, app, out, "classify-lens"))
    shutil.rmtree(folder, ignore_errors=True)
    window.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the PNG files (created)")
    parser.add_argument("--steps", type=int, default=800, help="training steps of the movie's run (default 800)")
    parser.add_argument("--quick", action="store_true", help="few steps and images (checks the script)")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="make the workspace here and keep it; if it already holds the runs, only render again")
    return make_and_render(parser.parse_args(argv), "screenshot-explore-runs.json", make_runs, render)

if __name__ == "__main__":
    sys.exit(main())
