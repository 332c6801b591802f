"""The three passes of a training step (DESIGN.md §1) and the spans reports add them up over."""

from __future__ import annotations

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
