"""Run a search: stage one (every design of both families at the organisation's shipped array and
buffer), stage two (the `top` fastest of each family at every array shape and buffer), then the
fronts' designs re-simulated with their twins and equal-area dense designs. Each stage is a sweep
(agos.sweep: Dask, counts shared per trace and density, points cached in the output folder, so an
interrupted search resumes); every design is a file under OUT/designs."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from pathlib import Path

import yaml
from rich.console import Console

from agos import __version__
from agos.arch.load import LoadedArch, load_arch
from agos.errors import AgosError
from agos.fileio import atomic_file
from agos.search.front import Front, SearchPoint, SearchResult, Winner, budgets, pareto
from agos.search.space import SearchSpace
from agos.sweep.records import SweepRow
from agos.sweep.run import run_sweep
from agos.sweep.spec import SweepSpec


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.~-]+", "_", name) + ".yaml"


def _write_designs(designs: list[LoadedArch], folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for loaded in designs:
        path = folder / _file_name(loaded.name)
        data = loaded.arch.model_dump(mode="json", exclude={"preset"})
        with atomic_file(path) as f:
            f.write(yaml.safe_dump(data, sort_keys=False))
        files[loaded.name] = path
    return files


def _sweep(traces, files, densities, seed, out, equal_area, workers, scheduler, console) -> list[SweepRow]:
    """One stage as a sweep into `out` (its points cached under OUT/cache, so a stopped search
    resumes); its rows, typed."""
    spec = SweepSpec(
        traces=traces,
        archs=[str(f) for f in files],
        densities=densities,
        density_seed=seed,
        equal_area=equal_area,
    )
    result = run_sweep(str(out), out, scheduler=scheduler, workers=workers, spec=spec, console=console)
    failed = [r for r in result.records if r.error]
    if failed:
        first = failed[0]
        raise AgosError(f"search: {len(failed)} points failed; the first: {first.design}: {first.error}")
    return result.records


def run_search(
    traces: list[str],
    out: Path,
    space: SearchSpace,
    densities: list[str],
    seed: int = 0,
    workers: int | None = None,
    scheduler: str | None = None,
    console: Console | None = None,
) -> SearchResult:
    console = console or Console(stderr=True)
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    family: dict[str, str] = {}
    files: dict[str, Path] = {}
    first: list[LoadedArch] = []
    for org in space.organisations:
        for fam, loaded in space.stage_one(org):
            family[loaded.name] = fam
            first.append(loaded)
    files.update(_write_designs(first, out / "designs"))
    console.print(
        f"search stage one: {len(first)} designs at the shipped arrays and buffers", highlight=False
    )
    rows = _sweep(
        traces, files.values(), densities, seed, out / "stage-one", False, workers, scheduler, console
    )
    # the `top` fastest of each family, per trace, density and organisation
    ranked: dict[tuple, list[SweepRow]] = defaultdict(list)
    for r in rows:
        ranked[(r.trace, r.density, r.organisation, family[r.design])].append(r)
    tops: dict[str, LoadedArch] = {}
    for group in ranked.values():
        for r in sorted(group, key=lambda r: (r.cycles_backprop, r.area_mm2, r.design))[: space.top]:
            tops[r.design] = load_arch(str(files[r.design]))
    second: list[LoadedArch] = []
    for name, loaded in tops.items():
        for scaled in space.stage_two(loaded):
            family[scaled.name] = family[name]
            second.append(scaled)
    files.update(_write_designs(second, out / "designs"))
    console.print(
        f"search stage two: {len(tops)} designs × arrays and buffers = {len(second)}", highlight=False
    )
    scaled = [files[d.name] for d in second]
    rows += _sweep(traces, scaled, densities, seed, out / "stage-two", False, workers, scheduler, console)
    fronts = _fronts(rows, family, files)
    on_front = sorted({name for f in fronts for fam in f.time_front.values() for name in fam})
    console.print(f"search: re-simulating the {len(on_front)} front designs with twins and equal-area dense")
    checked = _sweep(traces, [files[n] for n in on_front], densities, seed, out / "winners", True, workers,
                     scheduler, console)  # fmt: skip
    fronts = [_with_winners(f, checked, family, files) for f in fronts]
    return SearchResult(
        agos_version=__version__,
        space=space.model_dump(mode="json"),
        seconds=time.perf_counter() - start,
        points=len(rows),
        fronts=fronts,
    )


def _point(r: SweepRow, family: dict[str, str], files: dict[str, Path]) -> SearchPoint:
    clock_cycles_per_ms = r.cycles_iteration / (r.time_s * 1e3) if r.time_s else 1e6
    return SearchPoint(
        design=r.design,
        family=family[r.design],
        file=str(files[r.design]),
        area_mm2=r.area_mm2,
        backprop_ms=r.cycles_backprop / clock_cycles_per_ms,
        iteration_ms=r.time_s * 1e3,
        energy_mj=r.energy_j * 1e3,
        speedup_backprop_over_twin=r.speedup_backprop,
    )


def _fronts(rows: list[SweepRow], family: dict[str, str], files: dict[str, Path]) -> list[Front]:
    groups: dict[tuple, list[SweepRow]] = defaultdict(list)
    for r in rows:
        groups[(r.trace, r.density, r.organisation)].append(r)
    out = []
    for (trace, density, org), group in groups.items():
        points = [_point(r, family, files) for r in group]
        dense = next(p for p in points if p.design == f"dense@{org}")
        r0 = group[0]
        label = (
            f"{r0.model} · weights {r0.weights} · data {r0.data} · batch {r0.batch_size} · "
            f"{r0.image_size} px · {r0.density_label or density}"
        )
        out.append(
            Front(
                trace=trace,
                label=label,
                density=density,
                organisation=org,
                dense_area_mm2=dense.area_mm2,
                points=points,
                time_front={
                    fam: [
                        p.design
                        for p in pareto([p for p in points if p.family == fam], lambda p: p.backprop_ms)
                    ]
                    for fam in ("with", "without")
                },
                energy_front={
                    fam: [
                        p.design
                        for p in pareto([p for p in points if p.family == fam], lambda p: p.energy_mj)
                    ]
                    for fam in ("with", "without")
                },
                budgets=budgets(points, dense.area_mm2),
            )
        )
    return out


def _with_winners(
    front: Front, checked: list[SweepRow], family: dict[str, str], files: dict[str, Path]
) -> Front:
    names = {n for fam in front.time_front.values() for n in fam}
    winners = [
        Winner(
            design=r.design,
            family=family[r.design],
            file=str(files[r.design]),
            speedup_backprop_over_twin=r.speedup_backprop,
            speedup_iteration_over_twin=r.speedup_iteration,
            best_dense_equal_area=r.best_dense_equal_area,
            speedup_over_best_dense_equal_area=r.speedup_over_best_dense_equal_area,
            flags=r.flags or "",
        )
        for r in checked
        if r.design in names and (r.trace, r.density) == (front.trace, front.density)
    ]
    return front.model_copy(update={"winners": sorted(winners, key=lambda w: w.design)})
