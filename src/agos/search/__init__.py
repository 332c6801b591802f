"""`agos search`: per network and organisation, the fastest design with output skipping and the
fastest without, at every area budget (docs/search.md)."""
