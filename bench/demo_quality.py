"""What a new user sees first: `ddae demo` on a fresh workspace, timed, and the bundled model's grid.

    python -m bench.demo_quality [--keep]

Runs the README's main job (`ddae demo`, its defaults) as a subprocess on an empty temporary workspace,
as a fresh clone would after ./bootstrap.sh, and reads the grid it probed live on the bundled shapes
example: the best cell against the same heads on raw pixels and on the network at random
initialisation, measured in the same run unless a cache entry measured for exactly this grid (same network, data,
protocol, precision, batch, device and probe code) exists; the last line says which, and from when.
Last line: `demo quality: best B% at (t, layer), raw pixels P%, random init R%, demo M min, baselines measured in
this run` (or `..., baselines read from the cache (NAME), measured YYYY-MM-DD HH:MM UTC`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ddae_core.engine.evaluation.baselines import provenance
from ddae_core.jobs import examples
from ddae_core.jobs.examples import DEMO_EXAMPLE
from ddae_core.rundir.figures import percent

from .common import ROOT
from .results import record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the demo's workspace and print where it is")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    if DEMO_EXAMPLE not in examples.available():
        raise SystemExit(f"No bundled {DEMO_EXAMPLE!r} example in this copy; resources/examples/recipe.sh builds it.")
    ws = Path(tempfile.mkdtemp(prefix="demo-quality-"))
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "ddae_core.cli", "demo", "--workspace", str(ws),
                          "--device", args.device], cwd=ROOT, text=True, capture_output=True)
    minutes = (time.monotonic() - started) / 60
    print(out.stdout[-4000:])
    if out.returncode != 0:
        raise SystemExit(f"ddae demo failed ({out.returncode}):\n{out.stderr[-2000:]}")
    info = examples.manifest(DEMO_EXAMPLE)
    shipped = {run["id"] for run in info["runs"]}
    example_train = info["runs"][0]["id"]
    # The probe the demo ran live: a run of this workspace, not one of the example's own.
    live = [json.loads(p.read_text()) for p in sorted(ws.glob("runs/*-probe-*/grid.json"))
            if p.parent.name not in shipped]
    grid = next(g for g in live if g["parent_run"] == example_train)
    best, base = grid["best"], grid["baselines"]
    if args.keep:
        print(f"workspace: {ws}")
    else:
        shutil.rmtree(ws, ignore_errors=True)
    record("demo_quality",
           f"demo quality ({grid.get('protocol', 'fast')} protocol): best {percent(best['accuracy'])} at "
           f"(t={best['timestep']}, {best['layer']}), raw pixels {percent(base['pixels']['accuracy'])}, "
           f"random init {percent(base['random_init']['accuracy'])}, demo {minutes:.1f} min, {provenance(base)}")


if __name__ == "__main__":
    main()
