"""The benchmarks' last lines, kept as files: what the README's benchmark block is generated from.

Each benchmark ends with `record(NAME, line)`: the line is printed as always and written, with the date,
the machine and the command, to `bench/results/NAME.json`. `python -m bench.readme` rebuilds the README's
benchmark block from these files, and a test keeps the two equal, so a figure there is the last one a
benchmark printed, never one typed by hand.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

# The order the README lists them in.
ORDER = ("train_throughput", "probe_grid", "probe_grid_shapes", "probe_grid_cifar10", "instant_grid", "features",
         "features_dit", "probe_quality", "demo_quality", "contention", "store", "runs_table", "gui", "gui_sweep",
         "gpu_check")


@dataclass(frozen=True)
class Result:
    name: str
    line: str           # the benchmark's last line, exactly as printed
    date: str           # YYYY-MM-DD of the measurement
    machine: str        # what ran it, e.g. "2-core CPU (x86_64)" or the GPU's name
    command: str        # how to measure it again
    note: str = ""      # anything the line itself does not say (provenance, conditions)


def machine() -> str:
    try:
        import torch
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"{os.cpu_count()}-core CPU ({platform.machine()})"


def _command() -> str:
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    module = spec.name if spec is not None else Path(sys.argv[0]).stem
    return " ".join(["python -m", module, *sys.argv[1:]])


def record(name: str, line: str, note: str = "", device: str | None = None, echo: bool = True) -> Result:
    """Print `line` (unless `echo` is False: the caller printed it) and keep it as bench/results/NAME.json
    (unless $DDAE_BENCH_NO_RECORD is set)."""
    if echo:
        print(line, flush=True)
    result = Result(name=name, line=line, date=time.strftime("%Y-%m-%d"), machine=device or machine(),
                    command=_command(), note=note)
    if not os.environ.get("DDAE_BENCH_NO_RECORD"):
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{name}.json").write_text(json.dumps(asdict(result), indent=1) + "\n")
    return result


def load(name: str) -> Result | None:
    path = RESULTS / f"{name}.json"
    return Result(**json.loads(path.read_text())) if path.is_file() else None


def load_all() -> list[Result]:
    found = {p.stem for p in RESULTS.glob("*.json")}
    names = [n for n in ORDER if n in found] + sorted(found - set(ORDER))
    return [r for r in map(load, names) if r is not None]
