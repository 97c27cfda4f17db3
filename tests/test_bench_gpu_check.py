"""bench.gpu_check runs in CI: every stage at toy size on the CPU, as a real subprocess, so the script cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch

from bench.gpu_check import STAGES
from ddae_core.engine.device import extraction_batch_size

from .fixtures import ROOT


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_check_on_the_cpu_measures_every_stage(no_leftover_processes):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--device", "cpu", "--quick"], cwd=ROOT, env=env,
                         text=True, capture_output=True, timeout=540)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lines = {line.split(":")[0].removeprefix("gpu check "): line for line in out.stdout.splitlines()
             if line.startswith("gpu check ")}
    assert sorted(lines) == sorted(STAGES), out.stdout[-3000:]
    for stage, line in lines.items():
        # A stage that failed or ran out of time says so in brackets; one that measured nothing says n/a.
        assert "n/a" not in line and "[" not in line, f"{stage}: {line}\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
        rates = [float(v) for v in re.findall(r"(\d+(?:\.\d+)?) img/s", line)]
        assert rates and min(rates) > 0, line
    # The features stage times the fast protocol's own extraction: the engine's batch size for this device.
    assert f"batch {extraction_batch_size(torch.device('cpu'))}," in lines["features"]
    assert re.search(r"fast grid \d+\.\d s", lines["features"]), lines["features"]
