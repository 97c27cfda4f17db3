"""What each stage of bench.gpu_check does and how big: the real check on a GPU, or toy sizes (--quick)."""

from __future__ import annotations

from dataclasses import dataclass, field

TOY = "toy"                     # the 0.3M-parameter UNet of --quick (tiny-ddpm's shape at two levels)


@dataclass(frozen=True)
class Sizes:
    """How much each stage does: the real check on a GPU, or toy sizes (--quick) for any machine."""

    tiny: str                   # a preset name, or TOY
    big: str
    big_label: str              # the stage name's model, as the summary says it
    batch: int                  # training batch, for every model
    steps: dict                 # model -> (timed steps per variant, seconds per variant at most)
    compile_steps: dict         # model -> timed steps of the compiled loop
    compile_backend: str
    parent_steps: int           # training of the features stage's model
    feature_images: int         # images extracted, and the fast grid's training images
    grid_test: int              # the fast grid's test images
    grid_epochs: int
    data: str
    queue_data: str             # each queued worker generates it at its start
    queue_train_s: float        # training time of each queued job
    queue_log_every_steps: int  # its loss points, which the rates are read from (2 at least per job)
    dit: str = "XL/2"           # the dit stage's DiT (bench.dit_speed.dit_model): XL/2, or tiny
    dit_batch: int = 64
    dit_batches: int = 4        # timed batches per variant
    limits: dict = field(default_factory=dict)     # stage -> seconds


# (stage, time limit in seconds): 370 s together, and a stage past its limit gets 3 s to leave before it
# is killed, so the whole check stays under 6.5 minutes.
FULL = Sizes(tiny="tiny-ddpm", big="ddpm-cifar10", big_label="35.7M", batch=128,   # the official per-GPU batch
             steps={"tiny-ddpm": (300, 5.0), "ddpm-cifar10": (200, 8.0)},
             compile_steps={"tiny-ddpm": 200, "ddpm-cifar10": 100}, compile_backend="inductor",
             parent_steps=30, feature_images=5000, grid_test=1000, grid_epochs=15, data="builtin:shapes",
             queue_data="builtin:shapes?n_train=2560&n_test=256", queue_train_s=10, queue_log_every_steps=5,
             limits={"train-tiny": 40, "train-35.7M": 70, "compile": 65, "features": 65, "queue": 95, "dit": 35})
# Limits with room for a loaded CI machine: the quick check takes about a minute on a quiet CPU.
QUICK = Sizes(tiny=TOY, big=TOY, big_label="35.7M", batch=8, steps={TOY: (3, 2.0)}, compile_steps={TOY: 3},
              compile_backend="eager", parent_steps=2, feature_images=64, grid_test=32, grid_epochs=2,
              data="builtin:shapes?n_train=64&n_test=32", queue_data="builtin:shapes?n_train=64&n_test=16",
              queue_train_s=3, queue_log_every_steps=1, dit="tiny", dit_batch=8, dit_batches=2,
              limits={"train-tiny": 120, "train-35.7M": 120, "compile": 150, "features": 120, "queue": 150,
                      "dit": 120})
STAGES = list(FULL.limits)


def sizes_of(args) -> Sizes:
    return QUICK if args.quick else FULL


def model_config(name: str) -> dict:
    """A preset's config, or TOY: tiny-ddpm at two levels of one block (0.3M parameters)."""
    from ddae_core.engine.config import load_config

    cfg = load_config("tiny-ddpm" if name == TOY else name)
    if name == TOY:
        cfg["network"].update(ch_mults=[1, 2], is_attn=[False, True], n_blocks=1)
        cfg["linear"]["blockname"] = "out_3"
    return cfg


def model_label(name: str) -> str:
    return "toy UNet (0.3M)" if name == TOY else name
