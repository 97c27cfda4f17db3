"""The latent space of DiT: diffusers' AutoencoderKL, loaded offline from a folder the user supplies.

The official code (`DiT/vae_preprocessing.py` of FutureXiang/ddae) encodes images in [-1, 1] and keeps
0.18215 * a sample of the posterior (`latent_dist.sample()`); it decodes latents / 0.18215 back to [-1, 1].
The sample is drawn here as mean + std * noise with the noise from a CPU generator (what diffusers' `sample`
computes), so a seeded encode gives the same latents on any device, up to the precision of the forward pass.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from ..device import amp_dtype_for
from ..errors import CheckpointError

# The latent scale DiT was trained with (Stable Diffusion's), a constant of the official code, not of the
# VAE's config: a VAE whose config says otherwise (SDXL's 0.13025) would feed DiT latents of the wrong scale.
SCALING_FACTOR = 0.18215
CONFIG_FILE = "config.json"
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
EXTRA = "pip install 'ddae-studio[diffusers]'"
EXAMPLE = "for example stabilityai/sd-vae-ft-mse, the VAE of the official code"
# Config fields that say where or by what version a folder was written, not what the VAE computes.
_PROVENANCE_FIELDS = ("_name_or_path", "_diffusers_version", "_commit_hash", "_use_default_values")


class VAEError(CheckpointError):
    """A VAE folder is missing, incomplete or not an AutoencoderKL, or diffusers is not installed."""


def vae_files(folder: str | Path) -> tuple[Path, Path]:
    """(config.json, weights file) of a VAE folder, or of the `vae/` folder of a pipeline; VAEError if absent."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise VAEError(f"VAE folder {folder} does not exist; give the folder of a diffusers AutoencoderKL "
                       f"({EXAMPLE}) holding {CONFIG_FILE} and its weights.")
    if not (folder / CONFIG_FILE).is_file() and (folder / "vae" / CONFIG_FILE).is_file():
        folder = folder / "vae"
    config = folder / CONFIG_FILE
    if not config.is_file():
        raise VAEError(f"VAE folder {folder} holds no {CONFIG_FILE}; download the whole folder of the "
                       f"AutoencoderKL ({EXAMPLE}).")
    weights = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
    if weights is None:
        raise VAEError(f"VAE folder {folder} holds no {' or '.join(WEIGHT_FILES)}; download the weights "
                       "file into it.")
    return config, weights


def read_vae_config(path: Path) -> dict[str, Any]:
    """The config of a VAE folder, refused in one sentence unless it describes an AutoencoderKL."""
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise VAEError(f"{path} cannot be read as JSON ({exc.__class__.__name__}); download it again.") from None
    if not isinstance(config, dict):
        raise VAEError(f"{path} holds a {type(config).__name__}, not a mapping of fields; download it again.")
    kind = config.get("_class_name")
    if kind != "AutoencoderKL":
        raise VAEError(f"{path} describes a {kind or 'model of no named class'}, not an AutoencoderKL; give "
                       f"the VAE's folder ({EXAMPLE}).")
    return config


def vae_identity(config: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> str:
    """16 hex digits of SHA-256 over what the VAE computes: its config (less provenance) and its weights."""
    digest = hashlib.sha256()
    fields = {k: v for k, v in config.items() if k not in _PROVENANCE_FIELDS}
    digest.update(json.dumps(fields, sort_keys=True, default=str).encode())
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class LatentVAE:
    """An AutoencoderKL (`model`, typed Any: diffusers is optional) in eval mode on one device, with the
    official encode/decode scaling.

    amp_dtype: the autocast dtype of its forward passes (fp16 on CUDA, as the official `--use_amp`), or None
    for fp32 (the CPU). Weights stay fp32; inputs are moved to `device`, outputs are float32 on `device`.
    """

    def __init__(self, model: Any, *, folder: Path, identity: str, device: torch.device,
                 amp_dtype: torch.dtype | None):
        self.model = model
        self.folder = folder
        self.identity = identity
        self.device = device
        self.amp_dtype = amp_dtype
        config = model.config           # diffusers' FrozenDict
        self.latent_channels = int(config.latent_channels)
        self.downsample = 2 ** (len(config.block_out_channels) - 1)   # 8 for the SD VAE

    def latent_shape(self, resolution: int) -> tuple[int, int, int]:
        """(C, h, w) of the latents of resolution x resolution images: (4, 32, 32) at 256 for the SD VAE."""
        return self.latent_channels, resolution // self.downsample, resolution // self.downsample

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    @torch.no_grad()
    def encode(self, images01: torch.Tensor, generator: torch.Generator | None = None,
               noise: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> SCALING_FACTOR * a posterior sample, float32 (B, C, H/f, W/f).

        generator: a CPU generator for the posterior's noise (None: torch's global one).
        noise: the standard normal noise of the sample itself, (B, C, H/f, W/f), instead of drawing it.
        """
        x = images01.to(self.device, torch.float32) * 2 - 1
        with self._autocast():
            posterior = self.model.encode(x).latent_dist
        mean, std = posterior.mean.float(), posterior.std.float()
        if noise is None:
            noise = torch.randn(mean.shape, generator=generator, dtype=torch.float32)
        return (mean + std * noise.to(self.device, torch.float32)) * SCALING_FACTOR

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (scaled as encode returns them) -> float32 images (B, 3, H, W) clamped to [0, 1]."""
        z = latents.to(self.device, torch.float32) / SCALING_FACTOR
        with self._autocast():
            images = self.model.decode(z).sample
        return ((images.float() + 1) / 2).clamp_(0, 1)


def load_vae(folder: str | Path, device: torch.device | str = "cpu", precision: str = "auto") -> LatentVAE:
    """The AutoencoderKL in `folder` (never downloaded), in eval mode on `device`.

    precision: as the job's (`auto`: fp16 autocast on CUDA, fp32 on the CPU; `bf16`; `fp32`).
    """
    config_path, _ = vae_files(folder)
    config = read_vae_config(config_path)
    try:
        from diffusers import AutoencoderKL
    except ImportError:
        raise VAEError(f"Reading the VAE folder {folder} needs diffusers, which is not installed; "
                       f"install it with {EXTRA}.") from None
    try:
        model = AutoencoderKL.from_pretrained(config_path.parent, local_files_only=True,
                                              low_cpu_mem_usage=False)  # no warning asking for accelerate
    except Exception as exc:  # noqa: BLE001 - diffusers raises many kinds (OSError, ValueError, safetensors')
        detail = str(exc).splitlines()[0] if str(exc) else "no detail"
        raise VAEError(f"The VAE in {config_path.parent} cannot be loaded ({exc.__class__.__name__}: {detail}); "
                       "download its folder again.") from None
    device = torch.device(device)
    identity = vae_identity(config, model.state_dict())
    model.eval().requires_grad_(False).to(device)
    return LatentVAE(model, folder=config_path.parent, identity=identity, device=device,
                     amp_dtype=amp_dtype_for(device, precision))
