"""The RTL row against the cost model and the reference, item by item, on a one-row array.

A pass of a layer on a design is mapped by the reference (`agos.reference.mapping`: its items, in
execution order, with the taps of each stream); every dispatched item becomes an `RtlItem` — its
stream bits, random values where they are nonzero, random column operands (zero where a BWD-W
PE's own dY is zero) and its output-skip fields — and the row runs them back to back. The design
is placed on a one-row lockstep array (R = 1, C columns, no fill/drain, a buffer and bandwidth that
never bound), so a fold is one item and the pass's compute cycles are the row's schedule:

- `rtl`: the row's cycles per item (Amaranth simulation), and its results against the dense dot
  products (skipping is lossless);
- `walk`: the row's rules in plain Python (`agos.rtl.timing.walk`);
- `reference`: the reference's fold times (`agos.reference.array.lockstep_tile`);
- `spec`: docs/cost-model.md §2.3/§3 restated from the item's own bits (`timing.model_duration`);
- `fast`: the fast model's compute cycles of the pass (`agos.cost.model.simulate_pass`).

Only single-stream rows are modelled: every group of the layer must fill its tiles (channels per
group ≥ C, no packed groups), and the pass must run (BWD-D of a first layer does not)."""

from dataclasses import dataclass, field

import numpy as np

from agos.arch.load import LoadedArch, load_arch
from agos.cost.model import LayerContext, layer_area, simulate_pass
from agos.reference.array import duration, lockstep_tile, row_work
from agos.reference.mapping import PassMapping
from agos.rtl.harness import RtlItem, run_row
from agos.rtl.row import MODE_COMPACT, MODE_JOIN, MODE_STREAM, RowConfig
from agos.rtl.timing import Walk, expected_results, model_duration, walk
from agos.workload.counts import layer_work
from agos.workload.masks import LayerMasks
from agos.workload.passes import PASSES


@dataclass(frozen=True)
class Feature:
    """A feature as the row runs it: the design whose pass exercises it, and the row's hardware."""

    name: str
    preset: str
    passes: tuple[str, ...]
    stream: bool = False
    join: bool = False
    outputs: str = "none"
    skipping: dict = field(default_factory=dict)  # per-pass overrides of the preset's skipping
    bypass: bool = False  # run the dense twin's items on the row with every mode bit off

    def row(self, cols: int, lookahead: int, broadcast: int, banks: int, pe: str = "int") -> RowConfig:
        return RowConfig(
            cols=cols,
            stream=self.stream,
            lookahead=lookahead,
            join=self.join,
            broadcast=broadcast,
            outputs=self.outputs,
            domain=banks * cols,
            pe=pe,
        )


FEATURES = {
    f.name: f
    for f in (
        Feature("dense", "dense", PASSES),
        Feature("stream", "input-skip", PASSES, stream=True),
        Feature("join", "agos", ("bwd_weight",), stream=True, join=True),
        Feature("static", "agos", ("bwd_data",), outputs="static",
                skipping={"bwd_data": {"stream": False, "outputs": "static"}}),
        Feature("compacted", "output-skip", ("bwd_data",), outputs="compacted"),
        Feature("stream+compacted", "agos", ("bwd_data",), stream=True, outputs="compacted"),
        Feature("bypass", "agos", PASSES, stream=True, join=True, outputs="compacted", bypass=True),
    )
}


def one_row(feature: Feature, cols: int, lookahead: int, broadcast: int, domain: int) -> LoadedArch:
    """The feature's design on a one-row lockstep array whose buffer, bandwidth and fill/drain never
    bound a fold: its compute cycles are the row's own."""
    base = load_arch(f"{feature.preset}@systolic")
    a = base.arch
    o = a.organisation
    org = o.model_copy(
        update={
            "pe_array": o.pe_array.model_copy(update={"rows": 1, "cols": cols}),
            "memory": o.memory.model_copy(
                update={
                    "global_buffer_bytes": 1 << 34,
                    "buffer_banks": 65536,
                    "bank_width_bytes": 4096,
                    "dram_gbps": 1e6,
                }
            ),
            "fill_drain": "per_fold",
            "fill_drain_cycles": 0,
        }
    )
    skip = a.skipping.model_dump()
    # the row's mechanisms, every feature on: the bypass rule (docs/cost-model.md §11) is a
    # per-layer choice made before the pass, compared here by its own tests
    skip.update(lookahead=lookahead, broadcast_width=broadcast, compaction_domain=domain, bypass="never")
    for pass_, over in feature.skipping.items():
        skip[pass_] = {**skip[pass_], **over}
    arch = type(a).model_validate({**a.model_dump(), "organisation": org.model_dump(), "skipping": skip})
    if feature.bypass:
        arch = arch.twin()
    return base.with_arch(arch, f"rtl:{feature.name}@one-row")


@dataclass
class PassComparison:
    layer: str
    pass_: str
    feature: str
    cfg: RowConfig
    rtl: list[int]
    walks: list[Walk]
    reference: list[int]
    spec: list[int]
    fast_compute: int  # the fast model's compute cycles of the whole pass
    reference_total: int  # Σ of the reference's fold times over the whole pass
    dispatched: int  # the pass's dispatched items (the row ran `count` of them: all, or a sample)
    results_ok: list[bool]
    items: list[RtlItem] = field(repr=False, default_factory=list)

    @property
    def count(self) -> int:
        return len(self.rtl)

    @property
    def equal(self) -> int:
        return sum(r == f for r, f in zip(self.rtl, self.reference, strict=True))


def _value(rng: np.random.Generator, n) -> np.ndarray:
    """Nonzero int16 values, small enough that sums of products stay readable."""
    return rng.integers(1, 128, n) * rng.choice([-1, 1], n)


def rtl_items(mp: PassMapping, cfg: RowConfig, feature: Feature, rng: np.random.Generator) -> list[RtlItem]:
    """The dispatched items of the pass, in execution order, as the row sees them."""
    C, D = cfg.cols, cfg.banks
    whole = range(0, mp.units)
    mode = 0
    if not feature.bypass:
        mode = (MODE_STREAM if mp.stream_skip else 0) | (MODE_JOIN if mp.two_sided else 0)
        mode |= MODE_COMPACT if mp.compacted else 0
    out = []
    for tile in mp.tiles:
        if len(tile.groups) != 1:
            raise ValueError(f"layer {mp.masks.name} {mp.pass_}: packed groups (one stream per group)")
        grp = tile.groups[0]
        for work_set in mp.items[tile.index]:
            for item in work_set:
                if duration(row_work(mp, item, whole)) == 0:
                    continue  # not dispatched (§2.3)
                taps = mp.stream(grp, item.position)
                T = len(taps)
                bits = np.array([t.nonzero for t in taps], bool)
                values = np.where(bits, _value(rng, T), 0)
                ops = np.zeros((C, D, T), np.int64)
                own = np.zeros((C, T), bool) if cfg.join else None
                fields: dict[str, int] = {}
                lo = tile.channels[0]
                if mp.compacted and not feature.bypass:
                    lanes = [(c - lo) for c in tile.channels]
                    fields["set"] = sum(1 << (c - lo) for c in item.channel_set)
                else:
                    lanes = list(range(len(tile.channels)))
                for slot, local in enumerate(lanes):
                    k = tile.channels[slot]
                    lane, bank = local % C, local // C
                    ops[lane, bank] = _value(rng, T)
                    if mp.pass_ == "bwd_weight":  # the PE's operand is its own dY
                        nz = np.array([t.operand[k] for t in taps], bool)
                        ops[lane, bank] = np.where(nz, ops[lane, bank], 0)
                        if own is not None:
                            own[lane] = nz
                if cfg.outputs == "static":
                    needed = item.computing[grp]
                    fields["slots"] = sum(1 << i for i, k in enumerate(tile.channels) if k in needed)
                out.append(RtlItem(bits, values, ops, own, mode, fields))
    return out


def compare_pass(
    masks: LayerMasks,
    pass_: str,
    feature: Feature,
    cols: int,
    lookahead: int = 3,
    broadcast: int = 1,
    domain: int = 64,
    seed: int = 0,
    sample: int | None = None,
) -> PassComparison | None:
    """One pass of one layer: the row, the reference and the fast model (None: nothing dispatched).
    `sample`: run the row on that many of the dispatched items, evenly spaced in execution order
    (the reference and the fast model still cover the whole pass)."""
    if pass_ == "bwd_data" and not masks.needs_bwd_data:
        return None
    loaded = one_row(feature, cols, lookahead, broadcast, domain)
    mp = PassMapping(pass_, masks, loaded.arch)
    banks = max(1, domain // cols) if feature.outputs == "compacted" else 1
    cfg = feature.row(cols, lookahead, broadcast, banks)
    rng = np.random.default_rng(seed)
    items = rtl_items(mp, cfg, feature, rng)
    if not items:
        return None
    folds = lockstep_tile(mp, mp.tiles, range(mp.position_rows), [range(0, mp.units)], 0).folds
    reference_total, dispatched = sum(folds), len(items)
    if sample is not None and dispatched > sample:
        keep = np.linspace(0, dispatched - 1, sample).round().astype(int)
        items, folds = [items[i] for i in keep], [folds[i] for i in keep]
    run = run_row(cfg, items)
    ctx = LayerContext(masks, layer_work(masks))
    fast = simulate_pass(pass_, ctx, loaded, layer_area(loaded))
    return PassComparison(
        layer=masks.name,
        pass_=pass_,
        feature=feature.name,
        cfg=cfg,
        rtl=run.cycles,
        walks=[walk(cfg, it) for it in items],
        reference=list(folds),
        spec=[model_duration(cfg, it) for it in items],
        fast_compute=fast.compute_cycles,
        reference_total=reference_total,
        dispatched=dispatched,
        results_ok=[got == expected_results(cfg, it) for got, it in zip(run.results, items, strict=True)],
        items=items,
    )
