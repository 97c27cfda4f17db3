"""The FID Inception network and the Frechet distance, from pytorch-fid, with weights from a local file.

pytorch-fid is the library the official DDAE code scores its samples with, so our FIDs are comparable
with its numbers: the same network (the TF 2015-12-05 Inception graph ported to PyTorch), the same
resizing to 299 x 299, and images quantised to 8 bits as its PNGs are. Nothing is downloaded: the
weights file comes from --inception, $DDAE_INCEPTION, the workspace, or torch's hub cache.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch import nn

from ...rundir import DATA_DIR
from ..errors import UserError
from .fid_label import WEIGHTS_SHA256

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_FILE}"
WEIGHTS_ENV = "DDAE_INCEPTION"
DIMS = (64, 192, 768, 2048)          # pytorch-fid's feature blocks; only 2048 is the standard FID


def require_library() -> None:
    """UserError in one sentence when pytorch-fid is not installed."""
    try:
        import pytorch_fid.fid_score
        import pytorch_fid.inception  # noqa: F401
    except ImportError:
        raise UserError("FID needs the pytorch-fid package, which is not installed; install it with "
                        "`.venv/bin/python -m pip install pytorch-fid` (or `pip install -e '.[fid]'`).") from None


def workspace_weights(workspace: Path) -> Path:
    """Where a workspace keeps the weights file: <workspace>/data/fid/pt_inception-2015-12-05-6726825d.pth."""
    return Path(workspace) / DATA_DIR / "fid" / WEIGHTS_FILE


def hub_weights() -> Path:
    """Where pytorch-fid itself caches the file once downloaded (torch's hub checkpoints folder)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def missing_weights_sentence(workspace: Path) -> str:
    return (f"The FID Inception weights {WEIGHTS_FILE} (SHA-256 {WEIGHTS_SHA256}) are not on this machine; "
            f"download them from {WEIGHTS_URL} where you are online and put the file in "
            f"{workspace_weights(workspace).parent}/ (or {hub_weights().parent}/, or pass --inception PATH, "
            f"or set ${WEIGHTS_ENV}).")


def find_weights(workspace: Path, given: str | Path | None = None) -> Path:
    """The weights file: `given` (--inception), else $DDAE_INCEPTION, else the workspace's, else torch's hub cache.

    A path given but missing is an error in one sentence, as is finding the file nowhere.
    """
    for value, what in ((given, "--inception"), (os.environ.get(WEIGHTS_ENV), f"${WEIGHTS_ENV}")):
        if value:
            path = Path(value).expanduser().resolve()
            if not path.is_file():
                raise UserError(f"{what} names {path}, which is not a file; give the path of {WEIGHTS_FILE} "
                                f"(SHA-256 {WEIGHTS_SHA256}, from {WEIGHTS_URL}).")
            return path
    for path in (workspace_weights(workspace), hub_weights()):
        if path.is_file():
            return path
    raise UserError(missing_weights_sentence(workspace))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_dims(dims: int) -> int:
    if dims not in DIMS:
        raise UserError(f"dims must be one of {', '.join(map(str, DIMS))} (got {dims}); 2048 is the standard FID.")
    return dims


def load_inception(path: Path, dims: int = 2048, device: torch.device | str = "cpu") -> nn.Module:
    """pytorch-fid's InceptionV3 up to the block of `dims` features, weights from `path`, in eval mode.

    The library builds the network and loads its weights from a URL in one call; we hand it the state
    dict read from the local file (weights_only) in place of the download.
    """
    require_library()
    from pytorch_fid import inception as lib

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same sentence
        raise UserError(f"Inception weights {path} cannot be read ({exc.__class__.__name__}); replace it with "
                        f"{WEIGHTS_FILE} from {WEIGHTS_URL}.") from None
    if not isinstance(state, dict):
        raise UserError(f"Inception weights {path} hold a {type(state).__name__}, not a state dict; replace it "
                        f"with {WEIGHTS_FILE} from {WEIGHTS_URL}.")

    def local_state(*_args, **_kwargs):
        return state

    try:
        with mock.patch.object(lib, "load_state_dict_from_url", local_state):
            net = lib.InceptionV3([lib.InceptionV3.BLOCK_INDEX_BY_DIM[check_dims(dims)]])
    except RuntimeError as exc:          # missing, unknown or mis-shaped keys
        first = str(exc).splitlines()[0][:200]
        raise UserError(f"Inception weights {path} do not fit pytorch-fid's FID Inception ({first}); replace them "
                        f"with {WEIGHTS_FILE} from {WEIGHTS_URL}.") from None
    return net.to(device).eval()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Floats in [0, 1] -> uint8, rounded as torchvision's save_image rounds the official code's PNGs."""
    return images.mul(255).add(0.5).clamp(0, 255).to(torch.uint8)


@torch.no_grad()
def activations(net: nn.Module, images: torch.Tensor) -> np.ndarray:
    """(B, dims) float64 Inception features of uint8 (B, 3, H, W) images, as pytorch-fid's get_activations."""
    device = next(net.parameters()).device
    x = images.to(device).float() / 255
    pred = net(x)[0]
    if pred.shape[2:] != (1, 1):
        pred = nn.functional.adaptive_avg_pool2d(pred, (1, 1))
    return pred.squeeze(3).squeeze(2).cpu().double().numpy()


class ActivationStats:
    """Mean and covariance of features arriving in batches (Chan et al.'s pairwise update, float64).

    The covariance divides by n - 1, as numpy.cov in pytorch-fid; features never need to be kept.
    """

    def __init__(self, dims: int):
        self.n = 0
        self.mean = np.zeros(dims)
        self._m2 = np.zeros((dims, dims))

    def update(self, feats: np.ndarray) -> None:
        feats = np.asarray(feats, dtype=np.float64)
        nb = len(feats)
        if nb == 0:
            return
        mean_b = feats.mean(axis=0)
        centred = feats - mean_b
        delta = mean_b - self.mean
        total = self.n + nb
        self._m2 += centred.T @ centred + np.outer(delta, delta) * (self.n * nb / total)
        self.mean = self.mean + delta * (nb / total)
        self.n = total

    @property
    def sigma(self) -> np.ndarray:
        if self.n < 2:
            raise ValueError("a covariance needs at least two feature vectors")
        return self._m2 / (self.n - 1)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)), computed by pytorch-fid."""
    require_library()
    from pytorch_fid.fid_score import calculate_frechet_distance

    with warnings.catch_warnings():
        # pytorch-fid 0.3.0 passes sqrtm's `disp`, deprecated in SciPy 1.16 (pyproject keeps SciPy below 1.18).
        warnings.filterwarnings("ignore", message=".*disp.*", category=DeprecationWarning)
        return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))
