"""The test oracle for `agos.workload.counts`: visit every multiply-accumulate (n, k, c, p, q, r, s) of
a tiny layer in plain Python loops and tally it wherever it belongs. Slow on purpose; shares no code
with the convolution-based counts it checks (only the geometry's field names)."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from agos.workload.counts import LayerWork
from agos.workload.masks import LayerMasks

MAX_MACS = 2_000_000  # refuse layers that would take minutes


def brute_force(masks: LayerMasks) -> tuple[LayerWork, dict[tuple[str, str], np.ndarray]]:
    """Stream lengths as a `LayerWork`, and per-output MACs {(pass, policy): int64 array} enumerated."""
    g = masks.geometry
    n_, c_, h_, w_, k_, p_, q_, r_, s_ = g.n, g.c, g.h, g.w, g.k, g.p, g.q, g.r, g.s
    groups, cg, kg = g.groups, g.c // g.groups, g.k // g.groups
    (sh, sw), (ph, pw), (dh, dw) = g.stride, g.padding, g.dilation
    if n_ * k_ * cg * p_ * q_ * r_ * s_ > MAX_MACS:
        raise ValueError(f"{masks.name} is too large for the brute-force enumerator")
    x = masks.x_nonzero.reshape(n_, c_, h_, w_).to(torch.int64).tolist()
    dy = masks.dy_nonzero.reshape(n_, k_, p_, q_).to(torch.int64).tolist()
    need = masks.dx_needed.reshape(n_, c_, h_, w_).to(torch.int64).tolist()
    bwd = masks.needs_bwd_data

    def zeros(*shape):
        return np.zeros(shape, dtype=np.int64)

    fwd_dense, fwd_nonzero = zeros(p_, q_), zeros(n_, groups, p_, q_)
    bd_dense, bd_nonzero = zeros(h_, w_), zeros(n_, groups, h_, w_)
    bw_dense, bw_nonzero = zeros(r_, s_), zeros(c_, r_, s_)
    out = {
        ("fwd", "dense"): zeros(n_, k_, p_, q_),
        ("fwd", "input"): zeros(n_, k_, p_, q_),
        ("bwd_data", "dense"): zeros(n_, c_, h_, w_),
        ("bwd_data", "input"): zeros(n_, c_, h_, w_),
        ("bwd_data", "output"): zeros(n_, c_, h_, w_),
        ("bwd_data", "input+output"): zeros(n_, c_, h_, w_),
        ("bwd_weight", "dense"): zeros(k_, cg, r_, s_),
        ("bwd_weight", "input"): zeros(k_, cg, r_, s_),
        ("bwd_weight", "input+output"): zeros(k_, cg, r_, s_),
    }
    f_d, f_i = out["fwd", "dense"], out["fwd", "input"]
    b_d, b_i, b_o, b_io = (out["bwd_data", pol] for pol in ("dense", "input", "output", "input+output"))
    w_d, w_i, w_io = (out["bwd_weight", pol] for pol in ("dense", "input", "input+output"))

    for n, k, cl, p, q, r, s in itertools.product(
        range(n_), range(k_), range(cg), range(p_), range(q_), range(r_), range(s_)
    ):
        h = p * sh + r * dh - ph
        w = q * sw + s * dw - pw
        if not (0 <= h < h_ and 0 <= w < w_):
            continue  # a tap in the zero padding: never work
        grp = k // kg
        c = grp * cg + cl
        xv, dv, nv = x[n][c][h][w], dy[n][k][p][q], need[n][c][h][w]
        first_k = k == grp * kg  # each (group, c) stream counted once, not once per output channel
        # FWD: output (n, k, p, q); its stream is X[n, c, h, w] over (c in group, valid r, s)
        f_d[n, k, p, q] += 1
        f_i[n, k, p, q] += xv
        if n == 0 and k == 0:
            fwd_dense[p, q] += 1
        if first_k:
            fwd_nonzero[n, grp, p, q] += xv
        # BWD-D: output (n, c, h, w); its stream is dY[n, k, p, q] over (k in group, reaching p/r, q/s)
        if bwd:
            b_d[n, c, h, w] += 1
            b_i[n, c, h, w] += dv
            b_o[n, c, h, w] += nv
            b_io[n, c, h, w] += dv * nv
        if n == 0 and c == 0:
            bd_dense[h, w] += 1
        if cl == 0:
            bd_nonzero[n, grp, h, w] += dv
        # BWD-W: output (k, c, r, s); its stream is X over (n, valid p, q), each PE's operand dY
        w_d[k, cl, r, s] += 1
        w_i[k, cl, r, s] += xv
        w_io[k, cl, r, s] += xv * dv
        if k == 0 and cl == 0:
            bw_dense[r, s] += 1
        if first_k:
            bw_nonzero[c, r, s] += xv

    out["fwd", "output"] = out["fwd", "dense"]
    out["fwd", "input+output"] = out["fwd", "input"]
    out["bwd_weight", "output"] = out["bwd_weight", "dense"]

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a)

    work = LayerWork(
        name=masks.name,
        geometry=g,
        needs_bwd_data=bwd,
        fwd_dense=t(fwd_dense),
        fwd_nonzero=t(fwd_nonzero),
        bwd_data_dense=t(bd_dense),
        bwd_data_nonzero=t(bd_nonzero),
        dx_needed=masks.dx_needed.reshape(n_, c_, h_, w_).clone(),
        bwd_weight_dense=t(bw_dense),
        bwd_weight_nonzero=t(bw_nonzero),
        bwd_weight_both=t(w_io.copy()),
    )
    return work, out
