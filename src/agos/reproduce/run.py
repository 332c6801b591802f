"""Run the evaluation for every model and write `results.json` and `index.html` into the output
directory; finished stages live under `cache/` and are reused when the run is repeated."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from agos.arch.load import load_archs
from agos.errors import AgosError
from agos.fileio import output_lock
from agos.report.html import render
from agos.reproduce.pipeline import Settings, check_settings, run_model
from agos.reproduce.results import gather, write_results
from agos.reproduce.stages import StageCache
from agos.sweep.spec import load_spec
from agos.trajectory.run import read_trajectory


def sweep_section(spec: str, out: Path, console: Console, workers: int | None = None) -> dict:
    """Run the sweep (its own point cache under OUT/sweep/points, so a repeated report is instant)
    and keep what the report shows: counts, files and the best point of each design."""
    from agos.sweep.run import run_sweep

    console.rule(f"sweep: {spec}")
    result = run_sweep(spec, out, workers=workers, plot=True, console=console)
    ok = [r for r in result.rows if r["error"] is None and r["speedup_iteration"] is not None]
    keep = ("design", "density", *[a for a in result.plan.axes if a != "organisation"])
    keep = (*keep, "speedup_iteration", "speedup_backprop", "speedup_over_best_dense_equal_area")
    keep = (*keep, "area_mm2", "energy_j", "trace")
    best: dict[str, dict] = {}
    for r in ok:
        if r["design"] not in best or r["speedup_iteration"] > best[r["design"]]["speedup_iteration"]:
            best[r["design"]] = r
    axes = [a for a in result.plan.axes if a != "organisation"]
    return {
        "spec": str(spec),
        "points": len(result.plan.points),
        "skipped": len(result.plan.skipped),
        "failed": sum(r["error"] is not None for r in result.rows),
        "axes": axes,
        "traces": [t.columns() for t in result.plan.traces],
        "files": {k: str(v) for k, v in result.files.items()},
        "best": [{k: r[k] for k in keep} for r in best.values()],
    }


def reproduce(settings: Settings, out: Path, console: Console | None = None) -> dict:
    console = console or Console(stderr=True)
    check_settings(settings)  # fail before any long computation
    if settings.trajectory is not None:
        read_trajectory(settings.trajectory)
    if settings.sweep is not None:
        load_spec(settings.sweep)  # schema errors before any capture; traces are checked when it runs
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AgosError(f"{out} exists and is not a directory")
    with output_lock(out, "reproduce"):
        return _run(settings, out, console)


def _run(settings: Settings, out: Path, console: Console) -> dict:
    cache = StageCache(out / "cache")
    cache.sweep()
    start = time.perf_counter()
    designs = load_archs(settings.archs)  # parsed once for every model and density
    outcomes = []
    for i, model in enumerate(settings.models, 1):
        console.rule(f"[{i}/{len(settings.models)}] {model}")
        outcomes.append(run_model(model, settings, designs, cache, console))
    trained = []
    for model in settings.trained:  # real masks of trained weights on the same data
        console.rule(f"trained network: {model}, ImageNet weights")
        imagenet = replace(settings, weights="imagenet")
        trained.append(run_model(model, imagenet, designs, cache, console, densities=["real"]))
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    results = gather(outcomes, settings, time.perf_counter() - start, created, trained)
    for m in results["models"].values():
        if m.get("gpu_note"):
            console.print(f"note: {m['gpu_note']}", markup=False, highlight=False)
    if settings.trajectory is not None:
        results["trajectory"] = read_trajectory(settings.trajectory)
    if settings.sweep is not None:
        results["sweep"] = sweep_section(settings.sweep, out / "sweep", console)
    write_results(results, out / "results.json")
    page = render(results, out)
    console.print(f"report: {page}  ·  results: {out / 'results.json'}  ·  {results['wall_seconds']:.0f} s")
    return results
