"""Validation of agos's dense designs against peer simulators (docs/validation.md).

`agos.validate.gemm` turns a layer pass into the GEMM that SCALE-Sim would run (im2col: padding
taps and stride holes are work) and counts that GEMM on agos's own cost model; `agos.validate.scalesim`
runs SCALE-Sim 3.0.0 on such GEMMs. Neither is imported by the rest of agos."""
