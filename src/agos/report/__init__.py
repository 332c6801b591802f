"""Tables, JSON/CSV and plots; every figure carries its provenance."""
