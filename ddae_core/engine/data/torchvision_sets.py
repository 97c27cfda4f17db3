"""CIFAR-10 and CIFAR-100 through torchvision, read straight from its numpy arrays (no PIL per image).

A missing dataset is downloaded only when the host answers within a few seconds; every socket operation
of the download then times out after DOWNLOAD_TIMEOUT_S, so an offline machine fails fast, not never.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import torch
from torchvision.datasets import CIFAR10, CIFAR100

from ..errors import DataError

DOWNLOAD_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 5.0
_SETS = {"cifar10": ("CIFAR-10", CIFAR10), "cifar100": ("CIFAR-100", CIFAR100)}


def load_cifar(name: str, split: str, data_root: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(uint8 (N, 3, 32, 32), int64 (N,), class names) from data_root/name, downloading if it can."""
    title, dataset_class = _SETS[name]
    root = data_root / name
    train = split == "train"
    try:
        dataset = dataset_class(root=str(root), train=train, download=False)
    except (RuntimeError, OSError):
        dataset = _download(title, dataset_class, root, train)
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
    labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
    return images, labels, list(dataset.classes)


def _download(title: str, dataset_class: type, root: Path, train: bool):
    where = root / dataset_class.base_folder
    failure = DataError(f"{title} was not found in {where} and could not be downloaded; put the extracted "
                        f"python version there, or use folder:PATH with an image-folder copy.")
    if not _reachable(urlparse(dataset_class.url).hostname or "", PROBE_TIMEOUT_S):
        raise failure
    previous = socket.getdefaulttimeout()
    # torchvision's urlopen takes no timeout argument; the default one bounds every connect and read.
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return dataset_class(root=str(root), train=train, download=True)
    except Exception:  # noqa: BLE001 - network, disk and archive errors all mean the same to the user
        raise failure from None
    finally:
        socket.setdefaulttimeout(previous)


def _reachable(host: str, timeout_s: float) -> bool:
    """Whether a TCP connection to host:443 opens within timeout_s.

    Run in a daemon thread because name resolution ignores socket timeouts and can block for long.
    """
    if not host:
        return False
    answer: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout_s).close()
            answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=probe, name="ddae-download-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(answer and answer[0])
