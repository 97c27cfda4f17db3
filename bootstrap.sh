#!/usr/bin/env bash
# Set up DDAE Studio in .venv (once), then run the given command inside it.
#   ./bootstrap.sh                 set up only
#   ./bootstrap.sh ddae demo       set up, then run the main job
# torch/torchvision come from PyPI (CUDA wheels on Linux x86_64; they also run on the CPU).
# Everything is installed: the app, GPU meters, FID, Slurm and the test and lint tools (`.[all]`);
# `pip install .` alone gives the headless engine, worker and CLI.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.ddae-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[all]'
  touch "$stamp"
  # The desktop app (main.py) needs a few X11 libraries a fresh Debian lacks: name them and the command now.
  .venv/bin/python -m app.qt_libs || echo "(ddae and the tests run without them; main.py needs them)" >&2
fi
if [ $# -gt 0 ]; then
  cmd=$1; shift
  if [ -x ".venv/bin/$cmd" ]; then cmd=".venv/bin/$cmd"; fi
  exec "$cmd" "$@"
fi
