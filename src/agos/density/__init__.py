"""Sparsity sources: the real masks of a trace, or statistical masks of given zero fractions.

`layer_masks(trace, density, seed)` is the one entry point; `describe_density` labels the source.
"""

from agos.density.select import describe_density, layer_masks, parse_density

__all__ = ["describe_density", "layer_masks", "parse_density"]
