"""A layer pass as the GEMM a GEMM-based simulator runs, and agos's count of that GEMM.

SCALE-Sim (and most systolic-array simulators) lower a convolution by im2col: every output position
multiplies a full window of taps, so taps that land in the zero padding and, for BWD-D, the zeros
inserted between dY entries (stride holes of the transposed convolution) are work. agos's own
counting (docs/cost-model.md §2) walks valid taps only. This module states the im2col GEMM of each
pass; `agos_gemm_cycles` then counts that GEMM on agos's real cost model — a dense Linear layer of
M rows, K inputs and N outputs through `simulate_pass("fwd", …)` — which is the "SCALE-Sim
counting" option of agos: the same fold rule, on a stream that includes the padding and holes.

The lowering itself (`Gemm`, `layer_gemm`: the table of M, N, K per pass and the grouped
cases) is `agos.workload.gemm`, which the export writes from.
"""

from __future__ import annotations

import torch

from agos.arch.load import LoadedArch, load_arch
from agos.cost.layout import ceil_div
from agos.cost.model import LayerContext, PassCost, layer_area, simulate_pass
from agos.workload.counts import layer_work
from agos.workload.gemm import Gemm
from agos.workload.layer import LayerGeometry
from agos.workload.masks import LayerMasks

DESIGN = "dense@systolic"


def gemm_masks(gemm: Gemm) -> LayerMasks:
    """One copy of the GEMM as a dense Linear layer: M rows, K inputs, N outputs, every value nonzero."""
    g = LayerGeometry(kind="linear", n=gemm.m, c=gemm.k, h=1, w=1, k=gemm.n, p=1, q=1, r=1, s=1)
    ones = torch.ones
    return LayerMasks(
        name=f"{gemm.name}:{gemm.pass_}",
        geometry=g,
        needs_bwd_data=True,
        x_nonzero=ones(g.x_shape, dtype=torch.bool),
        dy_nonzero=ones(g.y_shape, dtype=torch.bool),
        dx_needed=ones(g.x_shape, dtype=torch.bool),
        dx_all_needed=True,
    )


def gemm_design(gemm: Gemm, base: LoadedArch | None = None) -> LoadedArch:
    """`base` (default dense@systolic) with a global buffer that holds the whole GEMM in one tile —
    A, B and Out, doubled for double buffering — the way SCALE-Sim is run with SRAMs large enough
    that it reports compute cycles without stalls. Only the buffer size changes."""
    loaded = base if base is not None else load_arch(DESIGN)
    arch = loaded.arch
    o = arch.organisation
    vb = o.precision.value_bytes
    need = (gemm.m * gemm.k + gemm.k * gemm.n + gemm.m * gemm.n) * vb
    need *= 2 if o.memory.double_buffering else 1
    size = max(o.memory.global_buffer_bytes, ceil_div(need, 64) * 64)
    if size == o.memory.global_buffer_bytes:
        return loaded
    org = o.model_copy(update={"memory": o.memory.model_copy(update={"global_buffer_bytes": size})})
    grown = type(arch).model_validate(arch.model_copy(update={"organisation": org}).model_dump())
    return loaded.with_arch(grown, f"{loaded.source}, buffer {size} B")


def agos_gemm_cost(gemm: Gemm, base: LoadedArch | None = None) -> PassCost:
    """agos's cost of one copy of the GEMM: FWD of its dense Linear layer on `gemm_design`."""
    loaded = gemm_design(gemm, base)
    masks = gemm_masks(gemm)
    ctx = LayerContext(masks, layer_work(masks))
    return simulate_pass("fwd", ctx, loaded, layer_area(loaded))


def compute_cycles(cost: PassCost) -> int:
    """Compute cycles of a pass as SCALE-Sim reports them: work + fill/drain (no buffer-delivery or
    DRAM stalls)."""
    return cost.components["work"] + cost.components["fill_drain"]


def agos_gemm_cycles(gemm: Gemm, base: LoadedArch | None = None) -> int:
    """agos's compute cycles of the GEMM (all copies) with SCALE-Sim's counting."""
    return gemm.copies * compute_cycles(agos_gemm_cost(gemm, base))
