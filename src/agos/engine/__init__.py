"""The exact sparse engine: Conv2d/Linear passes computed with only the work a skipping design does
(`sparse_ops`), training through it (`sparse_training`), and the check against autograd (`check`)."""

from agos.engine.training import SparseEngine, sparse_training

__all__ = ["SparseEngine", "sparse_training"]
