"""Run the evaluation for every model and write `results.json` and `index.html` into the output
directory; finished stages live under `cache/` and are reused when the run is repeated."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from rich.console import Console

from agos.errors import AgosError
from agos.inputs.models import resolve_model
from agos.report.html import render
from agos.reproduce.pipeline import Settings, run_model
from agos.reproduce.results import gather, write_results
from agos.reproduce.stages import StageCache


def reproduce(settings: Settings, out: Path, console: Console | None = None) -> dict:
    console = console or Console(stderr=True)
    if not settings.models:
        raise AgosError("--models needs at least one model")
    for model in settings.models:  # fail before any long computation
        resolve_model(model)
        settings.weights_for(model)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AgosError(f"{out} exists and is not a directory")
    cache = StageCache(out / "cache")
    cache.sweep()
    start = time.perf_counter()
    outcomes = []
    for i, model in enumerate(settings.models, 1):
        console.rule(f"[{i}/{len(settings.models)}] {model}")
        outcomes.append(run_model(model, settings, cache, console))
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    results = gather(outcomes, settings, time.perf_counter() - start, created)
    write_results(results, out / "results.json")
    page = render(results, out)
    console.print(f"report: {page}  ·  results: {out / 'results.json'}  ·  {results['wall_seconds']:.0f} s")
    return results
