"""agos: activation-based gradient output sparsity, captured, proved and simulated."""

__version__ = "0.1.0"
