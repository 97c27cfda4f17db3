#!/usr/bin/env bash
# Rebuild the bundled example runs (resources/examples/) with the project's own commands.
#   resources/examples/recipe.sh [WORKSPACE]       (run from the checkout, after ./bootstrap.sh)
#
# shapes: tiny-ddpm (2.25M parameters) on builtin:shapes, batch 16, lr 1e-3 with 50 warm-up steps and a
# linear decay to 0 at the last step, EMA 0.999 with warm-up (the tiny-ddpm preset as it is). The shipped
# run trained with `--minutes 120` on one thread of a shared 2-core CPU (about 100 minutes of it training,
# at 40-50 images/s), which ended at step 12,795; `--steps` reproduces that schedule on any machine.
# Its grid (t=51, out_5): 49.6%, raw pixels 10.1%, random init 16.8%; after 8,000 steps 38.6%, so longer
# training (or a GPU) buys more.
# Its probe grid uses the options `ddae demo` uses, so the demo reads the baselines measured here.
set -euo pipefail
cd "$(dirname "$0")/../.."
WS=${1:-$HOME/ddae-examples}
SHAPES_STEPS=${SHAPES_STEPS:-12795}
ddae() { .venv/bin/ddae "$@" --workspace "$WS"; }

ddae train --preset tiny-ddpm --data builtin:shapes --steps "$SHAPES_STEPS" \
    --checkpoint-every 1000 --sample-every 2000 --name "tiny-ddpm shapes (bundled)"
ddae probe --run "tiny-ddpm shapes (bundled)" --timesteps 1,11,51,101 --layers all \
    --protocol standardized --epochs 30 --train-limit 4000 --test-limit 1000 \
    --name "tiny-ddpm shapes (bundled), probe grid"
ddae pack-example --train "tiny-ddpm shapes (bundled)" --probe "tiny-ddpm shapes (bundled), probe grid" \
    --name shapes --title "tiny-ddpm trained 100 minutes on builtin:shapes (12,795 steps, one CPU thread)"
