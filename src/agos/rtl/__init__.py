"""The skipping PE row as RTL (Amaranth), simulated for cycle equality with the cost model and
synthesised (Debian's yosys) for its area: docs/rtl.md. Needs the `rtl` extra (amaranth)."""
