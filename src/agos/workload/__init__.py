"""Layers as workloads (DESIGN.md §1): geometry, the per-layer masks every density source
produces, their bit packing, and the exact work of each pass (`counts`, with `bruteforce` its
loop-by-loop oracle). Capture, density, engine and cost all build on it; it imports none of them."""
