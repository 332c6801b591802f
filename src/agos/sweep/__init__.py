"""Design-space sweeps (`agos sweep SPEC.yaml --out DIR`): spec → plan of points → Dask → table."""
