"""Sparsity sources: the real masks of a trace, or statistical masks of given zero fractions.

`resolve_density(trace, density, seed)` parses and resolves a spec once into a `DensitySource`
(its label, its statistical fractions, `.masks(trace)`); `layer_masks` is the shorthand.
"""

from agos.density.select import DensitySource, layer_masks, parse_density, resolve_density

__all__ = ["DensitySource", "layer_masks", "parse_density", "resolve_density"]
