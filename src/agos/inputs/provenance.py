"""Where a figure came from, typed: `Provenance` is written into every trace (and so into every
`Analysis` of it) by `inputs.session.PreparedRun.provenance`, in one place; `provenance_label` is the
line that every table, plot and page prints beside its figures."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from agos.record import Record


class WeightsInfo(Record):
    """The weights a run used, as loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str  # "init", "imagenet", "in-memory" or a file path
    sha256: str  # of the state_dict actually loaded (tensor bytes in key order)
    file: str | None = None


class DataInfo(Record):
    """The images a run read (`inputs.data.BatchSource.describe`)."""

    source: str  # samples | synthetic | imagefolder:PATH
    description: str
    images: list[str] | int | None = None  # the photographs' names, or a folder's image count
    classes: int | None = None
    augment: str | None = None


class WarmUpInfo(Record):
    steps: int
    lr: float
    momentum: float
    weight_decay: float
    losses: list[float] = Field(default_factory=list)
    weights_sha256_after: str | None = None  # of the warmed-up weights (the captured ones)


class SgdInfo(Record):
    """The SGD of `agos check`'s twin trainings."""

    steps: int
    lr: float
    momentum: float
    weight_decay: float


class Provenance(Record):
    """Everything a figure depends on besides the design and the density source."""

    model: str  # what --model named (a class name for a model given in memory)
    model_origin: str  # torchvision | timm | user | memory | efficientnet-lite-pytorch
    model_class: str  # module.qualname of the network's class
    model_code: str  # fingerprint of its code (a version, or the SHA-256 of its source)
    weights: WeightsInfo
    data: DataInfo
    batch_size: int
    image_size: int
    seed: int
    batch_index: int  # the batch of the seeded stream that was captured
    warm_up: WarmUpInfo
    device: str
    torch: str
    torchvision: str
    agos: str
    density_source: str = "real masks"
    training_step: int | None = None  # a trajectory point: the checkpoint's training step
    check: SgdInfo | None = None  # agos check: the SGD of its twin trainings


def provenance_label(prov: Provenance, density: str | None = None) -> str:
    weights = prov.weights
    sha = weights.sha256[:8]
    steps = prov.warm_up.steps
    trained = f" + {steps} SGD steps" if steps else ""
    parts = [
        prov.model,
        f"weights {weights.source}" + (f" ({sha})" if sha else "") + trained,
        f"data {prov.data.source}",
        f"batch {prov.batch_size}",
        f"{prov.image_size} px",
        f"seed {prov.seed}",
        density or prov.density_source,
    ]
    return " · ".join(parts)
