#!/bin/sh
# The paper's noise-configuration ablation (Figure 4) as one grid sweep on the built-in shapes: the tiny
# preset trained with T = 1000, 256 and 64 noise levels, two seeds each (6 runs), every run probed (the
# paper's grid, its best cell) at its last checkpoint; then the group table of best probe against T.
# About half an hour on a laptop CPU, one job at a time (estimated from bench/results' training and feature
# speeds, not timed end to end); tests/test_worked_example.py runs a smaller copy of it in about a minute.
#
#   sh docs/examples/noise-ablation.sh [WORKSPACE]
#   STEPS=4 DATA='builtin:shapes?n_train=256&n_test=64' sh docs/examples/noise-ablation.sh /tmp/ws   # a smoke test
set -e
WS=${1:-${DDAE_WORKSPACE:-$HOME/ddae-workspace}}
STEPS=${STEPS:-600}
DATA=${DATA:-builtin:shapes}

ddae train --preset tiny-ddpm --data "$DATA" --device cpu --steps "$STEPS" \
    --grid 'diffusion.n_T=1000,256,64' --seeds 2 --grid-name noise-T \
    --sweep every "$STEPS" --sweep-fid-n 0 --sweep-probe grid \
    --queue --workspace "$WS"
# Runs the queue until it is empty: the six trainings, then each one's probe grid.
ddae queue serve --once --workspace "$WS"
# One row per T: n, mean +- std, min and max of the best probe over the two seeds.
ddae runs list --tag sweep:noise-T --group-by diffusion.n_T --metrics best,loss --workspace "$WS"
ddae runs list --tag sweep:noise-T --group-by diffusion.n_T --metrics best --format markdown --workspace "$WS"
