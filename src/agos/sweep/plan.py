"""Expand a sweep spec into points: (trace, design@organisation, axis values, density), each with
its design resolved (axis values applied by dotted path and validated by the arch schema) and the
hash of its inputs, which names its cache file. Points that break a constraint are kept aside with
the reason, so that they are counted, never silently dropped.

A bare preset (`agos`) means that preset on every shipped organisation, as everywhere in agos, so
it gives one point per organisation; an `organisation` axis instead places every design on each of
its values."""

from __future__ import annotations

import copy
import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from agos.arch.area import design_area
from agos.arch.load import ORGANISATIONS, PRESETS, LoadedArch, expand, load_arch, load_archs
from agos.arch.schema import Arch, Organisation
from agos.errors import AgosError
from agos.inputs.options import RunOptions
from agos.stages.cache import Cache, announcer, stage_key
from agos.sweep.records import TraceColumns
from agos.sweep.spec import SweepSpec

ORG_AXIS = "organisation"
NOT_SWEPT = (
    "name",
    "description",
    "preset",
    "energy",
    "area",
    "organisation.name",
    "organisation.description",
)


class TraceRef(TraceColumns):
    """A trace as the table records it (its columns), and whether statistical densities apply."""

    activations: bool  # has ReLU activations

    @property
    def path(self) -> str:
        return self.trace

    @property
    def sha256(self) -> str:
        return self.trace_sha256

    def columns(self) -> TraceColumns:
        return TraceColumns.model_validate(self.model_dump(exclude={"activations"}))


@dataclass(frozen=True)
class Point:
    key: str  # the cache key of the point (`point_key`)
    trace: int  # index into Plan.traces
    design: str  # e.g. agos@systolic
    organisation: str
    axes: dict
    density: str
    seed: int
    loaded: LoadedArch
    area_mm2: float


@dataclass
class Plan:
    traces: list[TraceRef]
    points: list[Point]
    skipped: list[dict] = field(default_factory=list)  # {design, trace, axes, density, area_mm2, reason}
    axes: list[str] = field(default_factory=list)
    grid_size: int = 0  # axis combinations before sampling
    density_notes: dict[tuple[int, str], str] = field(default_factory=dict)  # (trace, density) → notes


def axis_path(key: str, where: str) -> tuple[str, ...]:
    """The design field an axis names: `pe_array.rows` and `memory.dram_gbps` are organisation
    fields (the organisation is never a privilege of one design), `skipping.lookahead` a design's."""
    parts = tuple(key.split("."))
    if not all(parts):
        raise AgosError(f"{where}: field 'axes.{key}': not a dotted field path")
    if parts[0] == "organisation":
        path = parts
    elif parts[0] in Organisation.model_fields:
        path = ("organisation", *parts)
    elif parts[0] in Arch.model_fields:
        path = parts
    else:
        fields = sorted({*Organisation.model_fields, *Arch.model_fields} - {"name", "description", "preset"})
        raise AgosError(
            f"{where}: field 'axes.{key}': no design field '{parts[0]}' (fields: {', '.join(fields)})"
        )
    if ".".join(path) in NOT_SWEPT or ".".join(parts) in NOT_SWEPT:
        raise AgosError(f"{where}: field 'axes.{key}': names a label or a table, not a swept quantity")
    return path


def _check_path(dump: dict, path: tuple[str, ...], key: str, where: str) -> None:
    node = dump
    for i, part in enumerate(path):
        if not isinstance(node, dict) or part not in node:
            parent = ".".join(path[:i]) or "the design"
            options = ", ".join(sorted(node)) if isinstance(node, dict) else "none: it is a value"
            raise AgosError(
                f"{where}: field 'axes.{key}': {parent} has no field '{part}' (fields: {options})"
            )
        node = node[part]
    if isinstance(node, dict):
        raise AgosError(
            f"{where}: field 'axes.{key}': is a group of fields; name one (e.g. {key}.{next(iter(node))})"
        )


def apply_axes(loaded: LoadedArch, values: dict, paths: dict[str, tuple[str, ...]], where: str) -> LoadedArch:
    """The design with each axis value set at its path, validated by the arch schema."""
    if not values:
        return loaded
    dump = loaded.arch.model_dump(mode="json")
    data = copy.deepcopy(dump)
    for key, value in values.items():
        node = data
        for part in paths[key][:-1]:
            node = node[part]
        node[paths[key][-1]] = value
    try:
        arch = Arch.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        named = [k for k in values if loc.startswith(".".join(paths[k]))] or list(values)
        shown = ", ".join(f"{k}={values[k]!r}" for k in named)
        raise AgosError(
            f"{where}: field 'axes.{named[0]}': {shown} on {loaded.name}: {first['msg']}"
        ) from None
    tag = ", ".join(f"{k}={v}" for k, v in values.items())
    return loaded.with_arch(arch, f"{loaded.source}, {tag}")


def point_key(trace_sha256: str, loaded: LoadedArch, density: str, seed: int, equal_area: bool) -> str:
    """The cache key of a point (`stages.cache.stage_key`): everything its result depends on — the
    trace (its manifest checksum covers the masks' checksum), the resolved design and its energy and
    area tables, the density source, whether equal-area designs are compared, and the agos version."""
    return stage_key("point", point_inputs(trace_sha256, loaded, density, seed, equal_area))


def point_inputs(trace_sha256: str, loaded: LoadedArch, density: str, seed: int, equal_area: bool) -> dict:
    return {
        "trace": trace_sha256,
        "arch": loaded.arch.model_dump(mode="json"),
        "tables": loaded.sha256,
        "density": density,
        "seed": seed,
        "equal_area": equal_area,
    }


def trace_ref(path: str, where: str) -> TraceRef:
    from agos.capture.trace import load_trace

    if not Path(path).is_dir():
        raise AgosError(
            f"{where}: field 'traces': {path} is not a trace directory (paths are relative to the cwd)"
        )
    trace = load_trace(path)
    m, p = trace.manifest, trace.provenance
    return TraceRef(
        trace=path,
        trace_sha256=m.manifest_sha256,
        model=p.model,
        weights=p.weights.source,
        weights_sha256=p.weights.sha256,
        data=p.data.source,
        batch_size=p.batch_size,
        image_size=p.image_size,
        activations=bool(m.activations),
    )


def capture_models(spec: SweepSpec, cache: Cache, where: str, console=None) -> list[str]:
    """Capture each `models:` entry once into the cache, keyed on its content (the model's code,
    the weights' bytes, the images read), so a repeated sweep reuses it and a retrained weights file
    is captured again; returns the trace paths."""
    from agos.stages.capture import capture_and_prove
    from agos.stages.resolve import resolve_run

    paths = []
    for i, m in enumerate(spec.models):
        try:
            resolved = resolve_run(RunOptions.model_validate(m.model_dump()))
        except AgosError as exc:
            raise AgosError(f"{where}: field 'models.{i}': {exc}") from None
        proven = capture_and_prove(resolved, cache, proof=False, say=announcer(console, m.model))
        paths.append(str(proven.trace_dir))
    return paths


def _designs(spec: SweepSpec, where: str) -> list[tuple[str, str | None]]:
    """(design reference, organisation axis value), one per organisation: bare presets on every
    shipped organisation, or every design on each value of an `organisation` axis."""
    refs = list(dict.fromkeys(spec.archs))
    orgs = spec.axis_values().get(ORG_AXIS)
    out: list[tuple[str, str | None]] = []
    for ref in refs:
        if orgs is not None:
            base = ref.rpartition("@")[0] if "@" in ref else ref
            out.extend((f"{base}@{o}", str(o)) for o in orgs)
        else:
            try:
                out.extend((r, None) for r in expand(ref))
            except AgosError as exc:
                raise AgosError(f"{where}: field 'archs': {exc}") from None
    return list(dict.fromkeys(out))


def _load(ref: str, where: str, field_name: str) -> LoadedArch:
    try:
        return load_arch(ref)
    except AgosError as exc:
        raise AgosError(f"{where}: field '{field_name}': {exc}") from None


def _reference_area(spec: SweepSpec, where: str) -> float | None:
    eq = spec.constraints.equal_area_to
    if eq is None:
        return None
    try:
        loaded = load_archs(eq.design)
    except AgosError as exc:
        raise AgosError(f"{where}: field 'constraints.equal_area_to.design': {exc}") from None
    if len(loaded) != 1:
        raise AgosError(
            f"{where}: field 'constraints.equal_area_to.design': name one design, e.g. "
            f"{eq.design}@{ORGANISATIONS[0]} (a bare preset is on every organisation)"
        )
    return design_area(loaded[0].arch, loaded[0].area).total_mm2


def _violation(spec: SweepSpec, area: float, reference: float | None) -> str | None:
    bounds = spec.constraints.area_mm2
    if bounds is not None and bounds.min is not None and area < bounds.min:
        return f"area {area:.3f} mm² < min {bounds.min:g}"
    if bounds is not None and bounds.max is not None and area > bounds.max:
        return f"area {area:.3f} mm² > max {bounds.max:g}"
    eq = spec.constraints.equal_area_to
    if reference is not None and eq is not None and abs(area - reference) > eq.tolerance * reference:
        return f"area {area:.3f} mm² not within {eq.tolerance:.0%} of {eq.design}'s {reference:.3f} mm²"
    return None


def combinations(spec: SweepSpec) -> tuple[list[dict], int]:
    """The axis combinations (the organisation axis aside, which places designs): the whole grid,
    or a seeded sample of it without replacement, in grid order. Returns (combinations, grid size)."""
    values = {k: v for k, v in spec.axis_values().items() if k != ORG_AXIS}
    keys = list(values)
    sizes = [len(values[k]) for k in keys]
    total = 1
    for s in sizes:
        total *= s
    if spec.sample is None:
        picked = range(total)
    else:
        picked = sorted(random.Random(spec.sample.seed).sample(range(total), min(spec.sample.n, total)))
    out = []
    for index in picked:
        combo, rest = {}, index
        for k, s in zip(reversed(keys), reversed(sizes), strict=True):
            combo[k] = values[k][rest % s]
            rest //= s
        out.append({k: combo[k] for k in keys})
    return out, total


def build_plan(spec: SweepSpec, where: str, extra_traces: list[str] = ()) -> Plan:
    """Every point of the spec, checked before any work: traces load, densities apply to them,
    designs resolve, axis paths exist, every axis value passes the arch schema."""
    from agos.capture.trace import load_trace
    from agos.density.select import resolve_density

    traces = [trace_ref(p, where) for p in dict.fromkeys([*spec.traces, *extra_traces])]
    densities = spec.density_specs()
    notes: dict[tuple[int, str], str] = {}
    for ti, t in enumerate(traces):
        loaded_trace = load_trace(t.path, verify=False)
        for d in densities:
            try:
                source = resolve_density(loaded_trace, d, spec.density_seed)
            except AgosError as exc:
                raise AgosError(f"{where}: field 'densities': {d} on {t.path}: {exc}") from None
            if source.notes:
                notes[(ti, d)] = "; ".join(source.notes)
    placed = _designs(spec, where)
    field_of = {ref: ("axes.organisation" if org is not None else "archs") for ref, org in placed}
    designs = [_load(ref, where, field_of[ref]) for ref, _ in placed]
    org_values = {d.name: org for d, (_, org) in zip(designs, placed, strict=True)}
    names = [d.name for d in designs]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise AgosError(f"{where}: field 'archs': names the same design twice: {', '.join(dupes)}")
    axis_keys = [k for k in spec.axes if k != ORG_AXIS]
    paths = {k: axis_path(k, where) for k in axis_keys}
    for d in designs:
        dump = d.arch.model_dump(mode="json")
        for k in axis_keys:
            _check_path(dump, paths[k], k, where)
    combos, grid = combinations(spec)
    reference = _reference_area(spec, where)
    plan = Plan(traces, [], [], list(spec.axes), grid, notes)
    seen: set[str] = set()
    for combo, design in itertools.product(combos, designs):
        loaded = apply_axes(design, combo, paths, where)
        area = design_area(loaded.arch, loaded.area).total_mm2
        axes = dict(combo)
        if ORG_AXIS in spec.axes:
            axes = {ORG_AXIS: org_values[design.name], **axes}
        why = _violation(spec, area, reference)
        for ti, t in enumerate(traces):
            for density in densities:
                if why is not None:
                    plan.skipped.append(
                        {"design": loaded.name, "trace": t.path, "axes": axes, "density": density,
                         "area_mm2": area, "reason": why}
                    )  # fmt: skip
                    continue
                key = point_key(t.sha256, loaded, density, spec.density_seed, spec.equal_area)
                if key in seen:
                    continue
                seen.add(key)
                plan.points.append(
                    Point(key, ti, loaded.name, loaded.arch.organisation.name, axes, density,
                          spec.density_seed, loaded, area)
                )  # fmt: skip
    return plan


__all__ = ["ORGANISATIONS", "PRESETS", "Plan", "Point", "TraceRef", "build_plan", "capture_models"]
