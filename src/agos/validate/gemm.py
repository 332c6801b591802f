"""A layer pass as the GEMM a GEMM-based simulator runs, and agos's count of that GEMM.

SCALE-Sim (and most systolic-array simulators) lower a convolution by im2col: every output position
multiplies a full window of taps, so taps that land in the zero padding and, for BWD-D, the zeros
inserted between dY entries (stride holes of the transposed convolution) are work. agos's own
counting (docs/cost-model.md §2) walks valid taps only. This module states the im2col GEMM of each
pass; `agos_gemm_cycles` then counts that GEMM on agos's real cost model — a dense Linear layer of
M rows, K inputs and N outputs through `simulate_pass("fwd", …)` — which is the "SCALE-Sim
counting" option of agos: the same fold rule, on a stream that includes the padding and holes.

The GEMM of a pass is written Out[M, N] = A[M, K] × B[K, N] with M the output positions (one PE row
each, output stationary), N the output channels (one PE column each) and K the reduction (the
stream of a row, T):

| pass | M (rows) | N (columns) | K (stream) |
| --- | --- | --- | --- |
| FWD: Y = X_im2col × W | N·P·Q | K/G | (C/G)·R·S |
| BWD-D: dX = dY_im2col × Wᵀ (transposed conv, holes counted) | N·H·W | C/G | (K/G)·R·S |
| BWD-W: dW = (dYᵀ × X_im2col)ᵀ | (C/G)·R·S | K/G | N·P·Q |

A Linear layer is the 1×1 case (N = its rows). BWD-W is written transposed (dWᵀ, the positions
(c, r, s) on the rows as agos maps them); on a square array the fold count ⌈M/R⌉·⌈N/C⌉ is the same
either way.

Grouped layers (G > 1). With ch = N channels per group and C array columns:
- ch ≥ C: the G groups are `copies` = G independent GEMMs of N = ch, run one after another — how
  SCALE-Sim runs a grouped layer (its depthwise layers, `DP…`, are split into one layer per group).
- ch < C: agos packs P = ⌊C/ch⌋ groups side by side across the columns, each column reading its own
  group's stream (docs/cost-model.md §2.1). An output-stationary fold takes the same time whichever
  stream a row feeds each column, so the packed layer counts as a GEMM whose columns are the
  (group, channel) pairs: one GEMM of N = G·ch when ch divides C (then ⌈G·ch/C⌉ = ⌈G/P⌉ folds of
  columns), else ⌈G/P⌉ copies of N = P·ch (one per packed tile; a narrower last tile takes the same
  time). A depthwise conv is the case ch = 1: one GEMM of N = G, K = R·S.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agos.arch.load import LoadedArch, load_arch
from agos.cost.layout import ceil_div
from agos.cost.model import LayerContext, PassCost, layer_area, simulate_pass
from agos.errors import AgosError
from agos.workload.counts import layer_work
from agos.workload.layer import LayerGeometry
from agos.workload.masks import LayerMasks
from agos.workload.passes import PASSES

DESIGN = "dense@systolic"


@dataclass(frozen=True)
class Gemm:
    """Out[M, N] = A[M, K] × B[K, N], `copies` times (independent groups run one after another)."""

    name: str
    pass_: str  # "fwd" | "bwd_data" | "bwd_weight"
    m: int  # rows: output positions
    n: int  # columns: output channels
    k: int  # reduction: the stream of one row
    copies: int = 1

    def __post_init__(self) -> None:
        if min(self.m, self.n, self.k, self.copies) < 1:
            raise AgosError(
                f"GEMM {self.name} {self.pass_}: M, N, K and copies must be ≥ 1, got "
                f"M={self.m} N={self.n} K={self.k} copies={self.copies}"
            )

    @property
    def macs(self) -> int:
        return self.copies * self.m * self.n * self.k

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.m, self.n, self.k)


def _check_pass(pass_: str) -> None:
    if pass_ not in PASSES:
        raise AgosError(f"unknown pass '{pass_}' (expected one of {', '.join(PASSES)})")


def layer_gemm(g: LayerGeometry, pass_: str, name: str = "layer", cols: int = 32) -> Gemm:
    """The im2col GEMM of one pass of a layer, for an array of `cols` columns (module docstring)."""
    _check_pass(pass_)
    if cols < 1:
        raise AgosError(f"array columns must be ≥ 1, got {cols}")
    taps = g.r * g.s
    if pass_ == "fwd":
        m, ch, k = g.n * g.p * g.q, g.k_per_group, g.c_per_group * taps
    elif pass_ == "bwd_data":
        m, ch, k = g.n * g.h * g.w, g.c_per_group, g.k_per_group * taps
    else:
        m, ch, k = g.c_per_group * taps, g.k_per_group, g.n * g.p * g.q
    groups = g.groups
    if groups == 1:
        return Gemm(name, pass_, m, ch, k)
    if ch >= cols:
        return Gemm(name, pass_, m, ch, k, copies=groups)
    packed = cols // ch
    if cols % ch == 0:
        return Gemm(name, pass_, m, groups * ch, k)
    return Gemm(name, pass_, m, packed * ch, k, copies=ceil_div(groups, packed))


def gemm_masks(gemm: Gemm) -> LayerMasks:
    """One copy of the GEMM as a dense Linear layer: M rows, K inputs, N outputs, every value nonzero."""
    g = LayerGeometry(kind="linear", n=gemm.m, c=gemm.k, h=1, w=1, k=gemm.n, p=1, q=1, r=1, s=1)
    ones = torch.ones
    return LayerMasks(
        name=f"{gemm.name}:{gemm.pass_}",
        geometry=g,
        needs_bwd_data=True,
        x_nonzero=ones(g.x_shape, dtype=torch.bool),
        dy_nonzero=ones(g.y_shape, dtype=torch.bool),
        dx_needed=ones(g.x_shape, dtype=torch.bool),
        dx_all_needed=True,
    )


def gemm_design(gemm: Gemm, base: LoadedArch | None = None) -> LoadedArch:
    """`base` (default dense@systolic) with a global buffer that holds the whole GEMM in one tile —
    A, B and Out, doubled for double buffering — the way SCALE-Sim is run with SRAMs large enough
    that it reports compute cycles without stalls. Only the buffer size changes."""
    loaded = base if base is not None else load_arch(DESIGN)
    arch = loaded.arch
    o = arch.organisation
    vb = o.precision.value_bytes
    need = (gemm.m * gemm.k + gemm.k * gemm.n + gemm.m * gemm.n) * vb
    need *= 2 if o.memory.double_buffering else 1
    size = max(o.memory.global_buffer_bytes, ceil_div(need, 64) * 64)
    if size == o.memory.global_buffer_bytes:
        return loaded
    org = o.model_copy(update={"memory": o.memory.model_copy(update={"global_buffer_bytes": size})})
    grown = type(arch).model_validate(arch.model_copy(update={"organisation": org}).model_dump())
    return loaded.with_arch(grown, f"{loaded.source}, buffer {size} B")


def agos_gemm_cost(gemm: Gemm, base: LoadedArch | None = None) -> PassCost:
    """agos's cost of one copy of the GEMM: FWD of its dense Linear layer on `gemm_design`."""
    loaded = gemm_design(gemm, base)
    masks = gemm_masks(gemm)
    ctx = LayerContext(masks, layer_work(masks))
    return simulate_pass("fwd", ctx, loaded, layer_area(loaded))


def compute_cycles(cost: PassCost) -> int:
    """Compute cycles of a pass as SCALE-Sim reports them: work + fill/drain (no buffer-delivery or
    DRAM stalls)."""
    return cost.components["work"] + cost.components["fill_drain"]


def agos_gemm_cycles(gemm: Gemm, base: LoadedArch | None = None) -> int:
    """agos's compute cycles of the GEMM (all copies) with SCALE-Sim's counting."""
    return gemm.copies * compute_cycles(agos_gemm_cost(gemm, base))
