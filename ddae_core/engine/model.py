"""A diffusion model used as a DDAE: training loss, features from one forward pass, denoising, sampling."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig, load_config, parse_model_config
from .diffusion import DDPM, EDM, DiTDiffusion, Framework
from .latents.preprocess import resize_views
from .latents.vae import LatentVAE, load_vae
from .nets import UNet
from .nets.dit import DiT


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]."""
    return images * 2 - 1


def to_image_range(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clipped."""
    return ((x + 1) / 2).clamp(0, 1)


def pool_features(acts: dict[str, torch.Tensor], pool: bool = True, normalize: bool = False) -> dict[str, torch.Tensor]:
    """Global average pooling over H*W in float32, optionally L2-normalised (as the official get_feature)."""
    out = {}
    for name, act in acts.items():
        act = act.float()
        if pool:
            act = act.mean(dim=(2, 3))
            if normalize:
                act = F.normalize(act, dim=1)
        elif normalize:
            act = F.normalize(act.flatten(1), dim=1).view_as(act)
        out[name] = act
    return out


def _inputs_to_fp32(module: nn.Module, args: tuple) -> tuple:
    return (args[0].float(), *args[1:])


class DDAEModel(nn.Module):
    """The network (the only parameters) and its diffusion framework.

    Images enter in [0, 1]. `timestep` is an int (the same for the batch) or a (B,) tensor:
    DDPM steps 0..T (1-indexed, the network sees t/T), EDM indices 1..18 into the reversed
    sigma grid (4 is sigma = 0.0599), or DiT steps 0..T-1 (0-indexed; DiTModel).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.net: UNet | DiT = UNet(**config.network)
        self.framework: Framework = DDPM(**config.diffusion) if config.framework == "ddpm" else EDM(**config.diffusion)
        self.amp_dtype: torch.dtype | None = None  # set by callers: bf16 or fp16 (with a scaler) on CUDA, bf16 on CPU

    # Introspection.
    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def taps(self) -> list[str]:
        return list(self.net.tap_names)

    @property
    def decoder_taps(self) -> list[str]:
        return self.net.decoder_taps

    @property
    def resolution(self) -> int:
        return self.config.resolution

    @property
    def data_resolution(self) -> int | None:
        """The side its datasets are loaded at (None: as stored; a DiT resizes each augmented view itself)."""
        return self.resolution

    @property
    def noise_shape(self) -> tuple[int, ...]:
        """(C, H, W) of the noise one image's forward pass draws (a DiT's is its latent's)."""
        return tuple(self.config.network["image_shape"])

    def noise_shape_of(self, images: torch.Tensor) -> tuple[int, ...]:
        """The shape of the noise a pass over `images` (B, 3, H, W) draws: theirs (a DiT's: its latents')."""
        return tuple(images.shape)

    def blank(self) -> DDAEModel:
        """The same architecture at a fresh initialisation (torch's global RNG), on the CPU."""
        return type(self)(self.config)

    def autocast(self):
        dev = self.device
        if self.amp_dtype is None or dev.type not in ("cuda", "cpu"):
            return contextlib.nullcontext()
        return torch.autocast(device_type=dev.type, dtype=self.amp_dtype)

    def _net_fn(self, x: torch.Tensor, time_in: torch.Tensor, aug_label: torch.Tensor | None) -> torch.Tensor:
        with self.autocast():
            return self.net(x, time_in, aug_label)

    # Training.
    def loss(self, images: torch.Tensor, net: nn.Module | None = None) -> torch.Tensor:
        """The framework's denoising loss on a batch of clean images in [0, 1].

        `net` replaces self.net for the call (a DistributedDataParallel wrapper of it, say).
        """
        if net is None:
            return self.framework.loss(self._net_fn, to_model_range(images))

        def net_fn(x, time_in, aug_label):
            with self.autocast():
                return net(x, time_in, aug_label)
        return self.framework.loss(net_fn, to_model_range(images))

    # Features.
    def forward_pass(self, images: torch.Tensor, timestep, layers: Iterable[str] | None = None,
                     noise: torch.Tensor | None = None, need_denoised: bool = False
                     ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None]:
        """One forward pass: (unpooled taps, noisy image in [-1, 1] space, denoised estimate or None).

        `noise` (B, C, H, W) makes the pass deterministic; otherwise fresh Gaussian noise is drawn.
        """
        layers = self.taps if layers is None else self.net.order_taps(layers)
        x = to_model_range(images.to(self.device, torch.float32))
        t = self.framework.as_timesteps(timestep, x.shape[0], x.device)
        if noise is None:
            noise = torch.randn_like(x)
        noisy, net_in, time_in = self.framework.perturb(x, t, noise.to(x.device, torch.float32))
        with self.autocast():
            out, acts = self.net.forward_taps(net_in, time_in, None, taps=layers, need_output=need_denoised)
        denoised = self.framework.denoised(out, noisy, t) if need_denoised else None
        return acts, noisy, denoised

    def features(self, images: torch.Tensor, timestep, layers: Iterable[str] | None = None,
                 noise: torch.Tensor | None = None, pool: bool = True, normalize: bool = False
                 ) -> dict[str, torch.Tensor]:
        """Tap activations at `timestep` from one forward pass: {name: (B, C)} pooled, float32."""
        acts, _, _ = self.forward_pass(images, timestep, layers, noise)
        return pool_features(acts, pool, normalize)

    @contextlib.contextmanager
    def fast_forward(self, precision: str | None = "auto"):
        """Forward-only passes inside run as fast as this device measured (features still come out float32).

        `precision` (auto | bf16 | fp16 | fp32): the autocast dtype (device.extraction_amp_dtype), with
        GroupNorm in fp32 as CUDA autocast keeps it (the CPU's bf16 GroupNorm is 5x slower than fp32's and
        less exact); the network in channels_last where that measured faster. Not for training: the
        weights' memory format and `amp_dtype` are restored on exit.
        """
        from .device import extraction_amp_dtype, extraction_channels_last

        dtype, saved = extraction_amp_dtype(self.device, precision), self.amp_dtype
        channels_last = extraction_channels_last(self.device)
        hooks = []
        if dtype is not None:
            hooks = [m.register_forward_pre_hook(_inputs_to_fp32) for m in self.net.modules()
                     if isinstance(m, nn.GroupNorm)]
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.amp_dtype = dtype
        try:
            yield self
        finally:
            self.amp_dtype = saved
            for hook in hooks:
                hook.remove()
            if channels_last:
                self.net.to(memory_format=torch.contiguous_format)

    def denoise(self, noisy: torch.Tensor, timestep) -> torch.Tensor:
        """The model's clean-image estimate in [-1, 1] from a noisy input in the framework's space.

        DDPM: noisy = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps; EDM: noisy = x0 + sigma eps.
        """
        noisy = noisy.to(self.device, torch.float32)
        t = self.framework.as_timesteps(timestep, noisy.shape[0], noisy.device)
        if isinstance(self.framework, EDM):
            return self.framework.denoise_at_sigma(self._net_fn, noisy, self.framework.sigmas_for(t))
        return self.framework.denoised(self._net_fn(noisy, self.framework.time_input(t), None), noisy, t)

    # Sampling.
    @torch.no_grad()
    def sample(self, n: int, sampler: str | None = None, steps: int | None = None, eta: float = 0.0,
               generator: torch.Generator | None = None,
               callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """n images in [0, 1]: DDIM-100 (or DDPM ancestral) for DDPM, Heun-18 for EDM."""
        shape = (n, *self.noise_shape)
        x = self.framework.sample(self._net_fn, shape, self.device, sampler=sampler, steps=steps, eta=eta,
                                  generator=generator, callback=callback)
        return to_image_range(x.float())


class DiTModel(DDAEModel):
    """A DiT and its latent space: images in [0, 1] are encoded by the VAE (the config's folder, loaded on first
    use and kept out of the network's parameters and state dict), noised at DiT's 0-indexed timestep and seen by
    the network with the null class. The denoised estimate and the noisy input come back decoded to images.

    Given `noise`, a pass from images is deterministic up to the VAE's posterior sample, which draws from torch's
    global generator as the official preprocessing does (its spread is small beside the diffusion noise's); a pass
    from latents (`latent_pass`, the latent cache's) is deterministic."""

    def __init__(self, config: ModelConfig):
        nn.Module.__init__(self)
        self.config = config
        self.net = DiT(**config.network)
        self.framework = DiTDiffusion(**config.diffusion)
        self.amp_dtype = None
        self._vae: list[LatentVAE] = []      # a list, so that nn.Module neither registers nor moves it

    @property
    def data_resolution(self) -> int | None:
        """None: images are augmented at the dataset's own size and resized to `resolution` after, as the
        official DiT preprocessing does (latents.preprocess)."""
        return None

    @property
    def noise_shape(self) -> tuple[int, ...]:
        side = int(self.config.network["input_size"])
        return (int(self.config.network["in_channels"]), side, side)

    def noise_shape_of(self, images: torch.Tensor) -> tuple[int, ...]:
        return (len(images), *self.noise_shape)

    def blank(self) -> DiTModel:
        fresh = DiTModel(self.config)
        fresh._vae = self._vae          # the same VAE: only the DiT is re-initialised
        return fresh

    @property
    def vae(self) -> LatentVAE:
        if not self._vae:
            self._vae.append(load_vae(self.config.vae["folder"], self.device))
        return self._vae[0]

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] at any size -> resized to `resolution` (as the official preprocessing), then scaled
        latents, sampled from the VAE's posterior as the official code does."""
        views = resize_views(images.to(self.device, torch.float32), self.resolution)
        return self.vae.encode(views).float()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> images in [-1, 1]."""
        return to_model_range(self.vae.decode(latents.float()).float().clamp(0, 1))

    def forward_pass(self, images: torch.Tensor, timestep, layers: Iterable[str] | None = None,
                     noise: torch.Tensor | None = None, need_denoised: bool = False
                     ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None]:
        """As DDAEModel's, from images through the VAE; `noise` is latent-shaped (noise_shape). With need_denoised
        the noisy latents and the estimate come back decoded, as images in [-1, 1]."""
        acts, noisy, denoised = self.latent_pass(self.encode(images), timestep, layers, noise, need_denoised)
        if denoised is None:
            return acts, noisy, None
        return acts, self.decode(noisy), self.decode(denoised)

    def latent_pass(self, latents: torch.Tensor, timestep, layers: Iterable[str] | None = None,
                    noise: torch.Tensor | None = None, need_denoised: bool = False
                    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None]:
        """One forward pass from scaled latents: (unpooled taps, noisy latents, clean-latent estimate or None)."""
        layers = self.taps if layers is None else self.net.order_taps(layers)
        z = latents.to(self.device, torch.float32)
        t = self.framework.as_timesteps(timestep, z.shape[0], z.device)
        noise = torch.randn_like(z) if noise is None else noise.to(z.device, torch.float32)
        noisy, net_in, time_in = self.framework.perturb(z, t, noise)
        with self.autocast():
            out, acts = self.net.forward_taps(net_in, time_in, None, taps=layers, need_output=need_denoised)
        denoised = self.framework.denoised(out, noisy, t) if need_denoised else None
        return acts, noisy, denoised


def build_model(config: ModelConfig | dict | str | Path) -> DDAEModel:
    """A model from a ModelConfig, a config dict, a YAML path (official format accepted) or a preset name."""
    if not isinstance(config, ModelConfig):
        config = parse_model_config(load_config(config))
    return DiTModel(config) if config.framework == "dit" else DDAEModel(config)
