"""Run the evaluation for every model and write `results.json` and `index.html` into the output
directory; finished stages live under `cache/` and are reused when the run is repeated."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from rich.console import Console

from agos.arch.load import load_archs
from agos.errors import AgosError
from agos.fileio import output_lock
from agos.report.html import render
from agos.reproduce.pipeline import check_settings, run_model
from agos.reproduce.records import Results
from agos.reproduce.results import gather, write_results
from agos.reproduce.settings import Settings
from agos.stages.cache import Cache
from agos.stages.records import read_trajectory
from agos.stages.resolve import ResolvedRun
from agos.sweep.section import sweep_section
from agos.sweep.spec import load_spec


def reproduce(settings: Settings, out: Path, console: Console | None = None) -> Results:
    console = console or Console(stderr=True)
    runs = check_settings(settings)  # fail before any long computation
    trajectory = read_trajectory(settings.trajectory) if settings.trajectory is not None else None
    if settings.sweep is not None:
        load_spec(settings.sweep)  # schema errors before any capture; traces are checked when it runs
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AgosError(f"{out} exists and is not a directory")
    with output_lock(out, "reproduce"):
        results = _run(settings, runs, out, console)
        if trajectory is not None:
            results.trajectory = trajectory
        if settings.sweep is not None:
            results.sweep = sweep_section(settings.sweep, out / "sweep", console)
        write_results(results, out / "results.json")
        page = render(results.model_dump(mode="json"), out)
        console.print(f"report: {page}  ·  results: {out / 'results.json'}  ·  {results.wall_seconds:.0f} s")
        return results


def _run(settings: Settings, runs: dict[str, ResolvedRun], out: Path, console: Console) -> Results:
    cache = Cache(out / "cache")
    cache.sweep()
    start = time.perf_counter()
    designs = load_archs(settings.archs)  # parsed once for every model and density
    outcomes = []
    for i, model in enumerate(settings.models, 1):
        console.rule(f"[{i}/{len(settings.models)}] {model}")
        outcomes.append(run_model(runs[model], settings, designs, cache, console))
    trained = []
    for model in settings.trained:  # real masks of trained weights on the same data
        console.rule(f"trained network: {model}, ImageNet weights")
        trained.append(run_model(runs[f"trained:{model}"], settings, designs, cache, console, ["real"]))
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    results = gather(outcomes, settings, time.perf_counter() - start, created, trained)
    for m in results.models.values():
        if m.gpu_note:
            console.print(f"note: {m.gpu_note}", markup=False, highlight=False)
    return results
