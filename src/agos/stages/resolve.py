"""Resolve a run once: the model (named, or given in memory), its weights and the images it reads,
checked and fingerprinted before any work, as `density.select.DensitySource` is for densities.
Every later stage takes the `ResolvedRun`; its `identity()` is what a cached trace is keyed on —
fingerprints of bytes, never the text of an option."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from agos.capture.trace import SCHEMA_VERSION
from agos.errors import AgosError
from agos.inputs.data import DataSpec, data_fingerprint, parse_data
from agos.inputs.models import ModelSpec, memory_model, model_fingerprint, resolve_model
from agos.inputs.offline_weights import offline_file
from agos.inputs.options import RunOptions
from agos.inputs.session import PreparedRun, check_image_size, check_options, prepare
from agos.inputs.weights import IN_MEMORY, imagenet_weights_file, state_dict_sha256


@dataclass(frozen=True)
class ResolvedRun:
    """A run's inputs, resolved and fingerprinted once."""

    options: RunOptions
    spec: ModelSpec
    model_code: str  # fingerprint of the model's code
    weights_id: str  # init, or the SHA-256 of the weights' bytes (file or in-memory state_dict)
    data: DataSpec
    data_id: str  # fingerprint of the images the run reads (up to and including its batch)
    batch_index: int  # the batch of the stream that is captured
    training_step: int | None = None  # a trajectory point: the training step of its weights

    @property
    def name(self) -> str:
        return self.spec.name

    def identity(self) -> dict:
        """Everything a trace of this run depends on (the cache key of its capture)."""
        o = self.options
        return {
            "model": self.model_code,
            "weights": self.weights_id,
            "data": self.data_id,
            "batch_size": o.batch_size,
            "image_size": o.image_size,
            "seed": o.seed,
            "warm_up": o.warm_up.model_dump(),
            "batch_index": self.batch_index,
            "training_step": self.training_step,
            "trace_schema": SCHEMA_VERSION,  # a cached trace of an older layout is captured again
        }

    def prepare(self) -> PreparedRun:
        """The model with its weights on its device, and the seeded batch stream."""
        return prepare(self.options, self.spec, self.model_code)


def file_sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _imagenet_file(spec: ModelSpec) -> Path | None:
    if spec.origin == "torchvision":
        try:
            path = imagenet_weights_file(spec.name)[1]
        except AgosError:
            path = None
        if path is not None and path.is_file():
            return path
    return offline_file(spec.name)


def weights_id(spec: ModelSpec, weights: str) -> str:
    """What identifies the weights: a seeded init by name; anything else by its bytes (the file, the
    installed ImageNet file, the in-memory model's state_dict), so a retrained file is a new key."""
    if weights == "init":
        return "init"
    if weights == IN_MEMORY:
        return "sha256:" + state_dict_sha256(spec.build())
    if weights == "imagenet":
        path = _imagenet_file(spec)
        return "imagenet" + (f" sha256:{file_sha256(path)}" if path is not None else "")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise AgosError(f"weights file {weights} does not exist")
    return "sha256:" + file_sha256(path)


def resolve_run(
    options: RunOptions,
    model: nn.Module | None = None,
    batch_index: int | None = None,
    training_step: int | None = None,
    check_size: bool = True,
) -> ResolvedRun:
    """Check every option (one line each), then fingerprint the model's code, the weights and the
    images once. `model`: a model given in memory (options.model is then its name);
    `batch_index`: the captured batch (default: the one after the warm-up steps)."""
    spec = memory_model(model) if model is not None else resolve_model(options.model)
    if model is not None and options.model != spec.name:
        options = options.model_copy(update={"model": spec.name})
    check_options(options, spec)
    if check_size:
        check_image_size(options, spec)
    index = options.warm_up.steps if batch_index is None else batch_index
    data = parse_data(options.data)
    return ResolvedRun(
        options=options,
        spec=spec,
        model_code=model_fingerprint(spec),
        weights_id=weights_id(spec, options.weights),
        data=data,
        data_id=data_fingerprint(data, options.seed, options.batch_size * (index + 1)),
        batch_index=index,
        training_step=training_step,
    )
