"""The three passes of a training step (DESIGN.md §1), the spans reports add them up over, and the
per-pass mapping onto the PE array (DESIGN.md §4) as data.

`MAPPINGS` is the one statement of §4's table for the fast model: what a position (PE row) and a
channel (PE column) are in each pass, which operand is the row's shared stream and which is each
PE's own, what the output is, and where output skipping and stride-phase work sets apply. Counts
(workload.counts, workload.chunks) and cost (cost.layout, cost.items, cost.model, cost.tiling)
read these facts here instead of branching on the pass name. The reference simulator
(agos.reference) and the brute-force oracle (workload.bruteforce) keep their own mapping on
purpose: they must share no code with what they check.

Dimension names are per group: "c" is C_g, "k" is K_g; "g" marks where the group index sits in the
per-group counts of LayerWork (FWD [N, G, P, Q], BWD-D [N, G, H, W], BWD-W [G·C_g, R, S]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from agos.workload.layer import LayerGeometry

PASSES = ("fwd", "bwd_data", "bwd_weight")

# what a span of passes adds up: one pass, backpropagation, or the whole iteration
SPANS: dict[str, tuple[str, ...]] = {
    "fwd": ("fwd",),
    "bwd_data": ("bwd_data",),
    "bwd_weight": ("bwd_weight",),
    "backprop": ("bwd_data", "bwd_weight"),
    "iteration": PASSES,
}

LABELS = {
    "fwd": "FWD",
    "bwd_data": "BWD-D",
    "bwd_weight": "BWD-W",
    "backprop": "backprop",
    "iteration": "iteration",
}

Tensor = Literal["x", "w", "y", "dy", "dx", "dw"]


def dim(g: LayerGeometry, name: str) -> int:
    """The size of one position / stream dimension; channel dimensions are per group."""
    if name == "c":
        return g.c_per_group
    if name == "k":
        return g.k_per_group
    if name == "g":
        return g.groups
    return getattr(g, name)


def tensor_shape(g: LayerGeometry, tensor: Tensor) -> tuple[int, int, int, int]:
    """The shape of a pass's operand or output: X, dX [N,C,H,W]; Y, dY [N,K,P,Q]; W, dW [K,C_g,R,S]."""
    if tensor in ("x", "dx"):
        return g.x_shape
    if tensor in ("y", "dy"):
        return g.y_shape
    return g.w_shape


@dataclass(frozen=True)
class PassMapping:
    """One row of DESIGN.md §4's mapping table, and what follows from it for a geometry."""

    name: str  # "fwd" | "bwd_data" | "bwd_weight"
    label: str  # "FWD" | "BWD-D" | "BWD-W"
    position: str  # what one position (PE row) is, in words
    position_dims: tuple[str, ...]  # the position index within a group, raster order, "g" included
    row_dims: int  # how many leading dims of the position (without "g") make a position row (§6)
    channel: Literal["k", "c"]  # what one PE column computes: an output channel k or an input channel c
    stream: Tensor  # the row's shared stream (broadcast along the row)
    own: Tensor  # each PE's own operand
    output: Tensor
    unit_dims: tuple[str, ...]  # the stream's units (the outermost index of its entries)
    entry_dims: tuple[str, ...]  # the entries of one unit (full enumeration, invalid taps included)
    stream_sum: Literal["box", "scatter", "taps"]  # how a position's stream reads the stream tensor:
    # "box" the taps of an output pixel (a box sum), "scatter" the output pixels whose taps reach an
    # input pixel (a transposed box sum), "taps" every output pixel at one tap
    output_skip: bool  # masked outputs can be removed before dispatch (needed dX)
    stride_phases: bool  # the work sets are the stride phases of the positions (else one work set)

    # -- the position index --------------------------------------------------------------------

    @property
    def group_axis(self) -> int:
        """Where the group index sits in the per-group counts."""
        return self.position_dims.index("g")

    @property
    def plain_dims(self) -> tuple[str, ...]:
        """The position index within one group (no "g")."""
        return tuple(d for d in self.position_dims if d != "g")

    def position_shape(self, g: LayerGeometry) -> tuple[int, ...]:
        """Positions of one group, raster order: FWD (N, P, Q), BWD-D (N, H, W), BWD-W (C_g, R, S)."""
        return tuple(dim(g, d) for d in self.plain_dims)

    def grouped_shape(self, g: LayerGeometry) -> tuple[int, ...]:
        """The per-group counts' shape: FWD [N, G, P, Q], BWD-D [N, G, H, W], BWD-W [G, C_g, R, S]."""
        return tuple(dim(g, d) for d in self.position_dims)

    def positions(self, g: LayerGeometry) -> int:
        """Positions per group."""
        return math.prod(self.position_shape(g))

    def rows(self, g: LayerGeometry) -> int:
        """Position rows per group (§6): FWD (n, p), BWD-D (n, h), BWD-W c."""
        return math.prod(self.position_shape(g)[: self.row_dims])

    def per_row(self, g: LayerGeometry) -> int:
        """Positions of one position row: Q, W or R·S."""
        return math.prod(self.position_shape(g)[self.row_dims :])

    # -- the channels --------------------------------------------------------------------------

    def channels_per_group(self, g: LayerGeometry) -> int:
        """PE columns a group brings: K_g (FWD, BWD-W) or C_g (BWD-D)."""
        return dim(g, self.channel)

    def channels(self, g: LayerGeometry) -> int:
        return g.groups * self.channels_per_group(g)

    # -- the stream ----------------------------------------------------------------------------

    @property
    def two_sided(self) -> bool:
        """Each PE's own operand has zeros too (dY in BWD-W): PE skip (an inner join) applies.
        Where it is the weight, training weights are dense."""
        return self.own != "w"

    def units(self, g: LayerGeometry) -> int:
        """Stream units per group: C_g (FWD), K_g (BWD-D), N·P output rows (BWD-W)."""
        return math.prod(dim(g, d) for d in self.unit_dims)

    def unit_entries(self, g: LayerGeometry) -> int:
        """Entries of one unit in full enumeration: R·S (FWD, BWD-D), Q (BWD-W)."""
        return math.prod(dim(g, d) for d in self.entry_dims)

    @property
    def units_are_channels(self) -> bool:
        return self.unit_dims in (("c",), ("k",))

    def stream_entries(self, g: LayerGeometry) -> int:
        """The longest a position's stream can be (full enumeration): units × entries per unit."""
        return self.units(g) * self.unit_entries(g)

    def output_shape(self, g: LayerGeometry) -> tuple[int, int, int, int]:
        return tensor_shape(g, self.output)


MAPPINGS: dict[str, PassMapping] = {
    "fwd": PassMapping(
        name="fwd",
        label=LABELS["fwd"],
        position="output pixel (n, p, q)",
        position_dims=("n", "g", "p", "q"),
        row_dims=2,
        channel="k",
        stream="x",
        own="w",
        output="y",
        unit_dims=("c",),
        entry_dims=("r", "s"),
        stream_sum="box",
        output_skip=False,
        stride_phases=False,
    ),
    "bwd_data": PassMapping(
        name="bwd_data",
        label=LABELS["bwd_data"],
        position="input pixel (n, h, w)",
        position_dims=("n", "g", "h", "w"),
        row_dims=2,
        channel="c",
        stream="dy",
        own="w",
        output="dx",
        unit_dims=("k",),
        entry_dims=("r", "s"),
        stream_sum="scatter",
        output_skip=True,
        stride_phases=True,
    ),
    "bwd_weight": PassMapping(
        name="bwd_weight",
        label=LABELS["bwd_weight"],
        position="weight tap (c, r, s)",
        position_dims=("g", "c", "r", "s"),
        row_dims=1,
        channel="k",
        stream="x",
        own="dy",
        output="dw",
        unit_dims=("n", "p"),
        entry_dims=("q",),
        stream_sum="taps",
        output_skip=False,
        stride_phases=False,
    ),
}


def mapping(pass_: str) -> PassMapping:
    """The mapping of one pass; ValueError for anything but the three passes."""
    try:
        return MAPPINGS[pass_]
    except (KeyError, TypeError):
        raise ValueError(f"unknown pass {pass_!r}; one of {', '.join(PASSES)}") from None
