"""Batches for a training step, deterministic for a seed: item i of the stream never depends on
the batch size, so a batch-8 and a batch-32 run start with the same images."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms.v2 import RandomResizedCrop
from torchvision.transforms.v2 import functional as TF

from agos.errors import AgosError
from agos.inputs.samples import sample_images

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)


@dataclass(frozen=True)
class DataSpec:
    kind: str  # "samples" | "imagefolder" | "synthetic"
    path: str | None = None

    @property
    def label(self) -> str:
        return f"imagefolder:{self.path}" if self.kind == "imagefolder" else self.kind


def parse_data(text: str) -> DataSpec:
    if text in ("samples", "synthetic"):
        return DataSpec(kind=text)
    if text.startswith("imagefolder:") and len(text) > len("imagefolder:"):
        return DataSpec(kind="imagefolder", path=text.split(":", 1)[1])
    raise AgosError(f"unknown data source '{text}' (use samples, synthetic or imagefolder:PATH)")


def load_image(path: str) -> torch.Tensor:
    """An image file as uint8 RGB [3, H, W]. 16-bit files are scaled to 8 bits (v/257, rounded);
    PIL's own convert("RGB") would clip every value above 255 to white."""
    from PIL import Image

    with open(path, "rb") as f, Image.open(f) as img:
        img.load()
        if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
            values = np.asarray(img, dtype=np.float64)
            if values.size and (values.min() < 0 or values.max() > 65535):
                raise AgosError(
                    f"{path} is a 32-bit integer image with values outside 0…65535 "
                    f"({values.min():.0f}…{values.max():.0f}); agos reads 8- and 16-bit images"
                )
            top = 65535.0 if img.mode.startswith("I;16") or values.max() > 255 else 255.0
            grey = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
            return torch.from_numpy(np.ascontiguousarray(grey)).expand(3, *grey.shape).contiguous()
        if img.mode == "F":
            raise AgosError(f"{path} is a floating-point image; agos reads 8- and 16-bit images")
        return TF.pil_to_tensor(img.convert("RGB"))


def stream_position(n: int, seed: int, index: int) -> int:
    """Which of n images item `index` of the stream is: a fresh permutation every epoch."""
    epoch, offset = divmod(index, n)
    return int(np.random.default_rng([seed, epoch]).permutation(n)[offset])


def data_fingerprint(spec: DataSpec, seed: int, items: int) -> str:
    """What identifies the images a run reads, for caching: the embedded photographs' bytes; for a
    folder, every file's name, size and mtime, and the bytes of the `items` images the stream reads
    first (a replaced image, or a changed folder, is read again — never served from the cache)."""
    digest = hashlib.sha256(spec.label.encode())
    if spec.kind == "samples":
        for name, array, cls, _ in sample_images():
            digest.update(f"{name}:{cls}:{array.shape}".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    elif spec.kind == "imagefolder":
        from torchvision.datasets import ImageFolder

        root = Path(spec.path or "")
        try:
            samples = ImageFolder(str(root), loader=load_image).samples
        except (FileNotFoundError, RuntimeError) as exc:
            raise AgosError(f"image folder {root} holds no usable images: {exc}") from None
        for path, label in samples:
            st = os.stat(path)
            entry = f"{os.path.relpath(path, root)}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n"
            digest.update(entry.encode())
        used = sorted({stream_position(len(samples), seed, i) for i in range(items)})
        for position in used:
            digest.update(Path(samples[position][0]).read_bytes())
    return f"{spec.label} sha256:{digest.hexdigest()}"


def _item_seed(seed: int, index: int) -> int:
    return (seed * 1_000_003 + index * 7919 + 17) % (2**63 - 1)


def _augment(image: torch.Tensor, image_size: int, seed: int) -> torch.Tensor:
    """ImageNet training augmentation (random-resized crop, flip), normalised, from one seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        top, left, h, w = RandomResizedCrop.get_params(image, list(CROP_SCALE), list(CROP_RATIO))
        flip = bool(torch.rand(()) < 0.5)
    out = TF.resized_crop(image, top, left, h, w, [image_size, image_size], antialias=True)
    if flip:
        out = TF.horizontal_flip(out)
    out = out.to(torch.float32).div_(255.0)
    return TF.normalize(out, list(IMAGENET_MEAN), list(IMAGENET_STD))


@dataclass
class BatchSource:
    """A deterministic stream of labelled, augmented images."""

    spec: DataSpec
    image_size: int
    seed: int
    num_classes: int
    _items: list = field(default_factory=list, repr=False)
    _labels: list[int] = field(default_factory=list, repr=False)
    _names: list[str] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.image_size < 8:
            raise AgosError(f"--image-size must be at least 8 (got {self.image_size})")
        if self.spec.kind == "samples":
            for name, array, cls, _ in sample_images():
                self._items.append(torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous())
                self._labels.append(cls % self.num_classes)
                self._names.append(name)
        elif self.spec.kind == "imagefolder":
            self._open_folder(Path(self.spec.path or ""))

    def _open_folder(self, root: Path) -> None:
        from torchvision.datasets import ImageFolder

        if not root.is_dir():
            raise AgosError(f"image folder {root} does not exist or is not a directory")
        try:
            dataset = ImageFolder(str(root), loader=load_image)
        except (FileNotFoundError, RuntimeError) as exc:
            raise AgosError(f"image folder {root} holds no usable images: {exc}") from None
        if len(dataset.classes) > self.num_classes:
            raise AgosError(
                f"image folder {root} has {len(dataset.classes)} classes but the model outputs "
                f"only {self.num_classes}"
            )
        self._items = dataset  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self._items)

    def _image(self, position: int) -> tuple[torch.Tensor, int]:
        if self.spec.kind == "imagefolder":
            dataset = self._items
            path, label = dataset.samples[position]  # type: ignore[attr-defined]
            try:
                return load_image(path), label
            except AgosError:
                raise
            except Exception as exc:
                raise AgosError(f"cannot read image {path}: {exc}") from None
        return self._items[position], self._labels[position]

    def item(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self._image(stream_position(len(self), self.seed, index))
        return _augment(image, self.image_size, _item_seed(self.seed, index)), label

    def batch(self, index: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch `index` of the stream: items index*batch_size … (index+1)*batch_size − 1."""
        if self.spec.kind == "synthetic":
            gen = torch.Generator().manual_seed(_item_seed(self.seed, index))
            images = torch.randn(batch_size, 3, self.image_size, self.image_size, generator=gen)
            labels = torch.randint(0, self.num_classes, (batch_size,), generator=gen)
            return images, labels
        items = [self.item(index * batch_size + i) for i in range(batch_size)]
        return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])

    def describe(self) -> dict:
        if self.spec.kind == "synthetic":
            return {"source": "synthetic", "description": "Gaussian noise N(0,1), random labels"}
        augment = (
            f"RandomResizedCrop({self.image_size}, scale={CROP_SCALE}), horizontal flip, "
            "ImageNet mean/std normalisation"
        )
        if self.spec.kind == "samples":
            return {
                "source": "samples",
                "description": "real photographs embedded in scikit-image and scikit-learn",
                "images": list(self._names),
                "augment": augment,
            }
        dataset = self._items
        return {
            "source": f"imagefolder:{self.spec.path}",
            "description": "ImageFolder directory with its labels",
            "images": len(dataset),
            "classes": len(dataset.classes),  # type: ignore[attr-defined]
            "augment": augment,
        }
