"""DiT's latent space: the VAE (vae), the official preprocessing (preprocess), the on-disk cache of a dataset's
latents shared by every probe (cache), and the batches a probe reads from it (reader)."""

from .build import build_latent_cache
from .cache import (
    DEFAULT_COPIES,
    CacheInfo,
    LatentCache,
    LatentCacheError,
    latents_root,
    list_latent_caches,
    open_latent_cache,
)
from .reader import LatentReader
from .vae import SCALING_FACTOR, LatentVAE, VAEError, load_vae

__all__ = ["DEFAULT_COPIES", "SCALING_FACTOR", "CacheInfo", "LatentCache", "LatentCacheError", "LatentReader",
           "LatentVAE", "VAEError", "build_latent_cache", "latents_root", "list_latent_caches", "load_vae",
           "open_latent_cache"]
