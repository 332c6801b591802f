"""The typed results of agos: one versioned `Analysis` model (model.py) that every command's JSON is
a dump of, with a JSON Schema shipped beside it (analysis.schema.json), and the computations that
fill its sections from a trace and a density source (`report/` only renders them)."""
