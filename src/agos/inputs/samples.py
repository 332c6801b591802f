"""The real photographs that ship inside scikit-image and scikit-learn: agos's embedded data.

Each carries the ImageNet class it shows best, so that warm-up training has a real target.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np

# (name, loader, ImageNet-1k class index, class name)
_SAMPLES: list[tuple[str, str, int, str]] = [
    ("astronaut", "skimage:astronaut", 834, "suit"),
    ("chelsea", "skimage:chelsea", 281, "tabby"),
    ("coffee", "skimage:coffee", 967, "espresso"),
    ("rocket", "skimage:rocket", 657, "missile"),
    ("motorcycle", "skimage:stereo_motorcycle", 670, "motor scooter"),
    ("camera", "skimage:camera", 759, "reflex camera"),
    ("china", "sklearn:china.jpg", 698, "palace"),
    ("flower", "sklearn:flower.jpg", 985, "daisy"),
]


def _load(loader: str) -> np.ndarray:
    lib, _, name = loader.partition(":")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if lib == "skimage":
            import skimage.data

            image = getattr(skimage.data, name)()
            if isinstance(image, tuple):  # stereo pair: take the left view
                image = image[0]
        else:
            image = _sklearn_image(name)
    if image.ndim == 2:  # the grey photograph: replicate to RGB
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3], dtype=np.uint8)


def _sklearn_image(name: str) -> np.ndarray:
    """scikit-learn's sample photograph, read the way `sklearn.datasets.load_sample_image` reads it
    (PIL, no conversion), from the package's files without importing scikit-learn (2.4 s)."""
    import importlib.util

    from PIL import Image

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("scikit-learn is not installed")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "images" / name
    with path.open("rb") as f:
        return np.asarray(Image.open(f))


@functools.cache
def sample_images() -> tuple[tuple[str, np.ndarray, int, str], ...]:
    """(name, HxWx3 uint8, ImageNet class, class name) for every embedded photograph."""
    return tuple((name, _load(loader), idx, cls) for name, loader, idx, cls in _SAMPLES)
