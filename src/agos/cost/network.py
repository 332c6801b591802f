"""Simulate every layer of a trace on a set of designs (docs/cost-model.md), with what every
comparison needs: each design's dense twin (its organisation with skipping off) and the dense
designs of equal area (its extra area spent on more PEs or more buffer, on every organisation in
the run). Counts are made once per layer and shared by all designs; layers are independent, so
large traces are split between worker processes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context

from agos.arch.area import AreaReport, design_area
from agos.arch.load import LoadedArch
from agos.arch.schema import Arch
from agos.cost.model import LayerContext, PassCost, SharedPasses, simulate_layer
from agos.cost.vector import VectorCost, vector_cost
from agos.progress import progress_bar
from agos.workload.counts import LayerWork, layer_work
from agos.workload.masks import LayerMasks
from agos.workload.passes import PASSES, SPANS

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


def _with_org(loaded: LoadedArch, arch: Arch, name: str, source: str) -> LoadedArch:
    return loaded.with_arch(arch.model_copy(update={"name": name}), source)


def _key(arch: Arch) -> str:
    """Identity of a design's behaviour (its name aside)."""
    return arch.model_copy(update={"name": "", "description": "", "preset": None}).model_dump_json()


def equal_area_candidates(target: float, base: LoadedArch) -> list[LoadedArch]:
    """Dense designs on `base`'s organisation whose area is at most `target`: more PEs (one row or
    column at a time, the smaller side first) or more buffer (64 KiB at a time), each as far as
    the area allows. The plain dense twin when no step fits; nothing when even it is larger."""
    twin = base.arch.twin()
    if design_area(twin, base.area).total_mm2 > target:
        return []
    org = twin.organisation

    def area(o) -> float:
        return design_area(twin.model_copy(update={"organisation": o}), base.area).total_mm2

    rows, cols = org.pe_array.rows, org.pe_array.cols
    while True:
        nr, nc = (rows + 1, cols) if rows <= cols else (rows, cols + 1)
        grown = org.model_copy(update={"pe_array": org.pe_array.model_copy(update={"rows": nr, "cols": nc})})
        if area(grown) > target:
            break
        rows, cols = nr, nc
    buffer = org.memory.global_buffer_bytes
    while True:
        grown = org.model_copy(
            update={"memory": org.memory.model_copy(update={"global_buffer_bytes": buffer + BUFFER_STEP})}
        )
        if area(grown) > target:
            break
        buffer += BUFFER_STEP
    out = []
    pe_org = org.model_copy(update={"pe_array": org.pe_array.model_copy(update={"rows": rows, "cols": cols})})
    buf_org = org.model_copy(update={"memory": org.memory.model_copy(update={"global_buffer_bytes": buffer})})
    for o, tag in ((pe_org, f"{rows}x{cols} PEs"), (buf_org, f"{buffer // 1024} KiB")):
        arch = twin.model_copy(update={"organisation": o})
        same = o == org
        name = twin.name if same else f"{twin.name}[{tag}]"
        out.append(_with_org(base, arch, name, f"{base.source}, dense, {'twin' if same else tag}"))
    return out


def plan_designs(requested: list[LoadedArch]) -> tuple[list[DesignResult], dict[str, list[str]]]:
    """The requested designs, their dense twins and the equal-area dense candidates, deduplicated
    by behaviour (a requested design that is some other's twin is that twin)."""
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
    organisations: list[LoadedArch] = []
    for loaded in requested:
        twin = add(loaded.with_arch(loaded.arch.twin(), f"{loaded.source}, skipping off"), "twin")
        by_key[_key(loaded.arch)].twin = twin.name if twin.name != loaded.name else None
        if all(o.arch.organisation != loaded.arch.organisation for o in organisations):
            organisations.append(loaded)
    equal: dict[str, list[str]] = {}
    for loaded in requested:
        if loaded.arch.ideal:
            continue
        target = by_key[_key(loaded.arch)].area.total_mm2
        cands = []
        for base in organisations:
            for cand in equal_area_candidates(target, base):
                cands.append(add(cand, "equal-area").name)
        equal[by_key[_key(loaded.arch)].name] = list(dict.fromkeys(cands))
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


def _start_worker() -> None:
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle, in one line
    os.environ["AGOS_PROGRESS"] = "0"
    torch.set_num_threads(1)  # one core per worker


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
) -> NetworkResult:
    """One pass over the layers: masks → exact work counts → every design. `summarise(masks, work)`
    (a module-level function, so workers can run it) is kept per layer for other reports.
    `workers`: processes to split the layers between (default: the cores, up to 2, when the trace's
    dense MACs times the simulated designs exceed PARALLEL_WORK; else 1)."""
    planned, equal = plan_designs(requested)
    designs = [(d.loaded, d.area) for d in planned]
    if workers is None:
        big = dense_macs is not None and dense_macs * len(designs) > PARALLEL_WORK
        workers = min(2, os.cpu_count() or 1) if big and isinstance(layers, MaskSource) else 1
    if workers > 1 and isinstance(layers, MaskSource):
        parts = partition_layers(manifest)
        ctx = get_context("spawn")
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start_worker)
        try:
            with progress_bar("simulate", total=len(manifest.layers)) as advance:
                futures = [pool.submit(_worker, layers, designs, part, summarise) for part in parts]
                rows = []
                for future in as_completed(futures):
                    done = future.result()
                    rows += done
                    advance(len(done), done[-1][1] if done else "")
        except BaseException:  # Ctrl-C or a failure: stop the workers now, not after their groups
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
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
    contexts: list[LayerContext], requested: list[LoadedArch], manifest, equal_area: bool = True
) -> NetworkResult:
    """`simulate_network` on layers counted once: the same designs (twins and, with `equal_area`,
    the equal-area dense candidates), the same per-layer passes, the same results. Each call times
    its passes afresh (views of the contexts share only their design-independent structures), so a
    result never depends on which points ran before it."""
    planned, equal = plan_designs(requested)
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
    }


COMPONENT_WORDS = {
    "fill_drain": "pipeline fill/drain",
    "delivery": "buffer-delivery stalls",
    "exposed": "exposed DRAM transfers",
    "work": "compute imbalance",
}


def flags_of(net: NetworkResult, name: str, over_twin: dict, mac_bound: dict) -> list[str]:
    d = net.designs[name]
    twin = net.twin_of(name)
    out: list[str] = []
    if d.arch.ideal:
        out.append("the mapping bound: no memory, no fill/drain, perfect balance (not a design)")
    elif d.arch.skipping.any_stream and d.arch.skipping.window is None:
        out.append("unbounded lookahead: no published design skips without a window")
    for span in ("backprop", "iteration"):
        s, bound = over_twin.get(span), mac_bound.get(span)
        if s is None or bound is None or s <= bound * (1 + 1e-9) or d.arch.ideal or twin is d:
            continue
        passes = SPANS[span]
        shrink = {}
        for comp in COMPONENT_WORDS:
            t = sum(layer.passes[p].components.get(comp, 0) for layer in twin.layers for p in passes)
            m = sum(layer.passes[p].components.get(comp, 0) for layer in d.layers for p in passes)
            shrink[comp] = (t - m, t, m)
        comp, (_saved, t, m) = max(shrink.items(), key=lambda kv: kv[1][0])
        out.append(
            f"{span} {s:.2f}× over the twin exceeds its MAC bound {bound:.2f}×: the twin's "
            f"{COMPONENT_WORDS[comp]} ({t / 1e6:.2f} Mcycles) shrink to {m / 1e6:.2f} Mcycles"
        )
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
