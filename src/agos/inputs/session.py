"""Turn the CLI's model/weights/data options into a ready model and batch stream, with the
provenance that every agos figure carries."""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field

import torch
import torchvision
from torch import nn

from agos import __version__
from agos.errors import AgosError
from agos.fileio import atomic_file
from agos.inputs.data import BatchSource, parse_data
from agos.inputs.models import ModelSpec, resolve_model
from agos.inputs.training import WarmUp, loss_of, num_classes_of, step_rng
from agos.inputs.weights import WeightsInfo, load_model_with_weights, state_dict_sha256
from agos.progress import progress_bar


@dataclass(frozen=True)
class RunOptions:
    model: str = "resnet18"
    weights: str = "init"
    data: str = "samples"
    batch_size: int = 32
    image_size: int = 224
    seed: int = 0
    device: str = "auto"
    warm_up: WarmUp = field(default_factory=WarmUp)


def resolve_device(text: str) -> torch.device:
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AgosError(f"--device {text} asked for, but this machine has no CUDA GPU (use cpu)")
        return torch.device(text)
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
    warm_up_losses: list[float] = field(default_factory=list)

    @property
    def capture_batch_index(self) -> int:
        return self.options.warm_up.steps

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self.source.batch(index, self.options.batch_size)
        return images.to(self.device), labels.to(self.device)

    def provenance(self) -> dict:
        o = self.options
        return {
            "model": self.spec.name,
            "model_origin": self.spec.origin,
            "weights": asdict(self.weights),
            "data": self.source.describe(),
            "batch_size": o.batch_size,
            "image_size": o.image_size,
            "seed": o.seed,
            "batch_index": self.capture_batch_index,
            "warm_up": {
                **asdict(o.warm_up),
                "losses": self.warm_up_losses,
                "weights_sha256_after": state_dict_sha256(self.model) if o.warm_up.steps else None,
            },
            "device": device_label(self.device),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "agos": __version__,
        }


def prepare(options: RunOptions) -> PreparedRun:
    """Resolve everything that can be wrong before any long computation starts."""
    if options.batch_size < 1:
        raise AgosError(f"--batch-size must be at least 1 (got {options.batch_size})")
    if options.warm_up.steps < 0:
        raise AgosError(f"--train-steps must be 0 or more (got {options.warm_up.steps})")
    device = resolve_device(options.device)
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    spec = resolve_model(options.model)
    data_spec = parse_data(options.data)
    model, weights = load_model_with_weights(spec, options.weights, options.seed)
    model.to(device)
    try:
        num_classes = num_classes_of(model, options.image_size, device)
    except AgosError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise AgosError(f"{spec.name} cannot run on {options.image_size}-px images: {first}") from None
    source = BatchSource(data_spec, options.image_size, options.seed, num_classes)
    return PreparedRun(options=options, spec=spec, model=model, weights=weights, source=source, device=device)


def warm_up(run: PreparedRun) -> list[float]:
    """SGD steps on batches 0…N−1 of the stream, so the capture batch N is one the model has not seen."""
    cfg = run.options.warm_up
    if cfg.steps == 0:
        return []
    model = run.model
    optimizer = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    model.train()
    losses = []
    with progress_bar(f"warm-up {run.spec.name}", total=cfg.steps) as advance:
        for step in range(cfg.steps):
            images, labels = run.batch(step)
            optimizer.zero_grad(set_to_none=True)
            with step_rng(run.options.seed + 1_000 + step, run.device):
                loss = loss_of(model(images), labels)
                loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            advance(1, f"loss {losses[-1]:.3f}")
    model.zero_grad(set_to_none=True)
    run.warm_up_losses = losses
    return losses


def save_weights(model: nn.Module, path: str) -> None:
    with atomic_file(path, "wb") as f:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, f)
