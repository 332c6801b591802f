"""What an `agos reproduce` run is asked to do: its run options (one `RunOptions`, whose model and
weights are set per model), the models, the designs, the engine check and the report's extras."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from agos.arch.load import DEFAULT_DESIGNS
from agos.errors import AgosError
from agos.inputs.options import RunOptions

DEFAULT_MODELS = ("alexnet", "vgg16", "resnet18", "resnet50", "googlenet", "mobilenet_v2")
CHECK_IMAGES = {"reproduce": 4, "reproduce-quick": 2}  # images of the batch the sparse engine recomputes


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run: RunOptions = RunOptions.for_command("reproduce")  # `weights` may map models: m=PATH,…
    models: tuple[str, ...] = DEFAULT_MODELS
    check_images: int = CHECK_IMAGES["reproduce"]
    archs: str = DEFAULT_DESIGNS
    quick: bool = False
    trained: tuple[str, ...] = ()  # also run these with trained ImageNet weights (real masks only)
    trajectory: str | None = None  # a finished `agos trajectory` folder to show in the report
    sweep: str | None = None  # a sweep spec: its results become the report's "Design-space sweep" section

    def weights_for(self, model: str) -> str:
        weights = self.run.weights
        if weights in ("init", "imagenet"):
            return weights
        if "=" in weights:
            pairs = dict(p.split("=", 1) for p in weights.split(",") if p)
            return pairs.get(model, "init")
        if len(self.models) > 1:
            raise AgosError("--weights PATH needs a single model; use --weights model=PATH,… for several")
        return weights

    def options_for(self, model: str, weights: str | None = None) -> RunOptions:
        """The run options of one model: `run` with its model and its weights."""
        return self.run.model_copy(update={"model": model, "weights": weights or self.weights_for(model)})
