"""`ddae cache latents` (build or resume the latent cache of a VAE and a dataset) and `ddae cache list`."""

from __future__ import annotations

import argparse

from ..rundir import RunStatus
from .common import ConsoleProgress, add_device, add_workspace, workspace_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="the workspace's latent caches (DiT's VAE latents of a dataset)")
    cache_sub = p.add_subparsers(dest="cache_command", metavar="WHAT", required=True)

    q = cache_sub.add_parser("latents", help="encode a dataset through a VAE once, for every DiT probe "
                                             "(resumes an interrupted build; opens a finished one)")
    q.add_argument("--vae", required=True, metavar="DIR",
                   help="the diffusers AutoencoderKL folder (config.json and weights), e.g. sd-vae-ft-mse")
    q.add_argument("--data", required=True, metavar="SPEC", help="the dataset, e.g. cifar10 or folder:/path")
    q.add_argument("--copies", type=int, default=None,
                   help="augmented copies of the training split (default: 10, as the official code)")
    q.add_argument("--resolution", type=int, default=None,
                   help="images are resized to this before the VAE (default: 256, as the official code)")
    q.add_argument("--precision", choices=("auto", "fp16", "bf16", "fp32"), default="auto",
                   help="the VAE's mixed precision (default auto: fp16 on CUDA, fp32 on the CPU)")
    add_device(q)
    add_workspace(q)
    q.set_defaults(func=cmd_latents)

    q = cache_sub.add_parser("list", help="every latent cache of the workspace, its progress and size on disk")
    add_workspace(q)
    q.set_defaults(func=cmd_list)


def cmd_latents(args) -> int:
    from ..engine.data import load_split
    from ..engine.device import resolve_device
    from ..engine.latents import DEFAULT_COPIES, build_latent_cache, load_vae
    from ..engine.latents.build import STAGE
    from ..engine.latents.preprocess import RESOLUTION

    data_root = workspace_of(args) / "data"
    vae = load_vae(args.vae, resolve_device(args.device), args.precision)
    train = load_split(args.data, "train", data_root=data_root)
    test = load_split(args.data, "test", data_root=data_root)
    console = ConsoleProgress()
    cache = build_latent_cache(
        vae, train, test, data_root=data_root,
        copies=DEFAULT_COPIES if args.copies is None else args.copies,
        resolution=RESOLUTION if args.resolution is None else args.resolution,
        progress=lambda done, total: console({"type": "progress", "done": done, "total": total, "stage": STAGE}))
    console({"type": "status", "status": RunStatus.DONE})       # ends the progress line
    print(cache.summary())
    return 0


def cmd_list(args) -> int:
    from ..engine.latents import list_latent_caches
    from ..engine.latents.cache import size_text

    caches = list_latent_caches(workspace_of(args) / "data")
    if not caches:
        print("no latent caches yet (`ddae cache latents --vae DIR --data SPEC` builds one)")
        return 0
    print(f"{'cache':<24}  {'vae':<16}  {'copies':>6}  {'res':>4}  {'progress':<18}  {'size':>9}  data")
    for info in caches:
        key = info.layout["key"]
        state = "complete" if info.complete else f"{info.done}/{info.total} images"
        print(f"{info.folder.name:<24}  {key['vae']:<16}  {key['copies']:>6}  {key['resolution']:>4}  "
              f"{state:<18}  {size_text(info.size_bytes):>9}  {key['data']}")
    return 0
