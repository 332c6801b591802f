"""The AccelForge workload of a layer pass: one Einsum, valid taps only (docs/export.md).

AccelForge (Accelergy-Project, PyPI `accelforge`, 1.0.467) reads workloads as Einsums, not as
Timeloop problems. Each pass is written as the Einsum agos counts, in scatter form, with the input
ranks bounded by `rank_sizes` so that taps falling in the padding are not iterations (AccelForge
skips accesses outside a rank's size) — AccelForge's operation count of the Einsum is then agos's
dense MACs of the pass, per group:

    FWD    Y[n, k, p, q]                  = X[n, c, p·sh + r·dh − ph, q·sw + s·dw − pw] · W[k, c, r, s]
    BWD-D  dX[n, c, p·sh + r·dh − ph, …]  = dY[n, k, p, q] · W[k, c, r, s]
    BWD-W  dW[k, c, r, s]                 = X[n, c, p·sh + r·dh − ph, …] · dY[n, k, p, q]

over 0 ≤ n < N, k < K/G, c < C/G, p < P, q < Q, r < R, s < S, with `n_instances` = G (the groups
run one after another, each the same Einsum). AccelForge 1.0.467 has no density field: the
densities are in the Timeloop problems and index.json.
"""

from __future__ import annotations

import re

from agos.workload.layer import LayerGeometry

BITS = 16  # bf16, the precision of agos's shipped designs


def _affine(out: str, stride: int, tap: str, dilation: int, pad: int) -> str:
    term = lambda v, k: v if k == 1 else f"{v}*{k}"  # noqa: E731
    text = f"{term(out, stride)} + {term(tap, dilation)}"
    return text + (f" - {pad}" if pad else "")


def einsum_name(layer: str, pass_: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{layer}_{pass_}")


def workload(layer: str, g: LayerGeometry, pass_: str) -> dict:
    """AccelForge's `workload:` document of one pass of a layer (module docstring)."""
    (sh, sw), (ph, pw), (dh, dw) = g.stride, g.padding, g.dilation
    x = {"N": "n", "C": "c", "H": _affine("p", sh, "r", dh, ph), "W": _affine("q", sw, "s", dw, pw)}
    w = {"K": "k", "C": "c", "R": "r", "S": "s"}
    y = {"N": "n", "K": "k", "P": "p", "Q": "q"}
    accesses = {
        "fwd": [("X", x, False), ("W", w, False), ("Y", y, True)],
        "bwd_data": [("dY", y, False), ("W", w, False), ("dX", x, True)],
        "bwd_weight": [("X", x, False), ("dY", y, False), ("dW", w, True)],
    }[pass_]
    roles = {"fwd": ("X", "W", "Y"), "bwd_data": ("dY", "W", "dX"), "bwd_weight": ("X", "dY", "dW")}[pass_]
    bounds = {"n": g.n, "k": g.k_per_group, "c": g.c_per_group, "p": g.p, "q": g.q, "r": g.r, "s": g.s}
    einsum = {
        "name": einsum_name(layer, pass_),
        "tensor_accesses": [
            {"name": name, "projection": projection, **({"output": True} if out else {})}
            for name, projection, out in accesses
        ],
        "iteration_space_shape": [f"0 <= {v} < {size}" for v, size in bounds.items()],
        "rank_sizes": {"H": g.h, "W": g.w},
        "renames": dict(zip(("input", "weight", "output"), roles, strict=True)),
    }
    if g.groups > 1:
        einsum["n_instances"] = g.groups
    return {"workload": {"bits_per_value": {"All": BITS}, "einsums": [einsum]}}
