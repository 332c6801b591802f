"""Statistical masks: seeded masks with given per-activation zero fractions, laid over a trace.

A statistical source gives a zero fraction to each ReLU activation of the trace (`uniform:S`: all
of them S; a profile: its rows, see `profiles.py`). From them, for every layer:

- **activation masks.** One Bernoulli mask per ReLU/ReLU6 activation (shape from the manifest),
  seeded by (seed, activation name): deterministic, and independent of the order layers are read in.
  With a `structure=` (`structure.py`) the mask has exactly round(S·n) zeros placed by that
  structure instead; so has a drawn X (below). Everything else follows the same rules either way,
  so X, needed dX and dY carry the activation's structure.
  For ReLU6 the fraction is the fraction of zero outputs, like ReLU's; its saturated outputs come
  back through the trace's rates below.
- **X.** Element by element the activation mask where X is that activation (through dropout,
  flatten, view, a size-1 pool) or the channel concatenation of several (cat, when the trace's
  counts confirm the parts' order): the forward/backward correlation survives. Dropout's extra
  zeros are kept at the trace's rate. Where X is pooled (max-pool, avg-pool) or a cat whose order
  cannot be confirmed, X is drawn afresh: at the profile's pooled row where there is one (VGG16's
  pool rows), else at s**k, s the sources' element-weighted fraction and k the trace's own pooling
  exponent (real pooled zero fraction = real source zero fraction ** k; k = 1 where the trace has
  no zeros to measure it on). Layers sharing an X tensor get the same mask. X keeps its real mask
  where no ReLU/ReLU6 feeds it (the network input, BN, SiLU, a residual add, …), where its source
  has no profile row, or where the trace's dX mask is conservative (X may not equal its source).
- **dY.** Where Y goes straight into a ReLU/ReLU6 (no BN between), dY is drawn on that activation's
  mask: dY ≠ 0 at the trace's rate P(dY ≠ 0 | activation live) where the activation is nonzero
  (max-pool backward and dropout zeros), and at P(dY ≠ 0 | activation clamped) — zero for a ReLU —
  where it is zero. So dY zero ⊇ activation zero. Behind BN, dY keeps its real (dense) mask.
- **dX needed.** Where the trace derived a mask (ReLU, max/avg-pool of ReLU, cat, dropout: all give
  needed ⊆ X ≠ 0) and X was generated, needed = generated X ≠ 0, thinned at the trace's rate
  |needed| / |X ≠ 0| (1 for ReLU sources; below 1 only for saturating ReLU6). Conservative
  (all-needed) layers stay all-needed; needs_bwd_data is copied.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch

from agos.capture.trace import ActivationRecord, LayerRecord, Trace
from agos.density.profiles import has_max_pool
from agos.density.real import real_masks
from agos.density.structure import Structure, structured_nonzero
from agos.workload.masks import LayerMasks

GENERATED_OPS = ("ReLU", "ReLU6")  # ReLU-like ops whose zeros a profile describes
_COVERED = re.compile(r"(?i)^(relu6?|cat|\w*pool\w*|mean|\w*dropout\w*|\d+)$")
_POOL = re.compile(r"(?i)pool|\bmean\b")


@dataclass(frozen=True)
class Fractions:
    """Zero fractions per activation (and per max-pooled activation output), with a label."""

    label: str  # e.g. "uniform:0.6" or "profile:sparsetrain:last (resnet50 checkpoint 90 of 90)"
    activations: Mapping[str, float]
    pooled: Mapping[str, float] = field(default_factory=dict)
    pooled_labels: Mapping[str, str] = field(default_factory=dict)  # activation -> row label (pool0)
    structure: Structure | None = None  # where the zeros lie (`structure.py`); None: Bernoulli per element


def uniform_fractions(trace: Trace, zero_fraction: float) -> Fractions:
    acts = {a.name: zero_fraction for a in trace.manifest.activations if a.op in GENERATED_OPS}
    return Fractions(label=f"uniform:{zero_fraction:g}", activations=acts)


@dataclass(frozen=True)
class XPlan:
    kind: Literal["real", "reuse", "draw"]
    rule: str
    target: float | None = None  # expected zero fraction of X (None: real)
    parts: tuple[str, ...] = ()  # reuse: activation masks, concatenated along dim 1, reshaped to X
    keep: float = 1.0  # reuse: P(X ≠ 0 | source ≠ 0), the trace's dropout rate
    key: str = ""  # identity of the X tensor: seeds its draws, shares it between layers


@dataclass(frozen=True)
class DYPlan:
    kind: Literal["real", "act"]
    rule: str
    target: float | None = None
    act: str | None = None
    p_live: float = 1.0  # P(dY ≠ 0 | activation ≠ 0), from the trace
    p_clamped: float = 0.0  # P(dY ≠ 0 | activation clamped), from the trace


@dataclass(frozen=True)
class DXPlan:
    kind: Literal["real", "from_x"]
    rule: str
    target: float | None = None  # expected skippable fraction of dX
    keep: float = 1.0  # P(needed | X ≠ 0), from the trace


@dataclass(frozen=True)
class LayerPlan:
    name: str
    x: XPlan
    dy: DYPlan
    dx: DXPlan


def _rate(num: int, den: int, default: float) -> float:
    return num / den if den else default


def _weighted(values: list[float], sizes: list[int]) -> float:
    total = sum(sizes)
    return sum(v * n for v, n in zip(values, sizes, strict=True)) / total if total else 0.0


def _x_key(layer: LayerRecord) -> str:
    # Layers reading the same tensor have byte-identical real X masks, stored once (same offset).
    ref = layer.x_nonzero
    return f"{','.join(layer.x_acts)}|{layer.x_producer}|{ref.shape}|{ref.offset}"


def _cat_layout(acts: list[ActivationRecord], x_numel: int, n: int) -> bool:
    """Do the activations concatenate along dim 1 into X's elements (then flatten/reshape)?"""
    if sum(math.prod(a.shape) for a in acts) != x_numel:
        return False
    if len(acts) == 1:
        return True
    first = acts[0].shape
    return (
        all(len(a.shape) == len(first) and a.shape[0] == n and a.shape[2:] == first[2:] for a in acts)
        and len(first) >= 2
    )


def _part_counts(trace: Trace, layer: LayerRecord, acts: list[ActivationRecord]) -> list[int]:
    x = trace.mask(layer, "x_nonzero").unpack().reshape(acts[0].shape[0], -1)
    counts, start = [], 0
    for a in acts:
        size = math.prod(a.shape[1:])
        counts.append(int(np.count_nonzero(x[:, start : start + size])))
        start += size
    return counts


def _order_confirmed(counts: list[int], acts: list[ActivationRecord], dropout: bool) -> bool:
    """Each part's real nonzeros against its activation's live count: ReLU parts can only lose
    nonzeros to dropout (equal without it); ReLU6 parts gain its saturated outputs."""
    for count, a in zip(counts, acts, strict=True):
        live = math.prod(a.shape) - a.clamped
        if a.op == "ReLU" and (count > live or (not dropout and count != live)):
            return False
        if a.op == "ReLU6" and not dropout and count < live:
            return False
    return True


def _plan_x(trace: Trace, layer: LayerRecord, acts: dict[str, ActivationRecord], fr: Fractions) -> XPlan:
    g = layer.geometry
    producer = layer.x_producer
    if not layer.x_acts:
        return XPlan("real", f"real: no ReLU feeds X ({producer})")
    missing = [a for a in layer.x_acts if a not in acts]
    if missing:
        return XPlan("real", f"real: the trace has no record of {missing[0]}")
    sources = [acts[a] for a in layer.x_acts]
    other = [a for a in sources if a.op not in GENERATED_OPS]
    if other:
        return XPlan("real", f"real: X comes from {other[0].op} ({other[0].name}), not a ReLU")
    unprofiled = [a for a in layer.x_acts if a not in fr.activations]
    if unprofiled:
        return XPlan("real", f"real: {unprofiled[0]} has no profile row")
    tokens = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", producer)
    if not all(_COVERED.match(t) for t in tokens):
        return XPlan("real", f"real: X ({producer}) mixes in ops other than ReLU, pool, cat, dropout")
    if layer.needs_bwd_data and layer.dx_needed is None:
        return XPlan("real", f"real: the trace's dX mask is conservative ({layer.dx_reason})")

    x_numel = g.x_numel
    x_nonzero = layer.x_nonzero.count
    sizes = [math.prod(a.shape) for a in sources]
    live = sum(n - a.clamped for n, a in zip(sizes, sources, strict=True))
    mean = _weighted([fr.activations[a.name] for a in sources], sizes)
    key = _x_key(layer)
    dropout = re.search(r"(?i)dropout", producer) is not None
    pooled = _POOL.search(producer) is not None
    names = ", ".join(layer.x_acts)
    elementwise = _cat_layout(sources, x_numel, g.n) and (not pooled or x_nonzero == live)
    note = ""
    if (
        elementwise
        and len(sources) > 1
        and not _order_confirmed(_part_counts(trace, layer, sources), sources, dropout)
    ):
        elementwise = False
        note = " (cat parts' order not confirmed by the trace's counts)"
    if elementwise:
        keep = min(1.0, _rate(x_nonzero, live, 1.0))
        target = 1 - (1 - mean) * keep
        how = "the mask of" if len(sources) == 1 else f"channel concatenation of {len(sources)} masks:"
        rule = f"reuse {how} {names}"
        if keep < 1:
            rule += f", nonzeros kept at the trace's rate {keep:.3f} (dropout)"
        return XPlan("reuse", rule, target, tuple(layer.x_acts), keep, key)
    if len(sources) == 1 and sources[0].name in fr.pooled and has_max_pool(producer):
        value = fr.pooled[sources[0].name]
        label = fr.pooled_labels.get(sources[0].name, "pooled")
        return XPlan("draw", f"draw at the profile's {label} row (max-pool of {names})", value, key=key)
    if not pooled:
        return XPlan("draw", f"draw at the element-weighted mean of {names}{note}", mean, key=key)
    real_src = _rate(sum(a.clamped for a in sources), sum(sizes), 0.0)
    real_x = 1 - _rate(x_nonzero, x_numel, 1.0)
    k = 1.0  # no zeros (or nothing but zeros) in the source: nothing to measure pooling on
    if 0 < real_src < 1:
        k = math.log(real_x) / math.log(real_src) if real_x > 0 else math.inf
    value = mean**k
    rule = (
        f"draw at {mean:.3f}^{k:.2f} (source {names}; the trace's pooling exponent k: "
        f"{real_x:.3f} = {real_src:.3f}^k){note}"
    )
    return XPlan("draw", rule, value, key=key)


def _plan_dy(layer: LayerRecord, acts: dict[str, ActivationRecord], fr: Fractions) -> DYPlan:
    first = layer.y_consumer.split(" → ")[0]
    act = acts.get(layer.y_act) if layer.y_act else None
    if act is None or first not in GENERATED_OPS:
        if first.startswith("BatchNorm"):
            return DYPlan("real", f"real: BN before the ReLU keeps dY dense ({layer.y_consumer})")
        return DYPlan("real", f"real: Y → {layer.y_consumer}")
    if act.op not in GENERATED_OPS or act.name not in fr.activations:
        return DYPlan("real", f"real: {act.name} has no profile row")
    g = layer.geometry
    c = layer.correlation
    if c is None or math.prod(act.shape) != g.y_numel:
        return DYPlan("real", f"real: the trace has no activation/dY contingency for {act.name}")
    p_live = _rate(c.act_nonzero_dy_nonzero, c.act_nonzero_dy_zero + c.act_nonzero_dy_nonzero, 1.0)
    p_clamped = _rate(c.act_zero_dy_nonzero, c.act_zero_dy_zero + c.act_zero_dy_nonzero, 0.0)
    s = fr.activations[act.name]
    target = s * (1 - p_clamped) + (1 - s) * (1 - p_live)
    rule = f"on {act.name}'s mask; dY≠0 at the trace's rate {p_live:.3f} where it is live"
    if p_clamped > 0:
        rule += f", {p_clamped:.3f} where clamped"
    return DYPlan("act", rule, target, act.name, p_live, p_clamped)


def _plan_dx(layer: LayerRecord, x: XPlan) -> DXPlan:
    if not layer.needs_bwd_data:
        return DXPlan("real", "no BWD-D")
    if layer.dx_needed is None:
        return DXPlan("real", f"all needed ({layer.dx_reason})")
    if x.kind == "real":
        return DXPlan("real", "real (X is real)")
    keep = min(1.0, _rate(layer.dx_needed.count, layer.x_nonzero.count, 1.0))
    rule = "needed = X ≠ 0" + (f", thinned at the trace's rate {keep:.3f}" if keep < 1 else "")
    return DXPlan("from_x", rule, 1 - (1 - x.target) * keep, keep)


def plan_layers(trace: Trace, fractions: Fractions) -> list[LayerPlan]:
    """How every layer's three masks will be made, with their expected zero fractions."""
    acts = {a.name: a for a in trace.manifest.activations}
    plans = []
    for layer in trace.layers:
        x = _plan_x(trace, layer, acts, fractions)
        if fractions.structure is not None and x.kind != "real":
            x = replace(x, rule=x.rule + _structure_note(fractions.structure, layer, x, acts))
        plans.append(LayerPlan(layer.name, x, _plan_dy(layer, acts, fractions), _plan_dx(layer, x)))
    return plans


def _structure_note(structure: Structure, layer: LayerRecord, x: XPlan, acts) -> str:
    shapes = [tuple(acts[a].shape) for a in x.parts] if x.kind == "reuse" else [layer.geometry.x_shape]
    flat = [s for s in shapes if not structure.spatial(s)]
    if flat:
        return f"; zeros independent ({structure.kind} need H × W > 1; the mask is {list(flat[0])})"
    return f"; zeros: {structure.text}"


# -- drawing ------------------------------------------------------------------------------------


def _generator(seed: int, *parts: str) -> torch.Generator:
    digest = hashlib.blake2b("\x1f".join((str(seed), *parts)).encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & ((1 << 63) - 1))


def bernoulli_nonzero(shape, zero_fraction: float, seed: int, *parts: str) -> torch.Tensor:
    """A bool mask, True (nonzero) with probability 1 - zero_fraction, seeded by (seed, parts)."""
    if zero_fraction <= 0:
        return torch.ones(shape, dtype=torch.bool)
    if zero_fraction >= 1:
        return torch.zeros(shape, dtype=torch.bool)
    return torch.rand(shape, generator=_generator(seed, *parts)) >= zero_fraction


def draw_nonzero(
    shape, zero_fraction: float, structure: Structure | None, seed: int, *parts: str
) -> torch.Tensor:
    """A generated mask: Bernoulli per element without a structure, else exactly round(S·n) zeros
    placed by the structure; seeded by (seed, parts) either way."""
    if structure is None:
        return bernoulli_nonzero(shape, zero_fraction, seed, *parts)
    return structured_nonzero(tuple(shape), zero_fraction, structure, _generator(seed, *parts))


def _thin(mask: torch.Tensor, keep: float, seed: int, *parts: str) -> torch.Tensor:
    return mask if keep >= 1 else mask & bernoulli_nonzero(mask.shape, 1 - keep, seed, *parts)


def statistical_masks(
    trace: Trace, fractions: Fractions, seed: int = 0, plans: list[LayerPlan] | None = None
) -> Iterator[LayerMasks]:
    """Every layer's masks under `fractions`, in trace order; `source` says where they came from."""
    plans = plans if plans is not None else plan_layers(trace, fractions)
    acts = {a.name: a for a in trace.manifest.activations}
    source = f"{fractions.label} (seed {seed})"
    last_use: dict[tuple[str, str], int] = {}
    for i, p in enumerate(plans):
        for a in p.x.parts:
            last_use[("act", a)] = i
        if p.dy.act:
            last_use[("act", p.dy.act)] = i
        if p.x.kind != "real":
            last_use[("x", p.x.key)] = i
    cache: dict[tuple[str, str], torch.Tensor] = {}

    def act_mask(name: str) -> torch.Tensor:
        key = ("act", name)
        if key not in cache:
            record = acts[name]
            cache[key] = draw_nonzero(
                tuple(record.shape), fractions.activations[name], fractions.structure, seed, "act", name
            )
        return cache[key]

    def x_mask(plan: XPlan, shape: tuple[int, ...]) -> torch.Tensor:
        key = ("x", plan.key)
        if key not in cache:
            if plan.kind == "reuse":
                parts = [act_mask(a) for a in plan.parts]
                joined = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
                cache[key] = _thin(joined.reshape(shape), plan.keep, seed, "x-keep", plan.key)
            else:
                cache[key] = draw_nonzero(shape, plan.target, fractions.structure, seed, "x-draw", plan.key)
        return cache[key]

    for i, (layer, plan) in enumerate(zip(trace.layers, plans, strict=True)):
        masks = real_masks(trace, layer)
        g = layer.geometry
        if plan.x.kind != "real":
            masks.x_nonzero = x_mask(plan.x, g.x_shape)
        if plan.dy.kind == "act":
            live = act_mask(plan.dy.act).reshape(g.y_shape)
            on_live = bernoulli_nonzero(g.y_shape, 1 - plan.dy.p_live, seed, "dy-live", layer.name)
            dy = live & on_live
            if plan.dy.p_clamped > 0:
                on_clamped = bernoulli_nonzero(
                    g.y_shape, 1 - plan.dy.p_clamped, seed, "dy-clamped", layer.name
                )
                dy |= ~live & on_clamped
            masks.dy_nonzero = dy
        if plan.dx.kind == "from_x":
            masks.dx_needed = _thin(masks.x_nonzero, plan.dx.keep, seed, "dx-keep", plan.x.key)
        masks.source = source
        yield masks
        for key in [k for k, last in last_use.items() if last == i]:
            cache.pop(key, None)
            del last_use[key]
