"""Simulate every layer of a trace on a set of designs (docs/cost-model.md), with what every
comparison needs: each design's dense twin (its organisation with skipping off) and the dense
designs of equal area (its extra area spent on more PEs or more buffer, on its own organisation
and every shipped one with its own PEs and memory: from the design alone, docs/cost-model.md §1).
Counts are made once per layer and shared by all designs; layers are independent, so large traces
are split between worker processes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from functools import cache

from agos.arch.area import AreaReport, design_area
from agos.arch.load import ORGANISATIONS, LoadedArch, load_organisation
from agos.arch.schema import Arch, Organisation
from agos.cost.model import LayerContext, PassCost, SharedPasses, simulate_layer
from agos.cost.vector import VectorCost, vector_cost
from agos.progress import progress_bar
from agos.workers import default_workers, process_pool
from agos.workload.counts import LayerWork, layer_work
from agos.workload.masks import LayerMasks
from agos.workload.passes import LABELS, PASSES, SPANS

BUFFER_STEP = 64 * 1024  # bytes added per step when equal-area area goes to the buffer
# dense MACs per step × simulated designs above which worker processes pay for their start: each
# costs about 2.5-3 CPU-s (spawn, torch, agos, numba's cached kernels; resnet50 at 224 px with 24
# designs: 1 worker 4.6 CPU-s at batch 8 (2 workers: 10.3), 13.5 at batch 32 (2 workers: 19.7))
PARALLEL_WORK = 4e12


@dataclass
class LayerResult:
    name: str
    kind: str
    passes: dict[str, PassCost]


@dataclass
class DesignResult:
    loaded: LoadedArch
    area: AreaReport
    role: str  # "design" | "twin" | "equal-area"
    layers: list[LayerResult] = field(default_factory=list)
    vector: VectorCost = field(default_factory=VectorCost)
    twin: str | None = None  # the name of its dense twin
    always_on: str | None = None  # the name of its every-feature-on variant (the oracle's)

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def arch(self) -> Arch:
        return self.loaded.arch

    def total(self, attr: str, passes: Iterable[str] = PASSES) -> float:
        return sum(getattr(layer.passes[p], attr) for layer in self.layers for p in passes)

    def cycles(self, span: str) -> int:
        """Cycles of a span; "iteration" includes the vector unit's non-convolution work."""
        conv = int(self.total("cycles", SPANS[span]))
        return conv + (self.vector.cycles if span == "iteration" else 0)

    def seconds(self, span: str) -> float:
        return self.cycles(span) / (self.arch.clock_ghz * 1e9)

    def energy_breakdown(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for layer in self.layers:
            for cost in layer.passes.values():
                for key, value in cost.energy_breakdown.items():
                    out[key] = out.get(key, 0.0) + value
        e = self.loaded.energy
        for key, value in self.vector.energy_pj(e, self.area.static_mw, self.arch.clock_ghz).items():
            out[key] = out.get(key, 0.0) + value
        return out

    def energy_pj(self) -> float:
        return sum(self.energy_breakdown().values())


@dataclass
class NetworkResult:
    designs: dict[str, DesignResult]  # requested first (in order), then twins, then equal-area
    requested: list[str]
    equal_area: dict[str, list[str]]  # design → its equal-area dense candidates
    layer_summaries: list = field(default_factory=list)  # what `summarise_layer` returned per layer

    def design(self, name: str) -> DesignResult:
        return self.designs[name]

    def twin_of(self, name: str) -> DesignResult:
        d = self.designs[name]
        return self.designs[d.twin] if d.twin is not None else d

    def best_equal_area(self, name: str) -> DesignResult | None:
        cands = [self.designs[c] for c in self.equal_area.get(name, [])]
        return min(cands, key=lambda c: (c.seconds("iteration"), c.name)) if cands else None


# -- the designs a run needs ------------------------------------------------------------------

# What a shipped organisation contributes to the equal-area candidates of a design on another one:
# how its rows are synchronised, dispatched, filled and drained, and their operand stores. The PE
# array, precision, clock, memory and vector unit stay the design's own.
SYNC_FIELDS = (
    "name",
    "description",
    "sync",
    "dispatch",
    "fill_drain",
    "fill_drain_cycles",
    "pe_store_entries",
)


@cache
def shipped_organisations() -> dict[str, Organisation]:
    return {
        name: Organisation.model_validate(load_organisation(name, "shipped organisations")[0])
        for name in ORGANISATIONS
    }


def _behaviour(org: Organisation) -> Organisation:
    return org.model_copy(update={"description": ""})


def _bytes(n: int) -> str:
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} B"


def _differences(org: Organisation) -> list[str]:
    """The fields (array and buffer aside) in which `org` differs from the shipped organisation
    of its name, as `field=value`; none when it has no shipped namesake."""
    shipped = shipped_organisations().get(org.name)
    if shipped is None:
        return []
    mine = org.model_dump(exclude={"description"})
    theirs = shipped.model_dump(exclude={"description"})

    def walk(a: dict, b: dict, path: str) -> list[str]:
        out = []
        for k, v in a.items():
            if f"{path}{k}" in ("pe_array", "memory.global_buffer_bytes"):
                continue
            if isinstance(v, dict):
                out += walk(v, b.get(k, {}), f"{path}{k}.")
            elif v != b.get(k):
                out.append(f"{path}{k}={v}")
        return out

    return walk(mine, theirs, "")


def dense_name(org: Organisation) -> str:
    """The name of the dense design on `org`: `dense@systolic` for a shipped organisation as it
    ships, else with its PE array and buffer (and any other field that differs from the shipped
    namesake), e.g. `dense@systolic[35x34 PEs, 2 MiB]`, so that no two different dense designs
    share a plain name."""
    shipped = shipped_organisations().get(org.name)
    if shipped is not None and _behaviour(org) == _behaviour(shipped):
        return f"dense@{org.name}"
    a = org.pe_array
    tags = [f"{a.rows}x{a.cols} PEs", _bytes(org.memory.global_buffer_bytes), *_differences(org)]
    return f"dense@{org.name}[{', '.join(tags)}]"


def _dense(loaded: LoadedArch, org: Organisation, source: str) -> LoadedArch:
    twin = loaded.arch.twin()
    arch = twin.model_copy(update={"organisation": org, "name": dense_name(org)})
    return loaded.with_arch(arch, source)


def _key(arch: Arch) -> str:
    """Identity of a design's behaviour (its names and descriptions aside)."""
    blank = {"name": "", "description": "", "preset": None, "organisation": _behaviour(arch.organisation)}
    return arch.model_copy(update=blank).model_dump_json()


def equal_area_organisations(loaded: LoadedArch) -> list[Organisation]:
    """The organisations a design's equal-area dense candidates are built on, from the design
    alone: its own, and every shipped organisation's synchronisation (SYNC_FIELDS) with the
    design's PE array, precision, clock, memory and vector unit."""
    own = loaded.arch.organisation
    out = [own]
    for shipped in shipped_organisations().values():
        org = own.model_copy(update={f: getattr(shipped, f) for f in SYNC_FIELDS})
        if all(_behaviour(org) != _behaviour(o) for o in out):
            out.append(org)
    return out


def _furthest(fits) -> int:
    """The largest k ≥ 0 with fits(k), for fits true at 0 and monotone (area grows with every step):
    doubling, then bisection — a few dozen area evaluations, where walking one step at a time
    took millions for a large target (a 4096×4096 array with a compaction crossbar)."""
    hi = 1
    while fits(hi):
        hi *= 2
    lo = hi // 2 if hi > 1 else 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def equal_area_candidates(target: float, base: LoadedArch) -> list[LoadedArch]:
    """Dense designs on `base`'s organisation whose area is at most `target`: more PEs (one row or
    column at a time, the smaller side first) or more buffer (64 KiB at a time), each as far as
    the area allows. The plain dense twin when no step fits; nothing when even it is larger."""
    return [
        _dense(base, org, f"{base.source}, dense, {tag}")
        for org, tag in grown_organisations(base.arch.twin(), base.area, target)
    ]


def grown_organisations(arch: Arch, table, target: float) -> list[tuple[Organisation, str]]:
    """`arch`'s organisation with more PEs (one row or column at a time, the smaller side first)
    and with more buffer (64 KiB at a time), each as far as `target` mm² allows, tagged with what
    grew ('twin' when nothing fits); nothing when `arch` itself is larger."""
    if design_area(arch, table).total_mm2 > target:
        return []
    org = arch.organisation

    def area(o) -> float:
        return design_area(arch.model_copy(update={"organisation": o}), table).total_mm2

    r0, c0 = org.pe_array.rows, org.pe_array.cols

    def pes(k: int) -> tuple[int, int]:  # rows, cols after k steps of one row or column, smaller first
        lo, hi = min(r0, c0), max(r0, c0)
        if k <= hi - lo:
            return (r0 + k, c0) if r0 <= c0 else (r0, c0 + k)
        j = k - (hi - lo)
        return hi + (j + 1) // 2, hi + j // 2

    def with_pes(k: int):
        r, c = pes(k)
        return org.model_copy(update={"pe_array": org.pe_array.model_copy(update={"rows": r, "cols": c})})

    def with_buffer(k: int):
        size = org.memory.global_buffer_bytes + k * BUFFER_STEP
        return org.model_copy(update={"memory": org.memory.model_copy(update={"global_buffer_bytes": size})})

    rows, cols = pes(_furthest(lambda k: area(with_pes(k)) <= target))
    steps = _furthest(lambda k: area(with_buffer(k)) <= target)
    buffer = org.memory.global_buffer_bytes + steps * BUFFER_STEP
    pe_org = org.model_copy(update={"pe_array": org.pe_array.model_copy(update={"rows": rows, "cols": cols})})
    buf_org = org.model_copy(update={"memory": org.memory.model_copy(update={"global_buffer_bytes": buffer})})
    grown = ((pe_org, f"{rows}x{cols} PEs"), (buf_org, _bytes(buffer)))
    return [(o, "twin" if o == org else tag) for o, tag in grown]


def always_on(arch: Arch) -> Arch | None:
    """The design with every feature always on (`bypass: never`), for the oracle; None when the
    bypass rule has nothing to decide on it."""
    sk, st = arch.skipping, arch.storage
    decides = sk.skips_work or "compressed" in (st.activations, st.gradients)
    if arch.ideal or sk.bypass != "rule" or not decides:
        return None
    return arch.model_copy(
        update={"name": f"{arch.name}~always-on", "skipping": sk.model_copy(update={"bypass": "never"})}
    )


def plan_designs(
    requested: list[LoadedArch], oracle: bool = False
) -> tuple[list[DesignResult], dict[str, list[str]]]:
    """The requested designs, their dense twins and the equal-area dense candidates, deduplicated
    by behaviour (a requested design that is some other's twin is that twin). Each design's
    candidates come from that design alone (`equal_area_organisations`), whatever else is run.
    With `oracle`, each design the bypass rule decides on also runs with every feature always on
    (role "always-on"), for its per-layer oracle."""
    by_key: dict[str, DesignResult] = {}
    ordered: list[DesignResult] = []
    names: set[str] = set()

    def add(loaded: LoadedArch, role: str) -> DesignResult:
        key = _key(loaded.arch)
        if key not in by_key:
            name, n = loaded.name, 1
            while name in names:  # another design of the same name behaves differently
                n += 1
                name = f"{loaded.name}#{n}"
            if name != loaded.name:
                loaded = loaded.with_arch(loaded.arch.model_copy(update={"name": name}))
            names.add(name)
            result = DesignResult(loaded, design_area(loaded.arch, loaded.area), role)
            by_key[key] = result
            ordered.append(result)
        return by_key[key]

    for loaded in requested:
        add(loaded, "design")
    for loaded in requested:
        twin = add(_dense(loaded, loaded.arch.organisation, f"{loaded.source}, skipping off"), "twin")
        by_key[_key(loaded.arch)].twin = twin.name if twin.name != loaded.name else None
    equal: dict[str, list[str]] = {}
    for loaded in requested:
        if loaded.arch.ideal:
            continue
        target = by_key[_key(loaded.arch)].area.total_mm2
        cands = []
        for org in equal_area_organisations(loaded):
            base = _dense(loaded, org, f"{loaded.source}, on {org.name}")
            for cand in equal_area_candidates(target, base):
                cands.append(add(cand, "equal-area").name)
        equal[by_key[_key(loaded.arch)].name] = list(dict.fromkeys(cands))
    if oracle:
        for loaded in requested:
            variant = always_on(loaded.arch)
            if variant is not None:
                on = add(loaded.with_arch(variant, f"{loaded.source}, every feature always on"), "always-on")
                by_key[_key(loaded.arch)].always_on = on.name
    return ordered, equal


# -- simulation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaskSource:
    """Where the layers' masks come from. Pickled to worker processes as (trace path, density
    text, seed), which each worker loads and resolves itself; in this process a trace and a
    `DensitySource` already resolved (`MaskSource.resolved_from`) are used as they are."""

    trace: str
    density: str = "real"
    seed: int = 0
    loaded: object | None = field(default=None, compare=False, repr=False)  # capture.trace.Trace
    source: object | None = field(default=None, compare=False, repr=False)  # density.select.DensitySource

    @classmethod
    def resolved_from(cls, trace, source) -> MaskSource:
        return cls(str(trace.path), source.text, source.seed, trace, source)

    def __getstate__(self) -> dict:
        return {
            "trace": self.trace,
            "density": self.density,
            "seed": self.seed,
            "loaded": None,
            "source": None,
        }

    def layers(self, pick: Callable[[int], bool] | None = None) -> Iterator[tuple[int, LayerMasks]]:
        """(index, masks) of the picked layers, in trace order. Real masks are unpacked only for
        the picked layers; statistical ones are drawn in order (a layer's masks can depend on an
        earlier layer's activation) and then picked."""
        from agos.capture.trace import load_trace
        from agos.density.real import real_masks
        from agos.density.select import resolve_density

        trace = self.loaded if self.loaded is not None else load_trace(self.trace, verify=False)
        source = self.source if self.source is not None else resolve_density(trace, self.density, self.seed)
        if source.kind == "real":
            for i, layer in enumerate(trace.layers):
                if pick is None or pick(i):
                    yield i, real_masks(trace, layer)
            return
        for i, masks in enumerate(source.masks(trace)):
            if pick is None or pick(i):
                yield i, masks


def _simulate_layers(
    indexed: Iterable[tuple[int, LayerMasks]],
    designs: list[tuple[LoadedArch, AreaReport]],
    summarise: Callable[[LayerMasks, LayerWork], object] | None,
    total: int,
):
    shared = SharedPasses()
    out = []
    with progress_bar("simulate", total=total) as advance:
        for i, masks in indexed:
            work = layer_work(masks)
            ctx = LayerContext(masks, work)
            per = [simulate_layer(ctx, loaded, area, shared) for loaded, area in designs]
            out.append(
                (i, masks.name, masks.geometry.kind, per, summarise(masks, work) if summarise else None)
            )
            if total:
                advance(1, masks.name)
    return out


def _worker(source: MaskSource, designs, indices: frozenset[int], summarise):
    return _simulate_layers(source.layers(indices.__contains__), designs, summarise, 0)


def partition_layers(manifest) -> list[frozenset[int]]:
    """The layers of each geometry together (they share their mask-independent passes), largest
    groups (by dense MACs) first, so that workers taking the next group as they finish balance."""
    groups: dict[object, list[int]] = {}
    for i, layer in enumerate(manifest.layers):
        groups.setdefault(layer.geometry, []).append(i)
    ordered = sorted(groups.items(), key=lambda kv: -kv[0].macs * len(kv[1]))
    return [frozenset(members) for _, members in ordered]


def simulate_network(
    layers: Iterable[LayerMasks] | MaskSource,
    requested: list[LoadedArch],
    manifest,
    count: int | None = None,
    summarise: Callable[[LayerMasks, LayerWork], object] | None = None,
    workers: int | None = None,
    dense_macs: float | None = None,
    oracle: bool = False,
) -> NetworkResult:
    """One pass over the layers: masks → exact work counts → every design. `summarise(masks, work)`
    (a module-level function, so workers can run it) is kept per layer for other reports.
    `workers`: processes to split the layers between (default: the cores, up to 2, when the trace's
    dense MACs times the simulated designs exceed PARALLEL_WORK; else 1). `oracle`: also every
    feature always on, for the per-layer oracle (`oracle_cycles`)."""
    planned, equal = plan_designs(requested, oracle)
    designs = [(d.loaded, d.area) for d in planned]
    if workers is None:
        big = dense_macs is not None and dense_macs * len(designs) > PARALLEL_WORK
        workers = default_workers() if big and isinstance(layers, MaskSource) else 1
    if workers > 1 and isinstance(layers, MaskSource):
        parts = partition_layers(manifest)
        with process_pool(workers) as pool, progress_bar("simulate", total=len(manifest.layers)) as advance:
            futures = [pool.submit(_worker, layers, designs, part, summarise) for part in parts]
            rows = []
            for future in as_completed(futures):
                done = future.result()
                rows += done
                advance(len(done), done[-1][1] if done else "")
        rows.sort(key=lambda r: r[0])
    else:
        indexed = layers.layers() if isinstance(layers, MaskSource) else enumerate(layers)
        rows = _simulate_layers(indexed, designs, summarise, count or 0)
    return _assemble(planned, equal, rows, requested, manifest)


def _assemble(
    planned: list[DesignResult], equal: dict[str, list[str]], rows, requested, manifest
) -> NetworkResult:
    """Rows of (index, layer, kind, per-design passes, summary) → the network's result."""
    for _, name, kind, per, _ in rows:
        for d, passes in zip(planned, per, strict=True):
            d.layers.append(LayerResult(name, kind, passes))
    for d in planned:
        d.vector = vector_cost(manifest, d.arch)
    return NetworkResult(
        designs={d.name: d for d in planned},
        requested=[r.name for r in requested],
        equal_area=equal,
        layer_summaries=[row[4] for row in rows],
    )


def count_layers(source: MaskSource) -> list[LayerContext]:
    """The shareable part of a simulation: every layer's masks and exact work counts (and, filled
    lazily, the design-independent structures built from them). A sweep makes these once per
    (trace, density) and simulates every design point on them with `simulate_counted`."""
    return [LayerContext(masks, layer_work(masks)) for _, masks in source.layers()]


def simulate_counted(
    contexts: list[LayerContext],
    requested: list[LoadedArch],
    manifest,
    equal_area: bool = True,
    oracle: bool = False,
) -> NetworkResult:
    """`simulate_network` on layers counted once: the same designs (twins and, with `equal_area`,
    the equal-area dense candidates), the same per-layer passes, the same results. Each call times
    its passes afresh (views of the contexts share only their design-independent structures), so a
    result never depends on which points ran before it."""
    planned, equal = plan_designs(requested, oracle)
    if not equal_area:
        planned = [d for d in planned if d.role != "equal-area"]
        equal = {}
    designs = [(d.loaded, d.area) for d in planned]
    shared = SharedPasses()
    rows = []
    for i, ctx in enumerate(contexts):
        view = ctx.view()
        per = [simulate_layer(view, loaded, area, shared) for loaded, area in designs]
        ctx.absorb(view)
        rows.append((i, ctx.masks.name, ctx.masks.geometry.kind, per, None))
    return _assemble(planned, equal, rows, requested, manifest)


# -- comparisons ------------------------------------------------------------------------------


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def oracle_cycles(net: NetworkResult, name: str) -> dict[str, int] | None:
    """The per-layer oracle of a design (docs/cost-model.md §11): in every layer and pass the best
    of the rule's choice, every feature on and the dense twin, from their simulated cycles — an
    upper bound on any bypass rule, never a design. None when it was not simulated."""
    d = net.designs[name]
    if d.always_on is None:
        return None
    on, twin = net.designs[d.always_on], net.twin_of(name)
    best = {
        p: sum(
            min(a.passes[p].cycles, b.passes[p].cycles, c.passes[p].cycles)
            for a, b, c in zip(d.layers, on.layers, twin.layers, strict=True)
        )
        for p in PASSES
    }
    out = {span: sum(best[p] for p in passes) for span, passes in SPANS.items()}
    out["iteration"] += d.vector.cycles
    return out


def speedups(net: NetworkResult, name: str) -> dict:
    """Every figure a design's row reports: speedups over its twin, the MAC-bound ratios, the best
    equal-area dense, and the flags that explain anything above the bound."""
    d = net.designs[name]
    twin = net.twin_of(name)
    over_twin = {s: _ratio(twin.cycles(s), d.cycles(s)) for s in SPANS}
    mac_bound = {s: _ratio(d.total("dense_macs", SPANS[s]), d.total("design_macs", SPANS[s])) for s in SPANS}
    best = net.best_equal_area(name)
    flags = flags_of(net, name, over_twin, mac_bound)
    return {
        "twin": twin.name,
        "speedup_over_twin": over_twin,
        "mac_bound_speedup": mac_bound,
        "best_dense_equal_area": best.name if best is not None else None,
        "speedup_over_best_dense_equal_area": (
            _ratio(best.seconds("iteration"), d.seconds("iteration")) if best is not None else None
        ),
        "flags": flags,
        "oracle_speedup_over_twin": _oracle_ratios(net, name),
        "always_on_speedup_over_twin": _always_on_ratios(net, name),
        "bypassed_passes": sum(1 for layer in d.layers for p in PASSES if layer.passes[p].bypassed),
    }


def _oracle_ratios(net: NetworkResult, name: str) -> dict[str, float | None] | None:
    oracle = oracle_cycles(net, name)
    if oracle is None:
        return None
    twin = net.twin_of(name)
    return {s: _ratio(twin.cycles(s), oracle[s]) for s in SPANS}


def _always_on_ratios(net: NetworkResult, name: str) -> dict[str, float | None] | None:
    d = net.designs[name]
    if d.always_on is None:
        return None
    twin, on = net.twin_of(name), net.designs[d.always_on]
    return {s: _ratio(twin.cycles(s), on.cycles(s)) for s in SPANS}


COMPONENT_WORDS = {
    "floor": "MAC floor (its MACs over its PEs)",
    "imbalance": "compute imbalance (PEs the mapping or the schedule leaves idle)",
    "fill_drain": "pipeline fill/drain",
    "delivery": "buffer-delivery stalls",
    "exposed": "exposed DRAM transfers",
    "vector": "vector-unit work",
}


def cycle_components(d: DesignResult, span: str) -> dict[str, int]:
    """A span's cycles split into what a flag can name: the MAC floor (⌈design MACs / PEs⌉ per
    layer and pass), the imbalance above it, fill/drain, delivery stalls, exposed DRAM transfers
    (and, in iteration, the vector unit). They add up to `d.cycles(span)`."""
    out = dict.fromkeys(COMPONENT_WORDS, 0)
    pes = d.arch.pes
    for layer in d.layers:
        for p in SPANS[span]:
            cost = layer.passes[p]
            c = cost.components
            floor = -(-int(cost.design_macs) // pes)
            out["floor"] += floor
            out["imbalance"] += cost.cycles - floor
            for k in ("fill_drain", "delivery", "exposed"):
                out[k] += c.get(k, 0)
                out["imbalance"] -= c.get(k, 0)
    if span == "iteration":
        out["vector"] = d.vector.cycles
    return out


def above_bound_flag(net: NetworkResult, name: str, span: str, speedup: float, bound: float) -> str:
    """Why a span beats its MAC-bound ratio B (docs/cost-model.md §10): the twin's cycles T and the
    design's D split into components t_c, d_c; T / D > B means Σ (t_c / B − d_c) > 0, and the
    component with the largest t_c / B − d_c is the one that shrank more than the work."""
    twin = cycle_components(net.twin_of(name), span)
    mine = cycle_components(net.designs[name], span)
    comp = max(COMPONENT_WORDS, key=lambda k: twin[k] / bound - mine[k])
    t, m = twin[comp], mine[comp]
    return (
        f"{LABELS[span]} {speedup:.2f}× over the twin exceeds its MAC bound {bound:.2f}×: the twin's "
        f"{COMPONENT_WORDS[comp]} shrinks from {t / 1e6:.3f} to {m / 1e6:.3f} Mcycles, not to the "
        f"{t / bound / 1e6:.3f} of the MAC ratio"
    )


def flags_of(net: NetworkResult, name: str, over_twin: dict, mac_bound: dict) -> list[str]:
    """One line per thing a reader must know about a design's figures; every span (FWD, BWD-D,
    BWD-W, backprop, iteration) above its MAC-bound ratio is one of them."""
    d = net.designs[name]
    twin = net.twin_of(name)
    out: list[str] = []
    if d.arch.ideal:
        out.append("the mapping bound: no memory, no fill/drain, perfect balance (not a design)")
    elif d.arch.skipping.any_stream and d.arch.skipping.window is None:
        out.append("unbounded lookahead: no published design skips without a window")
    for span in SPANS:
        s, bound = over_twin.get(span), mac_bound.get(span)
        if s is None or bound is None or s <= bound * (1 + 1e-9) or d.arch.ideal or twin is d:
            continue
        out.append(above_bound_flag(net, name, span, s, bound))
    for p in PASSES:
        compute = d.total("compute_cycles", (p,))
        stall = sum(layer.passes[p].components.get("delivery", 0) for layer in d.layers)
        if compute and stall > 0.5 * compute:
            out.append(f"{p}: buffer delivery, not compute, sets {100 * stall / compute:.0f}% of its cycles")
    if d.vector.note:
        out.append(d.vector.note)
    return out


def lookahead_sensitivity(
    layers_factory: Callable[[], Iterable[LayerMasks]],
    requested: list[LoadedArch],
    manifest,
    windows: list[int | str],
) -> dict[str, dict[str, dict[str, float | None]]]:
    """Speedup over the twin of every stream-skipping design at each lookahead window:
    {design: {window: {span: speedup}}}."""
    skippers = [d for d in requested if d.arch.skipping.any_stream and not d.arch.ideal]
    variants = []
    for d in skippers:
        for w in windows:
            arch = d.arch.model_copy(
                update={
                    "name": f"{d.name}~L{w}",
                    "skipping": d.arch.skipping.model_copy(update={"lookahead": w}),
                }
            )
            variants.append(d.with_arch(type(arch).model_validate(arch.model_dump()), f"{d.source}, L={w}"))
    if not variants:
        return {}
    twins = []
    seen = set()
    for d in skippers:
        key = _key(d.arch.twin())
        if key not in seen:
            seen.add(key)
            twins.append(d.with_arch(d.arch.twin(), f"{d.source}, skipping off"))
    designs = [(v, design_area(v.arch, v.area)) for v in [*variants, *twins]]
    rows = _simulate_layers(enumerate(layers_factory()), designs, None, 0)
    results: dict[str, DesignResult] = {}
    for loaded, area in designs:
        results[loaded.name] = DesignResult(loaded, area, "variant")
    for _, name, kind, per, _ in rows:
        for (loaded, _), passes in zip(designs, per, strict=True):
            results[loaded.name].layers.append(LayerResult(name, kind, passes))
    for r in results.values():
        r.vector = vector_cost(manifest, r.arch)
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for d in skippers:
        twin = results[d.arch.twin().name]
        out[d.name] = {
            str(w): {s: _ratio(twin.cycles(s), results[f"{d.name}~L{w}"].cycles(s)) for s in SPANS}
            for w in windows
        }
    return out


def mapping_bound_violations(net: NetworkResult) -> list[str]:
    """Passes that take fewer cycles than their mapping bound (there must be none)."""
    bad = []
    for d in net.designs.values():
        for layer in d.layers:
            for p, cost in layer.passes.items():
                if cost.cycles < cost.mapping_bound:
                    bad.append(f"{d.name} {layer.name} {p}: {cost.cycles} < {cost.mapping_bound}")
    return bad
