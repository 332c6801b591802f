"""Analyse a trace under one density source as a cached stage: the `Analysis` (its JSON dump,
`analysis.json`) and, when asked, its plots. Keyed on the trace's stage, the density and its seed,
the designs' hashes (design and tables), the sections and the Analysis format."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from agos.analysis import model as analysis_model
from agos.analysis.analyse import analyse
from agos.analysis.model import Analysis
from agos.arch.load import LoadedArch
from agos.capture.trace import load_trace
from agos.density.select import resolve_density
from agos.record import read_record
from agos.report import simulate as simulate_report
from agos.report import sparsity as sparsity_report
from agos.stages.cache import Cache

ANALYSIS = "analysis.json"


def analyse_trace(
    trace_dir: Path,
    density: str,
    designs: list[LoadedArch],
    seed: int,
    out: Path,
    sections: Sequence[str],
    plots: bool = True,
) -> Analysis:
    """One `Analysis` of a trace under one density, written into `out` as analysis.json, with the
    plots of what it holds unless `plots` is False."""
    trace = load_trace(trace_dir)
    analysis = analyse(trace, resolve_density(trace, density, seed), list(sections), designs)
    analysis_model.write(analysis, out / ANALYSIS)
    if plots:
        if analysis.simulation is not None:
            simulate_report.plot(analysis, out / "simulate.png")
        if analysis.sparsity is not None:
            sparsity_report.plot(analysis, out / "sparsity.png")
            sparsity_report.plot_correlation(analysis, out / "correlation.png")
    return analysis


def analysis_inputs(
    trace_key: str, density: str, designs: list[LoadedArch], seed: int, sections: Sequence[str], plots: bool
) -> dict:
    return {
        "trace": trace_key,
        "density": density,
        "seed": seed,
        "archs": {d.name: d.sha256 for d in designs},
        "sections": sorted(sections),
        "plots": plots,
        "analysis": analysis_model.format_id(),  # what analysis.json holds (its schema's hash too)
    }


def analysis_key(
    cache: Cache,
    trace_key: str,
    density: str,
    designs: list[LoadedArch],
    seed: int,
    sections: Sequence[str],
    plots: bool = True,
) -> str:
    return cache.key("analysis", analysis_inputs(trace_key, density, designs, seed, sections, plots))


def analysis_stage(
    cache: Cache,
    trace_key: str,
    trace_dir: Path,
    density: str,
    designs: list[LoadedArch],
    seed: int,
    sections: Sequence[str],
    plots: bool = True,
    say: Callable[[str, bool], None] = lambda what, cached: None,
) -> Path:
    """The stage folder of one analysis (built unless cached)."""
    inputs = analysis_inputs(trace_key, density, designs, seed, sections, plots)
    key = cache.key("analysis", inputs)
    say(f"counts and simulation, {density}", cache.done(key))
    return cache.build(
        key, inputs, lambda out: analyse_trace(trace_dir, density, designs, seed, out, sections, plots)
    )


def read_analysis(stage: Path) -> Analysis:
    """The analysis a stage wrote (typed; a file of another format or version is one line)."""
    return read_record(Analysis, stage / ANALYSIS)
