"""A sweep's records, typed: what a point computes (`PointResult`, stored in the cache as it
arrives) and one row of the results table per point (`SweepRow`: the point's trace, design, axis
values, density and figures, each with its provenance). `results.parquet` and `results.csv` are
dumps of the rows (axis values as columns); the row schema is shipped (`row.schema.json`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from agos import __version__
from agos.record import Record

FORMAT = "agos-sweep-row"
VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("row.schema.json")
Scalar = int | float | str | bool


class PointFigures(Record):
    """One design at one point: `agos simulate`'s figures of it, as table columns."""

    twin: str | None
    cycles_fwd: int
    cycles_bwd_data: int
    cycles_bwd_weight: int
    cycles_backprop: int
    cycles_iteration: int
    twin_cycles_iteration: int
    speedup_backprop: float | None
    speedup_iteration: float | None
    mac_bound_backprop: float | None
    best_dense_equal_area: str | None
    speedup_over_best_dense_equal_area: float | None
    energy_j: float
    twin_energy_j: float
    energy_vs_twin: float | None
    area_mm2: float
    time_s: float
    dram_bytes: int
    arch_sha256: str
    flags: str


FIGURES = tuple(PointFigures.model_fields)


class PointResult(Record):
    """What running one point gave: its figures, or the one-line error that stopped it."""

    key: str
    density_label: str | None = None
    result: PointFigures | None = None
    error: str | None = None
    seconds: float | None = None
    worker: str | None = None


class TraceColumns(Record):
    """A trace as a sweep's table and report name it: its path, manifest checksum and provenance."""

    trace: str
    trace_sha256: str
    model: str
    weights: str
    weights_sha256: str
    data: str
    batch_size: int
    image_size: int


class SweepRow(TraceColumns):
    format: Literal["agos-sweep-row"] = FORMAT
    version: Literal[1] = VERSION
    point: str
    # the point (its trace: the TraceColumns fields)
    density: str
    density_seed: int
    density_label: str | None
    density_notes: str | None = None  # what the density source leaves real or assumes, "; "-joined
    design: str
    preset: str | None
    organisation: str
    axes: dict[str, Scalar | None]
    # its figures (None when it failed)
    twin: str | None = None
    cycles_fwd: int | None = None
    cycles_bwd_data: int | None = None
    cycles_bwd_weight: int | None = None
    cycles_backprop: int | None = None
    cycles_iteration: int | None = None
    twin_cycles_iteration: int | None = None
    speedup_backprop: float | None = None
    speedup_iteration: float | None = None
    mac_bound_backprop: float | None = None
    best_dense_equal_area: str | None = None
    speedup_over_best_dense_equal_area: float | None = None
    energy_j: float | None = None
    twin_energy_j: float | None = None
    energy_vs_twin: float | None = None
    area_mm2: float
    time_s: float | None = None
    dram_bytes: int | None = None
    arch_sha256: str
    flags: str | None = None
    design_source: str
    agos_version: str = __version__
    point_seconds: float | None
    worker: str | None
    error: str | None

    def flat(self) -> dict:
        """The table's row: the axis values as columns of their own, in place of `axes`."""
        dump = self.model_dump(mode="json", exclude={"format", "version"})
        out = {"point": dump.pop("point"), **dump}
        axes = out.pop("axes")
        at = list(out).index("organisation") + 1
        items = list(out.items())
        return dict(items[:at] + list(axes.items()) + items[at:])
