"""`Comparison`: two sides (`compare.sides`) figure by figure — per layer (matched by name) and in
total, the zero fractions of X, dY and skippable dX, and per design and span its simulated cycles
and speedups — each as A, B, the change B − A and the ratio B / A. What one side has and the other
lacks is listed, never dropped. Its JSON Schema is `comparison.schema.json` (`make schema`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from agos import __version__
from agos.compare.sides import KINDS, PASS_NAMES, SPAN_NAMES, Entry, Side, load_side
from agos.errors import AgosError
from agos.fileio import write_json
from agos.inputs.provenance import Provenance
from agos.record import Record

FORMAT = "agos-comparison"
VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("comparison.schema.json")


class Change(Record):
    """One figure on both sides; `delta` is B − A, `ratio` B / A (null where undefined: a side
    lacks the figure, or A is 0)."""

    a: float | None
    b: float | None
    delta: float | None
    ratio: float | None

    @classmethod
    def of(cls, a: float | None, b: float | None) -> Change:
        both = a is not None and b is not None
        return cls(
            a=a,
            b=b,
            delta=b - a if both else None,
            ratio=b / a if both and a != 0 else None,
        )


class LayerChange(Record):
    """One layer present on both sides. dX skip is null on a side where the layer runs no BWD-D."""

    name: str
    kind: str
    macs: Change  # dense MACs of one pass
    x_zero_frac: Change
    dy_zero_frac: Change
    dx_skip_frac: Change


class TotalsChange(Record):
    """The MAC-weighted network totals, and the section of each side they were read from."""

    source: Literal["sparsity", "realised"]
    x_zero_frac: Change
    dy_zero_frac: Change
    dx_skip_frac: Change


class SpanChanges(Record):
    fwd: Change
    bwd_data: Change
    bwd_weight: Change
    backprop: Change
    iteration: Change


class PassChanges(Record):
    """Simulated cycles of one layer's passes."""

    name: str
    fwd: Change
    bwd_data: Change
    bwd_weight: Change


class DesignChange(Record):
    name: str
    cycles: SpanChanges
    speedup_over_twin: SpanChanges
    speedup_over_best_dense_equal_area: Change
    layers: list[PassChanges] | None = None  # where both sides have per-layer figures
    layers_only_a: list[str] = Field(default_factory=list)
    layers_only_b: list[str] = Field(default_factory=list)


class SideInfo(Record):
    """Where one side's figures came from."""

    label: str  # provenance label: model, weights, data, batch, image size, seed, density source
    provenance: Provenance
    density: str


class EntryComparison(Record):
    """One network (a reproduce run: one model under one density) on both sides."""

    name: str  # "" for two analyses or traces
    a: SideInfo
    b: SideInfo
    layers: list[LayerChange] = Field(default_factory=list)
    layers_only_a: list[str] = Field(default_factory=list)
    layers_only_b: list[str] = Field(default_factory=list)
    totals: TotalsChange | None = None
    designs: list[DesignChange] = Field(default_factory=list)
    designs_only_a: list[str] = Field(default_factory=list)
    designs_only_b: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  # what one side has and the other lacks


class Comparison(Record):
    format: Literal["agos-comparison"] = FORMAT
    version: Literal[1] = VERSION
    agos_version: str = __version__
    kind: Literal["analysis", "trace", "results"]
    a: str  # the paths compared
    b: str
    entries: list[EntryComparison]
    entries_only_a: list[str] = Field(default_factory=list)
    entries_only_b: list[str] = Field(default_factory=list)


def _unique(names: list[str]) -> list[str]:
    """Layer names as keys; a repeated name gets '#2', '#3', … in order."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def _matched(a: list[str], b: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Names on both sides (in A's order), only in A, only in B."""
    bs = set(b)
    both = [n for n in a if n in bs]
    return both, [n for n in a if n not in bs], [n for n in b if n not in set(a)]


def _dx(layer) -> float | None:
    return layer.dx_skip_frac if layer.needs_bwd_data else None


def _layers(a: Entry, b: Entry) -> tuple[list[LayerChange], list[str], list[str]]:
    if a.layers is None or b.layers is None:
        return [], [], []
    ka, kb = _unique([s.name for s in a.layers]), _unique([s.name for s in b.layers])
    la, lb = dict(zip(ka, a.layers, strict=True)), dict(zip(kb, b.layers, strict=True))
    both, only_a, only_b = _matched(ka, kb)
    rows = [
        LayerChange(
            name=n,
            kind=la[n].kind if la[n].kind == lb[n].kind else f"{la[n].kind} → {lb[n].kind}",
            macs=Change.of(la[n].macs, lb[n].macs),
            x_zero_frac=Change.of(la[n].x_zero_frac, lb[n].x_zero_frac),
            dy_zero_frac=Change.of(la[n].dy_zero_frac, lb[n].dy_zero_frac),
            dx_skip_frac=Change.of(_dx(la[n]), _dx(lb[n])),
        )
        for n in both
    ]
    return rows, only_a, only_b


def _design(name: str, a, b) -> DesignChange:
    def spans(fa: dict, fb: dict) -> SpanChanges:
        return SpanChanges(**{s: Change.of(fa[s], fb[s]) for s in SPAN_NAMES})

    out = DesignChange(
        name=name,
        cycles=spans(a.cycles, b.cycles),
        speedup_over_twin=spans(a.speedup_over_twin, b.speedup_over_twin),
        speedup_over_best_dense_equal_area=Change.of(
            a.speedup_over_best_dense_equal_area, b.speedup_over_best_dense_equal_area
        ),
    )
    if a.layers is not None and b.layers is not None:
        both, only_a, only_b = _matched(list(a.layers), list(b.layers))
        out.layers = [
            PassChanges(name=n, **{p: Change.of(a.layers[n][p], b.layers[n][p]) for p in PASS_NAMES})
            for n in both
        ]
        out.layers_only_a, out.layers_only_b = only_a, only_b
    return out


def _info(e: Entry) -> SideInfo:
    return SideInfo(label=e.label, provenance=e.provenance, density=e.density)


def compare_entries(name: str, a: Entry, b: Entry) -> EntryComparison:
    layers, only_a, only_b = _layers(a, b)
    notes = []
    if (a.layers is None) != (b.layers is None):
        has = "A" if a.layers is not None else "B"
        notes.append(f"per-layer sparsity only on side {has} (the other has no sparsity section)")
    if a.layers is None and b.layers is None and a.totals is not None and b.totals is not None:
        notes.append(
            "sparsity in total only: neither side has per-layer sparsity (agos sparsity --json has it)"
        )
    totals = None
    if a.totals is not None and b.totals is not None:
        source = a.totals.source if a.totals.source == b.totals.source else "realised"
        ta, tb = a.totals, b.totals
        if a.totals.source != b.totals.source:
            notes.append(
                f"totals: A from its {ta.source} section, B from its {tb.source} section "
                "(the same MAC-weighted means for real masks)"
            )
        totals = TotalsChange(
            source=source,
            **{
                k: Change.of(getattr(ta, k), getattr(tb, k))
                for k in ("x_zero_frac", "dy_zero_frac", "dx_skip_frac")
            },
        )
    elif (a.totals is None) != (b.totals is None):
        notes.append(f"sparsity totals only on side {'A' if a.totals is not None else 'B'}")
    designs, d_only_a, d_only_b = _matched(list(a.designs), list(b.designs))
    changes = [_design(n, a.designs[n], b.designs[n]) for n in designs]
    for d in changes:
        if (a.designs[d.name].layers is None) != (b.designs[d.name].layers is None):
            notes.append(f"{d.name}: per-layer cycles on one side only")
    return EntryComparison(
        name=name,
        a=_info(a),
        b=_info(b),
        layers=layers,
        layers_only_a=only_a,
        layers_only_b=only_b,
        totals=totals,
        designs=changes,
        designs_only_a=d_only_a,
        designs_only_b=d_only_b,
        notes=notes,
    )


def compare_sides(a: Side, b: Side) -> Comparison:
    """Two loaded sides compared; two kinds, or two sides with nothing in common, are one line."""
    if a.kind != b.kind:
        raise AgosError(
            f"cannot compare {KINDS[a.kind]} ({a.path}) with {KINDS[b.kind]} ({b.path}): "
            "give two of the same kind"
        )
    names, only_a, only_b = _matched(list(a.entries), list(b.entries))
    if not names:
        raise AgosError(
            f"{a.path} and {b.path} share no model: "
            f"A has {', '.join(a.entries)}; B has {', '.join(b.entries)}"
        )
    entries = [compare_entries(n, a.entries[n], b.entries[n]) for n in names]
    if not any(e.totals is not None or e.layers or e.designs for e in entries):
        raise AgosError(
            f"{a.path} and {b.path} have no figure in common (no sparsity on both sides, no design simulated "
            "on both)"
        )
    return Comparison(
        kind=a.kind, a=a.path, b=b.path, entries=entries, entries_only_a=only_a, entries_only_b=only_b
    )


def compare(a, b) -> Comparison:
    """Compare two analyses, traces or reproduce runs (paths, or Analysis / Trace / Results)."""
    return compare_sides(load_side(a), load_side(b))


def write(comparison: Comparison, path: Path | str) -> None:
    write_json(comparison.model_dump(mode="json"), path)
