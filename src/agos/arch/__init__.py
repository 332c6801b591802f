"""Accelerator descriptions: a YAML schema, the shipped presets and energy tables (DESIGN.md §4)."""
