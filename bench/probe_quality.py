"""What 20 minutes of CPU pre-training buys: the fast probe grid against raw pixels and random weights.

    python -m bench.probe_quality [--minutes 20] [--preset tiny-ddpm] [--run RUN]

On ../shared/data/cifar10-mini: train the preset for the time budget, run the fast grid over timesteps
{1, 11, 21, 51, 101, 201} x all decoder taps; in the same run, a linear probe on raw pixels (same optimiser,
epochs and flip + crop augmentation) and the same grid on the same network at random initialisation.
Also the trained grid on standardised features (`ddae probe --standardize`, not the official protocol):
the gap to the plain grid is what the official probe's 15 epochs of Adam at 1e-3 leave unused when
the pooled features are small (their per-channel spread is ~0.1-0.3 after 20 CPU minutes).
Last line: `probe quality: best B% at (t, layer), raw pixels P%, random init R%`.
"""

from __future__ import annotations

import argparse
import math

import torch
import yaml

from ddae_core import data as datasets
from ddae_core.checkpoint import FORMAT, FORMAT_VERSION, atomic_torch_save
from ddae_core.config import parse_model_config
from ddae_core.evaluation.heads import ProbeHeads, ProbeTrainer
from ddae_core.evaluation.report import format_grid
from ddae_core.evaluation.specs import import_spec, probe_spec
from ddae_core.jobs import create_job, execute
from ddae_core.model import DDAEModel, to_model_range
from ddae_core.runs import read_spec

from .common import cifar_mini_spec, existing_run, grid_result, train_tiny, workspace

TIMESTEPS = "1,11,21,51,101,201"


def probe(ws, parent, data: str, device: str, name: str, standardize: bool = False) -> dict:
    run_dir = create_job(ws, probe_spec(parent, timesteps=TIMESTEPS, layers="all", data=data, device=device,
                                        name=name, standardize=standardize))
    if execute(run_dir, ws, handle_signals=False) != "done":
        raise SystemExit(f"probe {run_dir.name} failed; see its log")
    grid = grid_result(run_dir)
    cells = {int(t): row for t, row in grid["accuracy"].items()}
    print(f"\n{name}:")
    print(format_grid(grid["timesteps"], grid["layers"], cells, {int(t): s for t, s in grid["labels"].items()}))
    return grid


def random_init_run(ws, config: dict, data: str):
    """An import run holding the network at random initialisation (seed 0), probed like a trained one."""
    torch.manual_seed(0)
    model = DDAEModel(parse_model_config(config))
    state = model.net.state_dict()
    path = ws / "random-init.pt"
    atomic_torch_save({"format": FORMAT, "version": FORMAT_VERSION, "config": config, "step": 0,
                       "model": state, "ema": state, "ema_updates": 0}, path)
    cfg_path = ws / "random-init.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    run_dir = create_job(ws, import_spec(path, cfg_path, name="random init", data=data))
    if execute(run_dir, ws, handle_signals=False) != "done":
        raise SystemExit("importing the random network failed")
    return run_dir


def raw_pixel_probe(data: str, ws, epochs: int = 15, batch: int = 128, lr: float = 1e-3) -> float:
    """A linear classifier on the [-1, 1] pixels, trained like a probe head (flip + crop every epoch)."""
    train = datasets.load_split(data, "train", resolution=32, data_root=ws / "data")
    test = datasets.load_split(data, "test", resolution=32, data_root=ws / "data")
    dim = train.images[0].numel()
    gen = torch.Generator().manual_seed(0)
    heads = ProbeHeads([dim], len(train.classes), generator=gen)
    trainer = ProbeTrainer(heads, lr, epochs)
    for epoch in range(epochs):
        trainer.set_epoch(epoch)
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(epoch))
        for i in range(math.ceil(len(train) / batch)):
            index = order[i * batch:(i + 1) * batch]
            aug = torch.Generator().manual_seed(epoch * 100_003 + i)
            x = to_model_range(datasets.augment_batch(train.images[index], flip=True, crop_padding=4, generator=aug))
            trainer.step(x.flatten(1)[None], train.labels[index])
    x = to_model_range(datasets.augment_batch(test.images, flip=False)).flatten(1)[None]
    return float(heads.correct(x, test.labels)[0]) / len(test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--preset", default="tiny-ddpm")
    parser.add_argument("--run", help="probe an existing train run instead of training")
    parser.add_argument("--workspace")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    data = cifar_mini_spec()
    ws = workspace(args.workspace)
    parent = existing_run(ws, args.run) if args.run else train_tiny(
        ws, data, minutes=args.minutes, preset=args.preset, name=f"bench quality {args.preset}")
    trained = probe(ws, parent, data, args.device, f"{args.preset}, {args.minutes:g} min on cifar10-mini")
    standard = probe(ws, parent, data, args.device, "the same, on standardised features (not the official protocol)",
                     standardize=True)["best"]
    pixels = raw_pixel_probe(data, ws)
    print(f"\nraw pixels: {100 * pixels:.1f}%")
    config = read_spec(parent)["config"]
    random_grid = probe(ws, random_init_run(ws, config, data), data, args.device, "random initialisation")
    best, rbest = trained["best"], random_grid["best"]
    print(f"\nstandardised features (diagnostic, not the official protocol): best {100 * standard['accuracy']:.1f}% "
          f"at (t={standard['timestep']}, {standard['layer']})")
    print(f"\nprobe quality: best {100 * best['accuracy']:.1f}% at (t={best['timestep']}, {best['layer']}), "
          f"raw pixels {100 * pixels:.1f}%, random init {100 * rbest['accuracy']:.1f}%")


if __name__ == "__main__":
    main()
