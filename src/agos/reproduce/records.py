"""`results.json` of `agos reproduce`, typed: the figures the report shows for every model and
density, each read from its stage's `Analysis` by one `of()` (or `model_validate(...,
from_attributes=True)` of the analysis's own models), with the provenance and verification of its
capture. The schema is shipped (`results.schema.json`) and checked like the Analysis one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from agos.analysis.base import Ratio
from agos.analysis.bounds import SpanSpeedups
from agos.analysis.model import Analysis
from agos.analysis.realised import Realised
from agos.analysis.simulation import Cycles, DesignFigures, SpanRatios, TimeMs
from agos.inputs.provenance import Provenance
from agos.record import Record
from agos.reproduce.settings import Settings
from agos.stages.records import TrajectoryRecord
from agos.stages.verification import Verification
from agos.sweep.section import SweepSection

FORMAT = "agos-results"
VERSION = 3  # 3: typed; provenance and verification records; settings embed the run options
SCHEMA_FILE = Path(__file__).with_name("results.schema.json")


class EqualAreaDesign(Record):
    """The best dense design of equal area, as the report names it."""

    area_mm2: float
    pe_array: tuple[int, int]
    global_buffer_bytes: int
    time_ms: TimeMs


class DesignSummary(Record):
    """One design's figures as the report shows them (a subset of `analysis.simulation.DesignFigures`)."""

    organisation: str
    preset: str | None
    twin: str | None
    area_mm2: float
    speedup_over_twin: SpanRatios | None
    mac_bound_speedup: SpanRatios | None
    speedup_over_best_dense_equal_area: Ratio
    best_dense_equal_area: str | None
    speedup_per_area_over_twin: Ratio
    energy_j: float
    energy_vs_twin: Ratio
    energy_breakdown_j: dict[str, float]
    time_ms: TimeMs
    cycles: Cycles
    utilisation: Ratio
    flags: list[str] | None
    sha256: str
    precision: str
    best_dense_equal_area_detail: EqualAreaDesign | None = None

    @classmethod
    def of(cls, design: DesignFigures, best: DesignFigures | None) -> DesignSummary:
        out = cls.model_validate(design, from_attributes=True)
        if best is not None:
            out.best_dense_equal_area_detail = EqualAreaDesign.model_validate(best, from_attributes=True)
        return out


class TileShapeTotals(Record):
    tiles: int
    empty_tiles: int
    empty_fraction: float
    work_skipped_fraction: float


class TileSummary(Record):
    """The network's tile totals (a subset of `analysis.tiles.Tiles`)."""

    element_skip_fraction: float
    statistical: bool
    totals: dict[str, TileShapeTotals]  # by tile shape


class Figures(Record):
    """What the report shows of one analysis (one model under one density)."""

    sparsity: Realised
    ideal_bounds: dict[str, SpanSpeedups]
    designs: dict[str, DesignSummary]
    vector_note: str | None
    density_notes: list[str]  # what the density source leaves real or assumes
    tiles: TileSummary | None
    dense_macs_per_iteration: int

    @classmethod
    def fields_of(cls, analysis: Analysis) -> dict:
        sim, tiles = analysis.simulation, analysis.tiles
        designs = {}
        for name in sim.requested:
            d = sim.designs[name]
            best = sim.designs[d.best_dense_equal_area] if d.best_dense_equal_area is not None else None
            designs[name] = DesignSummary.of(d, best)
        return {
            "sparsity": analysis.realised,
            "ideal_bounds": analysis.bounds.speedups,
            "designs": designs,
            "vector_note": sim.vector_note,
            "density_notes": list(analysis.density.notes) if analysis.density is not None else [],
            "tiles": None if tiles is None else TileSummary.model_validate(tiles, from_attributes=True),
            "dense_macs_per_iteration": analysis.bounds.totals.span("iteration")["dense"],
        }


class DensityEntry(Figures):
    density: str  # the --density text
    density_label: str
    label: str  # the provenance label of the figures

    @classmethod
    def of(cls, analysis: Analysis) -> DensityEntry:
        d = analysis.density
        return cls(density=d.spec, density_label=d.label, label=analysis.label, **Figures.fields_of(analysis))


class GpuEntry(Record):
    """One design against the measured GPU row of its precision (`gpu.anchors.compare_per_image`),
    with its dense twin's ratios beside."""

    model: str
    sim_batch: int
    sim_image_size: int
    mac_scale: float  # dense MACs per image at the GPU's size / at the simulated size (1 when equal)
    sim_ms_per_image: float  # at the GPU's image size
    sim_joules_per_image: float | None
    gpu_device: str
    gpu_batch: int
    gpu_image_size: int
    gpu_precision: str
    gpu_ms_per_image: float
    gpu_joules_per_image: float | None
    speedup: float | None
    energy_ratio: float | None
    gpu_source: str
    note: str
    twin_energy_ratio: float | None = None
    twin_speedup: float | None = None


class ModelResults(Figures):
    """One model: its capture's provenance and proof, the real masks' figures (the fields of
    `Figures`), every density's, and the GPU comparison."""

    provenance: Provenance
    label: str
    verify: Verification
    capture_notes: list[str]
    densities: dict[str, DensityEntry]  # by density label
    gpu: dict[str, GpuEntry]
    gpu_note: str | None = None  # why there is no GPU comparison (image sizes that cannot be bridged)
    seconds: float  # wall time of this invocation
    compute_seconds: float  # what its stages took when they were computed
    files: dict[str, str]  # density → stage folder


class Span(Record):
    low: float
    high: float


class SeedFigure(Record):
    text: str
    low: float | None = None
    high: float | None = None
    value: float | None = None


class SeedComparison(Record):
    seed: dict[str, SeedFigure]
    ours: dict[str, dict[str, Span | None]]  # organisation → figure → our range over the models


class Results(Record):
    format: Literal["agos-results"] = FORMAT
    version: Literal[3] = VERSION
    agos_version: str
    created: str
    wall_seconds: float
    compute_seconds: float
    settings: Settings
    models: dict[str, ModelResults]
    trained: dict[str, ModelResults] = Field(default_factory=dict)
    seed_comparison: SeedComparison
    validation: dict[str, Any] | None  # the cost model's recorded validation (report/data/validation.json)
    trajectory: TrajectoryRecord | None = None
    sweep: SweepSection | None = None
