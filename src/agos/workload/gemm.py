"""A layer pass as the GEMM a GEMM-based simulator runs: the im2col lowering (SCALE-Sim and most
systolic-array simulators). Every output position multiplies a full window of taps, so taps that
land in the zero padding and, for BWD-D, the zeros inserted between dY entries (stride holes of
the transposed convolution) are work; agos's own counting (docs/cost-model.md §2) walks valid
taps only. `agos export --to scalesim` writes these GEMMs; `validate.gemm` counts them on agos's
cost model for the peer agreement (docs/validation.md).

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

from agos.errors import AgosError
from agos.workload.layer import LayerGeometry
from agos.workload.passes import PASSES


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


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
    return Gemm(name, pass_, m, packed * ch, k, copies=_ceil_div(groups, packed))
