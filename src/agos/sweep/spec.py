"""The schema of a sweep spec (`agos sweep SPEC.yaml`): which traces (or models to capture), which
designs, which axes (any design field by dotted path), which densities, grid or seeded sample, and
which constraints. Validated strictly (unknown fields refused) so that a typo is one line naming
the field, before any work starts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agos.arch.load import yaml_text
from agos.errors import AgosError
from agos.inputs.options import DEFAULTS, RunOptions

Scalar = int | float | str | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


class Range(_Strict):
    """An arithmetic range of axis values, `stop` included when the steps land on it."""

    start: float
    stop: float
    step: float = Field(gt=0)

    def values(self) -> list[int | float]:
        if self.stop < self.start:
            raise ValueError("stop is below start")
        if self.stop > self.start and self.step > self.stop - self.start:
            raise ValueError(
                f"step {self.step:g} is larger than stop − start ({self.stop - self.start:g}): the range has "
                f"one value; list it instead ([{self.start:g}])"
            )
        n = math.floor((self.stop - self.start) / self.step + 1e-9) + 1
        if n > 10_000:
            raise ValueError(f"{n} values: at most 10000 per axis")
        out = [self.start + i * self.step for i in range(n)]
        ints = all(float(v).is_integer() for v in (self.start, self.step))
        return [round(v) for v in out] if ints else [round(v, 12) for v in out]


class UniformRange(_Strict):
    """`uniform:S` for S evenly spaced from `start` to `stop` (both included)."""

    start: float = Field(ge=0, le=1)
    stop: float = Field(ge=0, le=1)
    num: int = Field(ge=1, le=1000)

    def specs(self) -> list[str]:
        if self.num == 1:
            return [f"uniform:{self.start:g}"]
        step = (self.stop - self.start) / (self.num - 1)
        return [f"uniform:{round(self.start + i * step, 10):g}" for i in range(self.num)]


class UniformDensity(_Strict):
    uniform: UniformRange | list[float]

    def specs(self) -> list[str]:
        if isinstance(self.uniform, UniformRange):
            return self.uniform.specs()
        return [f"uniform:{v:g}" for v in self.uniform]


class ProfileDensity(_Strict):
    """A profile (`sparsetrain`, `sparsetrain/MODEL` or a CSV) at each of its checkpoints."""

    profile: str = Field(min_length=1)
    checkpoints: list[int | Literal["first", "last"]] = Field(default_factory=lambda: ["last"], min_length=1)

    def specs(self) -> list[str]:
        return [f"profile:{self.profile}:{c}" for c in self.checkpoints]


class ModelTrace(RunOptions):
    """A model to capture once into the sweep's cache (then swept like a trace): the run options,
    with the sweep's defaults (`inputs.options.DEFAULTS['sweep']`); `model` has none."""

    model: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _sweep_defaults(cls, data: Any) -> Any:
        return {**DEFAULTS["sweep"], **data} if isinstance(data, dict) else data


class Sample(_Strict):
    """A seeded random sample of `n` grid points (without replacement) instead of the whole grid."""

    n: int = Field(ge=1, le=1_000_000)
    seed: int = Field(0, ge=0)


class Bounds(_Strict):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _order(self) -> Bounds:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is above max")
        return self


class EqualArea(_Strict):
    """Keep points whose area is within `tolerance` (relative) of `design`'s (as shipped)."""

    design: str = Field(min_length=1)
    tolerance: float = Field(0.05, ge=0, le=10)


class Constraints(_Strict):
    area_mm2: Bounds | None = None
    equal_area_to: EqualArea | None = None


DensityEntry = str | UniformDensity | ProfileDensity


class SweepSpec(_Strict):
    traces: list[str] = Field(default_factory=list, description="trace directories (relative to the cwd)")
    models: list[ModelTrace] = Field(default_factory=list, description="models to capture, then sweep")
    archs: list[str] = Field(
        min_length=1, description="designs: PRESET (both organisations), PRESET@ORG, FILE"
    )
    axes: dict[str, list[Scalar] | Range] = Field(default_factory=dict)
    densities: list[DensityEntry] = Field(default_factory=lambda: ["real"], min_length=1)
    density_seed: int = Field(0, ge=0)
    sample: Sample | None = None
    constraints: Constraints = Constraints()
    equal_area: bool = Field(True, description="also compare with the best dense design of equal area")

    @field_validator("axes")
    @classmethod
    def _axes(cls, axes: dict) -> dict:
        for key, values in axes.items():
            if isinstance(values, list) and not values:
                raise ValueError(f"axis '{key}' has no values")
            if isinstance(values, list) and len(set(map(repr, values))) != len(values):
                raise ValueError(f"axis '{key}' repeats a value")
        return axes

    @model_validator(mode="after")
    def _inputs(self) -> SweepSpec:
        if not self.traces and not self.models:
            raise ValueError("name at least one trace (traces:) or model (models:)")
        return self

    def axis_values(self) -> dict[str, list]:
        return {k: (v.values() if isinstance(v, Range) else list(v)) for k, v in self.axes.items()}

    def density_specs(self) -> list[str]:
        out: list[str] = []
        for d in self.densities:
            out.extend([d] if isinstance(d, str) else d.specs())
        return list(dict.fromkeys(out))


def _user_loc(error: dict) -> list[str]:
    # pydantic names the union member it tried (e.g. 'list[...]', 'Range'); the user wrote neither
    loc = [str(p) for p in error["loc"]]
    return [p for p in loc if not (p[:1].isupper() or "[" in p or p in ("str", "int", "float", "bool"))]


def _message(where: str, exc: ValidationError) -> str:
    """The most specific problem (a value tried against every member of a union fails each; the
    member that got furthest into it names the field best)."""
    errors = exc.errors()
    first = max(errors, key=lambda e: len(_user_loc(e)))
    field = ".".join(_user_loc(first)) or "(top level)"
    extra = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: field '{field}': {first['msg']}{extra}"


def parse_spec(data: Any, where: str) -> SweepSpec:
    if not isinstance(data, dict):
        raise AgosError(f"{where}: expected a mapping of fields at the top level")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise AgosError(_message(where, exc)) from None
    for key, values in spec.axes.items():
        if isinstance(values, Range):
            try:
                values.values()
            except ValueError as exc:
                raise AgosError(f"{where}: field 'axes.{key}': {exc}") from None
    return spec


def load_spec(path: Path | str) -> SweepSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AgosError(
            f"{path}: cannot read the sweep spec ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    return parse_spec(yaml_text(text, str(path)), str(path))
