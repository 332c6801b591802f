"""The run options — model, weights, data, batch, image size, seed, device, warm-up — as one typed
model that every settings object embeds (`reproduce.Settings`, `TrajectorySettings`, a sweep's
`models:` entries) and the CLI builds once per command. Their defaults live here and nowhere else:
`RunOptions()` holds the common ones, `DEFAULTS` what a command changes of them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Command = Literal["trace", "check", "trajectory", "reproduce", "reproduce-quick", "sweep"]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WarmUp(_Options):
    """SGD before the captured step (`steps` of them), or the SGD of `check` and `trajectory`."""

    steps: int = 0
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4


class RunOptions(_Options):
    """What a run reads. Values are checked (one line each) by `inputs.session.check_options`."""

    model: str = Field("resnet18", description="torchvision name, timm:NAME or pkg.module:factory")
    weights: str = Field("init", description="init | imagenet | PATH to a state_dict")
    data: str = Field("samples", description="samples | synthetic | imagefolder:PATH")
    batch_size: int = 32
    image_size: int = 224
    seed: int = 0
    device: str = "auto"
    warm_up: WarmUp = WarmUp()

    @classmethod
    def for_command(cls, command: Command, **given) -> RunOptions:
        """The command's defaults (`DEFAULTS`) with the given values over them; a value of None
        means "not given". Warm-up fields may be given flat (steps, lr, momentum, weight_decay)."""
        values = {**DEFAULTS[command], **{k: v for k, v in given.items() if v is not None}}
        warm = {k: values.pop(k) for k in list(values) if k in WarmUp.model_fields}
        if warm:
            values["warm_up"] = WarmUp(**{**dict(values.get("warm_up", WarmUp())), **warm})
        return cls(**values)


# What each command changes of RunOptions' defaults (everything else: `RunOptions()`).
DEFAULTS: dict[str, dict] = {
    "trace": {},
    "check": {"batch_size": 8},
    "trajectory": {"batch_size": 8, "image_size": 64},
    "reproduce": {},
    "reproduce-quick": {"batch_size": 8, "image_size": 160},
    "sweep": {"batch_size": 8, "image_size": 64, "device": "cpu"},  # a sweep's `models:` entries
}


TRAJECTORY_DESIGNS = "dense,input-skip,agos"  # what `agos trajectory` simulates at every point


def default(command: Command, field: str):
    """One default value of a command's options (for the CLI's --help)."""
    if field in DEFAULTS[command]:
        return DEFAULTS[command][field]
    if field in WarmUp.model_fields:
        return WarmUp.model_fields[field].default
    return RunOptions.model_fields[field].default
