"""Turn the CLI's model/weights/data options into a ready model and batch stream, with the
provenance that every agos figure carries."""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchvision
from torch import nn

from agos import __version__
from agos.errors import AgosError, first_line
from agos.fileio import atomic_file
from agos.inputs.data import BatchSource, parse_data
from agos.inputs.models import ModelSpec, class_name, import_user_module, model_fingerprint, resolve_model
from agos.inputs.options import RunOptions
from agos.inputs.provenance import DataInfo, Provenance, SgdInfo, WarmUpInfo
from agos.inputs.training import (
    loss_of,
    model_errors,
    non_finite_parameters,
    num_classes_of,
    require_finite_step,
    step_rng,
)
from agos.inputs.weights import IN_MEMORY, WeightsInfo, load_model_with_weights, state_dict_sha256
from agos.progress import progress_bar

MAX_SEED = 2**63 - 1
MAX_IMAGE_SIZE = 4096
BATCH_MEMORY_SHARE = 0.25  # of the machine's memory that the input batch alone may take
MAX_STEPS = 10_000_000  # SGD steps one command may train: more would not finish in days
MAX_SGD_VALUE = float(torch.finfo(torch.float32).max)  # SGD settings are float32 tensors' factors


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_options(options: RunOptions, spec: ModelSpec | None = None) -> None:
    """Every argument checked before a model is built or an image read: one line for each.
    `spec`: the model when it is given in memory (options.model is then only its name)."""
    o, w = options, options.warm_up
    if o.batch_size < 1:
        raise AgosError(f"--batch-size must be at least 1 (got {o.batch_size})")
    if not 8 <= o.image_size <= MAX_IMAGE_SIZE:
        raise AgosError(f"--image-size must be between 8 and {MAX_IMAGE_SIZE} (got {o.image_size})")
    batch_bytes = o.batch_size * 3 * o.image_size**2 * 4
    memory = _memory_bytes()
    if memory and batch_bytes > BATCH_MEMORY_SHARE * memory:
        raise AgosError(
            f"--batch-size {o.batch_size} at {o.image_size} px needs {batch_bytes / 2**30:.1f} GiB for the "
            f"input images alone; this machine has {memory / 2**30:.1f} GiB (lower --batch-size)"
        )
    if not 0 <= o.seed <= MAX_SEED:
        raise AgosError(f"--seed must be between 0 and 2**63 - 1 (got {o.seed})")
    if not 0 <= w.steps <= MAX_STEPS:
        raise AgosError(f"--train-steps must be between 0 and {MAX_STEPS:,} (got {w.steps})")
    check_sgd(w.lr, w.momentum, w.weight_decay)
    resolve_device(o.device)
    data = parse_data(o.data)
    if data.kind == "imagefolder" and not Path(data.path or "").is_dir():
        raise AgosError(f"image folder {data.path} does not exist or is not a directory")
    if o.weights not in ("init", "imagenet", IN_MEMORY) and not Path(o.weights).expanduser().is_file():
        raise AgosError(f"weights file {o.weights} does not exist")
    spec = spec or resolve_model(o.model)
    if spec.origin == "user":
        import_user_module(o.model.partition(":")[0])


def check_sgd(lr: float, momentum: float, weight_decay: float) -> None:
    """SGD settings torch can apply to float32 weights (1e308 overflows inside the optimizer)."""
    for flag, value in (("--lr", lr), ("--momentum", momentum), ("--weight-decay", weight_decay)):
        if not math.isfinite(value) or not 0 <= value <= MAX_SGD_VALUE:
            raise AgosError(f"{flag} must be a finite number between 0 and {MAX_SGD_VALUE:.3g} (got {value})")


def check_image_size(options: RunOptions, spec: ModelSpec | None = None) -> None:
    """A shape-only forward on the meta device: a model too deep for the image size is refused in
    a fraction of a second instead of after the runs before it. User models are skipped (their code
    may not run on meta tensors); their size errors come when they are built."""
    spec = spec or resolve_model(options.model)
    if spec.origin in ("user", "memory"):
        return
    with torch.device("meta"):
        model = spec.build()
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, options.image_size, options.image_size, device="meta"))
    except (RuntimeError, ValueError) as exc:
        first = first_line(exc)
        raise AgosError(f"{spec.name} cannot run on {options.image_size}-px images: {first}") from None


def resolve_device(text: str) -> torch.device:
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AgosError(f"--device {text} asked for, but this machine has no CUDA GPU (use cpu)")
        try:
            return torch.device(text)
        except RuntimeError:
            raise AgosError(f"unknown device '{text}' (use cpu, cuda, cuda:N or auto)") from None
    if text == "cpu":
        return torch.device("cpu")
    raise AgosError(f"unknown device '{text}' (use cpu, cuda or auto)")


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


@dataclass
class PreparedRun:
    options: RunOptions
    spec: ModelSpec
    model: nn.Module
    weights: WeightsInfo
    source: BatchSource
    device: torch.device
    model_code: str  # fingerprint of the model's code (inputs.models.model_fingerprint)
    warm_up_losses: list[float] = field(default_factory=list)

    @property
    def capture_batch_index(self) -> int:
        return self.options.warm_up.steps

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self.source.batch(index, self.options.batch_size)
        return images.to(self.device), labels.to(self.device)

    def provenance(
        self, batch_index: int | None = None, training_step: int | None = None, check: SgdInfo | None = None
    ) -> Provenance:
        """The provenance of what this run computes (on batch `batch_index`, default the capture
        batch), made here and nowhere else."""
        o = self.options
        return Provenance(
            model=self.spec.name,
            model_origin=self.spec.origin,
            model_class=class_name(self.model),
            model_code=self.model_code,
            weights=self.weights,
            data=DataInfo.model_validate(self.source.describe()),
            batch_size=o.batch_size,
            image_size=o.image_size,
            seed=o.seed,
            batch_index=self.capture_batch_index if batch_index is None else batch_index,
            warm_up=WarmUpInfo(
                **o.warm_up.model_dump(),
                losses=self.warm_up_losses,
                weights_sha256_after=state_dict_sha256(self.model) if o.warm_up.steps else None,
            ),
            device=device_label(self.device),
            torch=torch.__version__,
            torchvision=torchvision.__version__,
            agos=__version__,
            training_step=training_step,
            check=check,
        )


def prepare(options: RunOptions, spec: ModelSpec | None = None, model_code: str | None = None) -> PreparedRun:
    """Resolve everything that can be wrong before any long computation starts. `spec`: the model
    when it is given in memory; `model_code`: its fingerprint when the caller has it already."""
    check_options(options, spec)
    device = resolve_device(options.device)
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    spec = spec or resolve_model(options.model)
    data_spec = parse_data(options.data)
    model, weights = load_model_with_weights(spec, options.weights, options.seed)
    model.to(device)
    try:
        num_classes = num_classes_of(model, options.image_size, device)
    except AgosError:
        raise
    except Exception as exc:
        first = first_line(exc)
        raise AgosError(f"{spec.name} cannot run on {options.image_size}-px images: {first}") from None
    source = BatchSource(data_spec, options.image_size, options.seed, num_classes)
    code = model_code or model_fingerprint(spec)
    return PreparedRun(options, spec, model, weights, source, device, code)


def warm_up(run: PreparedRun) -> list[float]:
    """SGD steps on batches 0…N−1 of the stream, so the capture batch N is one the model has not seen."""
    cfg = run.options.warm_up
    if cfg.steps == 0:
        return []
    optimizer = torch.optim.SGD(
        run.model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    losses = train_steps(run, optimizer, 0, cfg.steps, f"warm-up {run.spec.name}", "warm-up step")
    run.warm_up_losses = losses
    return losses


def train_steps(
    run: PreparedRun, optimizer: torch.optim.Optimizer, first: int, last: int, what: str, word: str = "step"
) -> list[float]:
    """Steps first…last−1 on batches of the same numbers. Each step's batch and random state depend
    on its number only, so training in pieces (a resumed trajectory) equals training in one go."""
    cfg = run.options.warm_up
    model = run.model
    model.train()
    losses = []
    with progress_bar(what, total=last - first) as advance:
        for step in range(first, last):
            images, labels = run.batch(step)
            optimizer.zero_grad(set_to_none=True)
            with (
                step_rng(run.options.seed + 1_000 + step, run.device),
                model_errors(f"{word} {step + 1}", images, (ValueError, RuntimeError)),
            ):
                output = model(images)
                loss = loss_of(output, labels)
                loss.backward()
            require_finite_step(model, output, loss, f"{word} {step + 1}")
            optimizer.step()
            if non_finite_parameters(model):
                raise AgosError(
                    f"{word} {step + 1} made the weights non-finite (lr {cfg.lr}, momentum "
                    f"{cfg.momentum}, weight decay {cfg.weight_decay}): lower --lr"
                )
            losses.append(float(loss.detach()))
            advance(1, f"loss {losses[-1]:.3f}")
    model.zero_grad(set_to_none=True)
    return losses


def save_weights(model: nn.Module, path: str) -> None:
    with atomic_file(path, "wb") as f:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, f)
