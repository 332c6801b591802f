"""Cycles, DRAM bytes and energy of a design on a trace's layers (DESIGN.md §4)."""
