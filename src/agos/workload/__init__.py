"""Layers as workloads: geometry and the three passes of a training step (DESIGN.md §1)."""
