"""Pareto fronts and the with/without comparison of `agos search`, as typed records (the JSON that
`agos search` writes is a dump of `SearchResult`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field

from agos.record import Record

FORMAT, VERSION = "agos-search", 1
SCHEMA_FILE = Path(__file__).with_name("search.schema.json")
Family = Literal["with", "without"]
BUDGETS = (1.0, 1.1, 1.25, 1.5, 2.0)  # area budgets, × the organisation's shipped dense design


class _Record(Record):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SearchPoint(_Record):
    design: str
    family: Family
    file: str  # the design file: `agos simulate --arch FILE` re-simulates it
    area_mm2: float = Field(gt=0)
    backprop_ms: float = Field(ge=0)
    iteration_ms: float = Field(ge=0)
    energy_mj: float = Field(ge=0)
    speedup_backprop_over_twin: float | None = Field(default=None, ge=0)


class Budget(_Record):
    """The fastest design of each family whose area is at most `area_mm2`."""

    budget: float  # × the shipped dense design's area
    area_mm2: float
    best_with: str | None
    best_without: str | None
    with_backprop_ms: float | None
    without_backprop_ms: float | None
    with_over_without: float | None  # backprop time without / with: > 1 when output skipping pays


class Winner(_Record):
    """A front's design re-simulated by the rules every number obeys (twin, equal-area dense)."""

    design: str
    family: Family
    file: str
    speedup_backprop_over_twin: float | None
    speedup_iteration_over_twin: float | None
    best_dense_equal_area: str | None
    speedup_over_best_dense_equal_area: float | None
    flags: str


class Front(_Record):
    """One (trace, density, organisation): every point, each family's area-vs-backprop and
    area-vs-energy front, and the comparison at each area budget."""

    trace: str
    label: str  # model · weights · data · batch · size · density
    density: str
    organisation: str
    dense_area_mm2: float
    points: list[SearchPoint]
    time_front: dict[Family, list[str]]
    energy_front: dict[Family, list[str]]
    budgets: list[Budget]
    winners: list[Winner] = Field(default_factory=list)


class SearchResult(_Record):
    format: Literal["agos-search"] = FORMAT
    version: Literal[1] = VERSION
    agos_version: str
    space: dict
    seconds: float = Field(ge=0)
    points: int = Field(ge=0)
    fronts: list[Front]


def pareto(points: list[SearchPoint], key) -> list[SearchPoint]:
    """The points no other point beats on both area and `key` (ties: the first), by area."""
    ordered = sorted(points, key=lambda p: (p.area_mm2, key(p), p.design))
    out: list[SearchPoint] = []
    best = float("inf")
    for p in ordered:
        if key(p) < best:
            out.append(p)
            best = key(p)
    return out


def budgets(points: list[SearchPoint], dense_area: float) -> list[Budget]:
    out = []
    for factor in BUDGETS:
        limit = dense_area * factor * (1 + 1e-9)
        best = {}
        for family in ("with", "without"):
            fits = [p for p in points if p.family == family and p.area_mm2 <= limit]
            best[family] = min(fits, key=lambda p: (p.backprop_ms, p.area_mm2, p.design)) if fits else None
        w, wo = best["with"], best["without"]
        out.append(
            Budget(
                budget=factor,
                area_mm2=dense_area * factor,
                best_with=w.design if w else None,
                best_without=wo.design if wo else None,
                with_backprop_ms=w.backprop_ms if w else None,
                without_backprop_ms=wo.backprop_ms if wo else None,
                with_over_without=(wo.backprop_ms / w.backprop_ms) if w and wo and w.backprop_ms else None,
            )
        )
    return out
