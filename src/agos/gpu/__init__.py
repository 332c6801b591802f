"""Measurements on real GPUs: the dense-training anchors every energy comparison uses (`anchors`,
shipped data in data/), the benchmark that measures them (`training_bench`), and a Triton kernel
that exploits output sparsity (`bwd_data_kernel`, imported lazily: agos works without it)."""
