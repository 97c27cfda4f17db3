#!/usr/bin/env bash
# Rebuild the bundled example runs (resources/examples/) with the project's own commands.
#   resources/examples/recipe.sh [WORKSPACE]       (run from the checkout, after ./bootstrap.sh)
#
# shapes: tiny-ddpm (2.25M parameters) on builtin:shapes, batch 16, lr 1e-3 with 50 warm-up steps and a
# linear decay to 0 at the last step, EMA 0.999 with warm-up (the tiny-ddpm preset as it is), in two stages:
# 12,795 steps, then 18,324 more started from those weights and EMA (`--init-from`: a fresh optimizer and the
# same warm-up and decay again). The shipped run trained each stage with a time budget (`--minutes 120`, then
# `--minutes 125`) on one thread of a shared 2-core CPU at 40-50 images/s, 225 minutes in all; `--steps`
# reproduces the schedule on any machine. Its grid's best cell (standardised heads, 4,000/1,000 images):
#   step 1,000 (7 min) 22.7%, 8,000 (71 min) 38.6%, 12,795 (100 min) 49.6%,
#   12,795 + 12,000 (194 min) 81.9%, 12,795 + 18,324 (225 min, shipped) 90.9% at (t=101, out_6);
# raw pixels 10.1%, random init 16.8%. The first stage ships as the run's parent: curves and samples, no weights.
# Its probe grid uses the options `ddae demo` uses, so the demo reads the baselines measured here.
set -euo pipefail
cd "$(dirname "$0")/../.."
WS=${1:-$HOME/ddae-examples}
SHAPES_STEPS=${SHAPES_STEPS:-12795}
SHAPES_MORE_STEPS=${SHAPES_MORE_STEPS:-18324}
ddae() { .venv/bin/ddae "$@" --workspace "$WS"; }

ddae train --preset tiny-ddpm --data builtin:shapes --steps "$SHAPES_STEPS" \
    --checkpoint-every 1000 --sample-every 2000 --name "tiny-ddpm shapes (bundled)"
ddae train --preset tiny-ddpm --data builtin:shapes --steps "$SHAPES_MORE_STEPS" \
    --init-from "tiny-ddpm shapes (bundled)" --checkpoint-every 2000 --sample-every 4000 \
    --name "tiny-ddpm shapes (bundled, continued)"
ddae probe --run "tiny-ddpm shapes (bundled, continued)" --timesteps 1,11,51,101 --layers all \
    --protocol standardized --epochs 30 --train-limit 4000 --test-limit 1000 \
    --name "tiny-ddpm shapes (bundled, continued), probe grid"
ddae pack-example --train "tiny-ddpm shapes (bundled, continued)" \
    --probe "tiny-ddpm shapes (bundled, continued), probe grid" --name shapes \
    --title "tiny-ddpm trained 225 minutes on builtin:shapes (31,119 steps: 12,795, then 18,324 more from those weights; one CPU thread)"
