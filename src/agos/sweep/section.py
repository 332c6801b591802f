"""The sweep section of the `agos reproduce` report: run the sweep (its own cache under the report's
folder, so a repeated report is instant) and keep what the page shows — counts, files, the traces
and the best point of each design."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from agos.record import Record
from agos.sweep.records import TraceColumns

KEPT = ("speedup_iteration", "speedup_backprop", "speedup_over_best_dense_equal_area", "area_mm2", "energy_j")


class BestPoint(Record):
    design: str
    density: str
    axes: dict[str, int | float | str | bool | None]
    speedup_iteration: float | None
    speedup_backprop: float | None
    speedup_over_best_dense_equal_area: float | None
    area_mm2: float
    energy_j: float | None
    trace: str


class SweepSection(Record):
    spec: str
    points: int
    skipped: int
    failed: int
    axes: list[str]
    traces: list[TraceColumns]
    files: dict[str, str]
    best: list[BestPoint]


def sweep_section(spec: str, out: Path, console: Console, workers: int | None = None) -> SweepSection:
    from agos.sweep.run import run_sweep

    console.rule(f"sweep: {spec}")
    result = run_sweep(spec, out, workers=workers, plot=True, console=console)
    best = {}
    for r in (r for r in result.records if r.error is None and r.speedup_iteration is not None):
        if r.design not in best or r.speedup_iteration > best[r.design].speedup_iteration:
            best[r.design] = r
    return SweepSection(
        spec=str(spec),
        points=len(result.plan.points),
        skipped=len(result.plan.skipped),
        failed=sum(r.error is not None for r in result.records),
        axes=[a for a in result.plan.axes if a != "organisation"],
        traces=[t.columns() for t in result.plan.traces],
        files={k: str(v) for k, v in result.files.items()},
        best=[BestPoint.model_validate(r, from_attributes=True) for r in best.values()],
    )
