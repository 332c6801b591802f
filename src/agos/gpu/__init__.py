"""GPU kernels that exploit output sparsity on real hardware (Triton, imported lazily: agos works
without it)."""
