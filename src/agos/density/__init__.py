"""Sparsity sources: the real masks of a trace, or statistical masks of given zero fractions."""
