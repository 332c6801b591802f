"""One side of a comparison, loaded once into a typed object: what it is is read from its files
(analysis.json or an Analysis --json, a trace folder's manifest.json, a reproduce run's
results.json), and each kind becomes the same shape — entries of per-layer sparsity, its totals
and per-design cycles and speedups, each with its provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agos.analysis.model import Analysis
from agos.analysis.sparsity import LayerSparsity
from agos.errors import AgosError
from agos.inputs.provenance import Provenance, provenance_label
from agos.record import parse_json, read_record

Kind = Literal["analysis", "trace", "results"]
KINDS: dict[str, str] = {"analysis": "an analysis", "trace": "a trace", "results": "a reproduce run"}
SPAN_NAMES = ("fwd", "bwd_data", "bwd_weight", "backprop", "iteration")
PASS_NAMES = ("fwd", "bwd_data", "bwd_weight")
MANIFEST, ANALYSIS, RESULTS = "manifest.json", "analysis.json", "results.json"
FORMATS = {"agos-analysis": "analysis", "agos-results": "results"}


@dataclass(frozen=True)
class Totals:
    """MAC-weighted zero fractions of a whole network, and the section they were read from."""

    source: Literal["sparsity", "realised"]
    x_zero_frac: float
    dy_zero_frac: float
    dx_skip_frac: float


@dataclass(frozen=True)
class DesignView:
    """What a comparison reads of one simulated design."""

    cycles: dict[str, int]  # per span
    speedup_over_twin: dict[str, float | None]  # per span
    speedup_over_best_dense_equal_area: float | None
    layers: dict[str, dict[str, int]] | None  # layer → pass → cycles (where the side has them)


@dataclass(frozen=True)
class Entry:
    """One network's figures under one density source."""

    provenance: Provenance
    density: str  # the density source's label
    layers: list[LayerSparsity] | None
    totals: Totals | None
    designs: dict[str, DesignView] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return provenance_label(self.provenance, self.density)


@dataclass(frozen=True)
class Side:
    path: str
    kind: Kind
    entries: dict[str, Entry]  # "" for an analysis or a trace; model (and density) for a reproduce run


def detect(path: Path) -> Kind:
    """The kind of a file or folder, from its files; anything else is one line."""
    if path.is_dir():
        for name, kind in ((MANIFEST, "trace"), (RESULTS, "results"), (ANALYSIS, "analysis")):
            if (path / name).is_file():
                return kind
        raise AgosError(
            f"{path} is neither a trace ({MANIFEST}), a reproduce run ({RESULTS}) nor an analysis "
            f"stage ({ANALYSIS})"
        )
    if not path.exists():
        raise AgosError(f"{path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AgosError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    fmt = parse_json(text, str(path)).get("format")
    if fmt not in FORMATS:
        raise AgosError(f"{path} is neither an agos analysis (--json, analysis.json) nor a results.json")
    return FORMATS[fmt]  # type: ignore[return-value]


def _design_views(analysis: Analysis) -> dict[str, DesignView]:
    sim = analysis.simulation
    if sim is None:
        return {}
    out = {}
    for name in sim.requested:
        d = sim.designs[name]
        layers = None
        if d.layers is not None:
            layers = {layer.name: {p: getattr(layer, p).cycles for p in PASS_NAMES} for layer in d.layers}
        out[name] = DesignView(
            cycles={s: getattr(d.cycles, s) for s in SPAN_NAMES},
            speedup_over_twin={s: getattr(d.speedup_over_twin, s) for s in SPAN_NAMES}
            if d.speedup_over_twin is not None
            else dict.fromkeys(SPAN_NAMES),
            speedup_over_best_dense_equal_area=d.speedup_over_best_dense_equal_area,
            layers=layers,
        )
    return out


def entry_of(analysis: Analysis) -> Entry:
    """An Analysis as one entry: per-layer sparsity from its sparsity section, the totals from it
    or else from the realised section, and the designs it simulated."""
    totals = None
    if analysis.sparsity is not None:
        t = analysis.sparsity.totals
        totals = Totals("sparsity", t.x_zero_frac, t.dy_zero_frac, t.dx_skip_frac)
    elif analysis.realised is not None:
        r = analysis.realised
        totals = Totals("realised", r.x_zero_frac, r.dy_zero_frac, r.dx_skip_frac)
    density = analysis.density.label if analysis.density is not None else analysis.provenance.density_source
    notes = tuple(analysis.density.notes) if analysis.density is not None else ()
    return Entry(
        provenance=analysis.provenance,
        density=density,
        layers=list(analysis.sparsity.layers) if analysis.sparsity is not None else None,
        totals=totals,
        designs=_design_views(analysis),
        notes=notes,
    )


def _trace_analysis(trace) -> Analysis:
    """The sparsity section of a trace's own masks (what `agos sparsity` computes)."""
    from agos.analysis.analyse import analyse
    from agos.density.select import resolve_density

    return analyse(trace, resolve_density(trace, "real", 0), ["sparsity"])


def _results_entries(results) -> dict[str, Entry]:
    """Every model of a reproduce run under every density it shows, and its trained networks."""
    out: dict[str, Entry] = {}

    def add(key: str, prov: Provenance, density: str, fig, notes) -> None:
        r = fig.sparsity
        designs = {
            name: DesignView(
                cycles={s: getattr(d.cycles, s) for s in SPAN_NAMES},
                speedup_over_twin={s: getattr(d.speedup_over_twin, s) for s in SPAN_NAMES}
                if d.speedup_over_twin is not None
                else dict.fromkeys(SPAN_NAMES),
                speedup_over_best_dense_equal_area=d.speedup_over_best_dense_equal_area,
                layers=None,
            )
            for name, d in fig.designs.items()
        }
        totals = Totals("realised", r.x_zero_frac, r.dy_zero_frac, r.dx_skip_frac)
        out[key] = Entry(prov, density, None, totals, designs, tuple(notes))

    for group, models in (("", results.models), ("trained ", results.trained)):
        for name, m in models.items():
            add(f"{group}{name}", m.provenance, m.provenance.density_source, m, m.density_notes)
            for label, d in m.densities.items():
                if d.density == "real":  # the model's own figures, added above
                    continue
                add(f"{group}{name} [{label}]", m.provenance, d.density_label, d, d.density_notes)
    return out


def load_side(thing) -> Side:
    """A side from a path (its kind detected), or from an Analysis, a Trace or a Results in memory."""
    from agos.capture.trace import Trace, load_trace
    from agos.reproduce.records import Results

    if isinstance(thing, Analysis):
        return Side(thing.trace or "(in memory)", "analysis", {"": entry_of(thing)})
    if isinstance(thing, Trace):
        return Side(str(thing.path), "trace", {"": entry_of(_trace_analysis(thing))})
    if isinstance(thing, Results):
        return Side("(in memory)", "results", _results_entries(thing))
    if not isinstance(thing, str | Path):
        raise AgosError(
            f"compare takes a path, an Analysis, a Trace or a Results, not {type(thing).__name__}"
        )
    path = Path(thing)
    kind = detect(path)
    if kind == "trace":
        return Side(str(path), kind, {"": entry_of(_trace_analysis(load_trace(path)))})
    if kind == "results":
        file = path / RESULTS if path.is_dir() else path
        return Side(str(path), kind, _results_entries(read_record(Results, file)))
    file = path / ANALYSIS if path.is_dir() else path
    return Side(str(path), kind, {"": entry_of(read_record(Analysis, file))})
