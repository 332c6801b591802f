"""Run the evaluation for every model and write `results.json` and `index.html` into the output
directory; finished stages live under `cache/` and are reused when the run is repeated."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from pathlib import Path

from rich.console import Console

from agos.arch.load import load_archs
from agos.errors import AgosError
from agos.fileio import output_lock
from agos.record import read_record
from agos.report.html import render
from agos.reproduce.pipeline import check_settings, ready, start_model
from agos.reproduce.records import OutputSparsity, Results
from agos.reproduce.results import gather, write_results
from agos.reproduce.settings import Settings
from agos.stages.cache import Cache
from agos.stages.records import read_trajectory
from agos.stages.resolve import ResolvedRun
from agos.sweep.run import check_sweep
from agos.sweep.section import sweep_section
from agos.workers import default_workers, process_pool


def read_output_sparsity(settings: Settings) -> OutputSparsity | None:
    """A finished search (`--search DIR`) and phase diagram (`--phase DIR`), read strictly; one line
    when a folder holds neither."""
    from agos.search.front import SearchResult
    from agos.search.phase import PhaseResult

    if settings.search is None and settings.phase is None:
        return None
    found: dict = {}
    for option, folder, name, kind in (
        ("--search", settings.search, "search.json", SearchResult),
        ("--phase", settings.phase, "phase.json", PhaseResult),
    ):
        if folder is None:
            continue
        path = Path(folder) / name
        if not path.is_file():
            raise AgosError(f"{option} {folder}: no {name} there (made by agos {option[2:]} --out)")
        found[option[2:]] = read_record(kind, path, f"{option} {name}")
        found[f"{option[2:]}_dir"] = str(Path(folder).resolve())
    return OutputSparsity(**found)


def _with_plots(section: OutputSparsity, out: Path) -> OutputSparsity:
    """The answer at a glance from the search's fronts, its front plots and the phase diagram."""
    from agos.search.plot import plot_answer, plot_phase

    folder = out / "output-sparsity"
    folder.mkdir(parents=True, exist_ok=True)
    update: dict = {}
    if section.search is not None:
        update["answer_plot"] = str(plot_answer(section.search.fronts, folder / "answer.png"))
        plots = sorted(Path(section.search_dir).glob("front-*.png"))
        update["front_plots"] = [str(p) for p in plots]
    if section.phase is not None:
        update["phase_plot"] = str(plot_phase(section.phase, folder / "phase.png"))
    return section.model_copy(update=update)


def reproduce(
    settings: Settings, out: Path, console: Console | None = None, workers: int | None = None
) -> Results:
    """`workers`: processes the analyses run in while the next model is captured (default: the
    cores, up to 4; 1: everything here, one stage after the other). The figures do not depend on it."""
    console = console or Console(stderr=True)
    runs = check_settings(settings)  # fail before any long computation
    trajectory = read_trajectory(settings.trajectory) if settings.trajectory is not None else None
    output_sparsity = read_output_sparsity(settings)
    if settings.sweep is not None:
        check_sweep(settings.sweep)  # every field, trace, design and axis value, before any capture
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AgosError(f"{out} exists and is not a directory")
    with output_lock(out, "reproduce"):
        results = _run(settings, runs, out, console, default_workers(4) if workers is None else workers)
        if trajectory is not None:
            results.trajectory = trajectory
        if settings.sweep is not None:
            results.sweep = sweep_section(settings.sweep, out / "sweep", console)
        if output_sparsity is not None:
            results.output_sparsity = _with_plots(output_sparsity, out)
        write_results(results, out / "results.json")
        page = render(results.model_dump(mode="json"), out)
        console.print(f"report: {page}  ·  results: {out / 'results.json'}  ·  {results.wall_seconds:.0f} s")
        return results


def _run(
    settings: Settings, runs: dict[str, ResolvedRun], out: Path, console: Console, workers: int
) -> Results:
    cache = Cache(out / "cache")
    cache.sweep()
    start = time.perf_counter()
    designs = load_archs(settings.archs)  # parsed once for every model and density
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(process_pool(workers)) if workers > 1 else None
        for _ in range(workers if pool is not None else 0):
            pool.submit(ready)  # the workers start (imports, threads) while the first model is captured
        pending = []
        for i, model in enumerate(settings.models, 1):
            console.rule(f"[{i}/{len(settings.models)}] {model}")
            pending.append(start_model(runs[model], settings, designs, cache, console, pool=pool))
        pending_trained = []
        for model in settings.trained:  # real masks of trained weights on the same data
            console.rule(f"trained network: {model}, ImageNet weights")
            run = runs[f"trained:{model}"]
            pending_trained.append(
                start_model(run, settings, designs, cache, console, ["real"], pool, plotted=frozenset())
            )
        outcomes = [p.finish() for p in pending]
        trained = [p.finish() for p in pending_trained]
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    results = gather(outcomes, settings, time.perf_counter() - start, created, trained)
    for m in results.models.values():
        if m.gpu_note:
            console.print(f"note: {m.gpu_note}", markup=False, highlight=False)
    return results
