"""Sparsity along training: the same capture and simulation at every checkpoint of a run."""
