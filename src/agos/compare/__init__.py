"""`agos compare A B`: two analyses, traces or reproduce runs side by side (docs/compare.md)."""
