"""The typed record of one trajectory point, as `trajectory.json` holds it: read back (by `agos
reproduce --trajectory`) with every number finite and in range, so a doctored or corrupt file is
refused in one line instead of drawing NaN into a report."""

from __future__ import annotations

from pydantic import ValidationError

from agos.analysis.base import Fraction, Model, NonNegative, Ratio
from agos.analysis.bounds import SpanSpeedups
from agos.analysis.model import read_head, validation_line
from agos.analysis.simulation import SpanRatios
from agos.errors import AgosError


class PointSparsity(Model):
    x_zero_frac: Fraction
    dy_zero_frac: Fraction
    dx_skip_frac: Fraction


class PointDesign(Model):
    twin: str | None
    speedup_over_twin: SpanRatios | None
    mac_bound_speedup: SpanRatios | None
    energy_vs_twin: Ratio
    speedup_over_best_dense_equal_area: Ratio


class TrajectoryPoint(Model):
    step: int
    step_source: str
    checkpoint: str
    sha256: str
    loss: NonNegative
    sparsity: PointSparsity
    mac_bounds: dict[str, SpanSpeedups]
    designs: dict[str, PointDesign]
    lossless: bool | None
    notes: list[str]
    trace: str
    label: str
    compute_seconds: NonNegative


def read_points(text: str, where: str) -> dict:
    """The trajectory file's top level, its points checked (strict JSON, then each point typed)."""
    result = read_head(text, where)
    points = result.get("points")
    if not isinstance(points, list):
        raise AgosError(f"{where}: field 'points': expected a list of points")
    for i, point in enumerate(points):
        try:
            TrajectoryPoint.model_validate(point, strict=True)
        except ValidationError as exc:
            raise AgosError(f"{where}: point {i}: {validation_line(exc)}") from None
    return result
