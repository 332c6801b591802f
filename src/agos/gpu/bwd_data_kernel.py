"""A Triton kernel for conv BWD-D as an implicit GEMM that skips all-masked output tiles.

dX[n, c, h, w] = Σ_k Σ_(r,s) dY[n, k, p, q] · W[k, c, r, s] over the taps with
h = p·stride + r·dilation − pad (and likewise w): rows of the GEMM are the N·H·W positions of dX
(ordered n, h, w), columns its C channels, and the reduction runs over (r, s, k). One program computes
one BLOCK_M × BLOCK_N tile of dX. With `skip`, it first reads a precomputed per-tile "any needed"
table (`tile_table`) and, when the tile is empty, writes zeros and does no arithmetic; otherwise it
computes the tile and zeroes the masked elements. The dense variant (`skip=False`) is the same
kernel with the table check compiled out, so the two differ only in the skip.

Scope: groups = 1 only (grouped and depthwise layers are refused with an AgosError: their GEMM is
a batch of small ones and needs a kernel of its own); any stride, padding (top/left, the output
size fixes bottom/right) and dilation; float32 (IEEE products, no TF32) or float64.

Why the result may differ from torch in its last bits: torch (cuDNN, or the CPU's im2col GEMM) sums
the same products in another order. Exact agreement is therefore defined where sums are exact
(small integers, any order gives the same float), and elsewhere bounded: each of the two results
is a sum of n = K·R·S products, so |ours − torch| ≤ 2·γ_n·Σ|products| with γ_n = n·u/(1 − n·u)
(Higham, Accuracy and Stability of Numerical Algorithms, §3.1), u the unit roundoff
(`rounding_bound`). Masked elements are exactly zero.

Triton is imported on first use; `TRITON_INTERPRET=1` (read when the kernel is built) runs it in
Triton's CPU interpreter, which is how the tests check it on a machine without a GPU. The kernel uses
only `tl` builtins (`tl.full`, not `tl.zeros`): the library's own `@jit` helpers are decorated when
`triton.language` is first imported — often by torch, before the variable is set — and such a
helper cannot run in the interpreter.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from agos.errors import AgosError

_KERNELS: dict[bool, Callable] = {}


@dataclass(frozen=True)
class ConvParams:
    """What BWD-D needs of a conv besides its tensors: the input size and the index arithmetic."""

    h: int
    w: int
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)  # top, left
    dilation: tuple[int, int] = (1, 1)


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _import_triton():
    try:
        import triton
        import triton.language as tl
    except ImportError as exc:  # pragma: no cover - triton ships with torch on Linux
        raise AgosError(f"the BWD-D kernel needs Triton (pip install triton): {exc}") from None
    return triton, tl


def _kernel() -> Callable:
    """The jitted kernel, built once per mode (Triton reads TRITON_INTERPRET at decoration)."""
    mode = interpreting()
    if mode in _KERNELS:
        return _KERNELS[mode]
    triton, tl = _import_triton()

    @triton.jit
    def bwd_data_tiles(
        dy_ptr,
        w_ptr,
        mask_ptr,
        table_ptr,
        dx_ptr,
        N,
        C,
        H,
        W,
        K,
        P,
        Q,
        stride_h,
        stride_w,
        pad_h,
        pad_w,
        dil_h,
        dil_w,
        tiles_c,
        R: tl.constexpr,
        S: tl.constexpr,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_K: tl.constexpr,
        SKIP: tl.constexpr,
        APPLY_MASK: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_c = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        hw = H * W
        m_ok = offs_m < N * hw
        c_ok = offs_c < C
        n = offs_m // hw
        pos = offs_m % hw
        h = pos // W
        w = pos % W
        dx_off = (n[:, None] * C + offs_c[None, :]) * hw + pos[:, None]
        out_ok = m_ok[:, None] & c_ok[None, :]
        run = tl.load(table_ptr + pid_m * tiles_c + pid_n) != 0 if SKIP else pid_m >= 0
        if run:
            acc = tl.full((BLOCK_M, BLOCK_N), 0.0, dx_ptr.dtype.element_ty)
            for r in range(R):
                th = h + pad_h - r * dil_h
                th0 = tl.where(th >= 0, th, 0)
                p = th0 // stride_h
                h_ok = (th >= 0) & (th0 % stride_h == 0) & (p < P)
                for s in range(S):
                    tw = w + pad_w - s * dil_w
                    tw0 = tl.where(tw >= 0, tw, 0)
                    q = tw0 // stride_w
                    row_ok = m_ok & h_ok & (tw >= 0) & (tw0 % stride_w == 0) & (q < Q)
                    dy_row = n * (K * P * Q) + p * Q + q
                    for k0 in range(0, K, BLOCK_K):
                        offs_k = k0 + tl.arange(0, BLOCK_K)
                        k_ok = offs_k < K
                        a = tl.load(
                            dy_ptr + dy_row[:, None] + offs_k[None, :] * (P * Q),
                            mask=row_ok[:, None] & k_ok[None, :],
                            other=0.0,
                        )
                        # W is passed as [R, S, K, C] (contiguous along C)
                        b = tl.load(
                            w_ptr + ((r * S + s) * K + offs_k[:, None]) * C + offs_c[None, :],
                            mask=k_ok[:, None] & c_ok[None, :],
                            other=0.0,
                        )
                        acc += tl.dot(a, b, input_precision="ieee")
            if APPLY_MASK:
                keep = tl.load(mask_ptr + dx_off, mask=out_ok, other=0)
                acc = tl.where(keep != 0, acc, 0.0)
            tl.store(dx_ptr + dx_off, acc, mask=out_ok)
        else:
            tl.store(dx_ptr + dx_off, tl.full((BLOCK_M, BLOCK_N), 0.0, dx_ptr.dtype.element_ty), mask=out_ok)

    _KERNELS[mode] = bwd_data_tiles
    return bwd_data_tiles


def tile_table(mask: torch.Tensor, block_m: int, block_n: int) -> torch.Tensor:
    """[⌈N·H·W/BM⌉, ⌈C/BN⌉] uint8: 1 where the dX tile holds a needed element (partial edge tiles
    reduced over the elements they have, as `agos.density.tiles` counts them)."""
    n, c, h, w = mask.shape
    rows = mask.permute(0, 2, 3, 1).reshape(n * h * w, c)
    tm, tn = -(-rows.shape[0] // block_m), -(-c // block_n)
    padded = torch.zeros((tm * block_m, tn * block_n), dtype=torch.bool, device=mask.device)
    padded[: rows.shape[0], :c] = rows
    return padded.view(tm, block_m, tn, block_n).any(dim=3).any(dim=1).to(torch.uint8).contiguous()


@dataclass(frozen=True)
class Prepared:
    """Tensors laid out for the kernel: everything a timed launch must not redo."""

    dy: torch.Tensor  # [N, K, P, Q] contiguous
    weight_rskc: torch.Tensor  # [R, S, K, C] contiguous
    mask: torch.Tensor | None  # [N, C, H, W] uint8
    table: torch.Tensor | None  # tile_table(mask)
    params: ConvParams
    block: tuple[int, int, int]


def check_supported(weight: torch.Tensor, groups: int = 1) -> None:
    if groups != 1:
        raise AgosError(
            f"the tile-skipping BWD-D kernel supports groups=1 only, not groups={groups} "
            "(grouped and depthwise convolutions are not implemented)"
        )
    if weight.dim() != 4:
        raise AgosError(f"weight must be [K, C, R, S], got shape {tuple(weight.shape)}")


def prepare(
    dy: torch.Tensor,
    weight: torch.Tensor,
    params: ConvParams,
    mask: torch.Tensor | None = None,
    block: tuple[int, int, int] = (64, 64, 32),
    groups: int = 1,
) -> Prepared:
    """Lay out the operands (W as [R, S, K, C], the mask as bytes, its tile table)."""
    check_supported(weight, groups)
    if dy.dtype not in (torch.float32, torch.float64) or weight.dtype != dy.dtype:
        raise AgosError(f"dY and W must both be float32 or float64, got {dy.dtype} and {weight.dtype}")
    if min(block) < 16:
        raise AgosError(f"block sizes must be at least 16 (tl.dot), got {block}")
    n, k, _p, _q = dy.shape
    c = weight.shape[1]
    if weight.shape[0] != k:
        raise AgosError(f"dY has {k} channels, W has {weight.shape[0]} output channels")
    if mask is not None and tuple(mask.shape) != (n, c, params.h, params.w):
        raise AgosError(f"mask shape {tuple(mask.shape)} is not dX's {(n, c, params.h, params.w)}")
    m8 = mask.to(torch.uint8).contiguous() if mask is not None else None
    table = tile_table(mask.bool(), block[0], block[1]) if mask is not None else None
    return Prepared(
        dy=dy.contiguous(),
        weight_rskc=weight.permute(2, 3, 0, 1).contiguous(),
        mask=m8,
        table=table,
        params=params,
        block=block,
    )


def launch(prep: Prepared, skip: bool = True, out: torch.Tensor | None = None) -> torch.Tensor:
    """Run the kernel once: skip=True reads the tile table; skip=False computes every tile."""
    if skip and prep.table is None:
        raise AgosError("skipping tiles needs a mask")
    n, k, p, q = prep.dy.shape
    r, s, _, c = prep.weight_rskc.shape
    pr = prep.params
    bm, bn, bk = prep.block
    dx = (
        out
        if out is not None
        else torch.empty((n, c, pr.h, pr.w), dtype=prep.dy.dtype, device=prep.dy.device)
    )
    tiles_m, tiles_c = -(-n * pr.h * pr.w // bm), -(-c // bn)
    mask = prep.mask if prep.mask is not None else dx  # never read when APPLY_MASK is off
    table = prep.table if prep.table is not None else dx
    _kernel()[(tiles_m, tiles_c)](
        prep.dy,
        prep.weight_rskc,
        mask,
        table,
        dx,
        n,
        c,
        pr.h,
        pr.w,
        k,
        p,
        q,
        pr.stride[0],
        pr.stride[1],
        pr.padding[0],
        pr.padding[1],
        pr.dilation[0],
        pr.dilation[1],
        tiles_c,
        R=r,
        S=s,
        BLOCK_M=bm,
        BLOCK_N=bn,
        BLOCK_K=bk,
        SKIP=skip,
        APPLY_MASK=prep.mask is not None,
    )
    return dx


def bwd_data(
    dy: torch.Tensor,
    weight: torch.Tensor,
    params: ConvParams,
    mask: torch.Tensor | None = None,
    skip: bool = True,
    block: tuple[int, int, int] = (64, 64, 32),
    groups: int = 1,
) -> torch.Tensor:
    """dX of a conv, times the mask when one is given; skip=True leaves all-masked tiles unrun."""
    return launch(prepare(dy, weight, params, mask, block, groups), skip=skip and mask is not None)


def rounding_bound(dy: torch.Tensor, weight: torch.Tensor, params: ConvParams) -> torch.Tensor:
    """Per element, the most two float sums of dX's products can differ by: 2·γ_n·Σ|products|,
    n = K·R·S, u the unit roundoff of dY's dtype; Σ|products| is computed in float64."""
    k, _, r, s = weight.shape
    n_terms = k * r * s
    u = torch.finfo(dy.dtype).eps / 2
    gamma = n_terms * u / (1 - n_terms * u)
    magnitude = reference(dy.abs().double(), weight.abs().double(), params)
    return (2 * gamma * magnitude).to(dy.dtype)


def reference(dy: torch.Tensor, weight: torch.Tensor, params: ConvParams) -> torch.Tensor:
    """torch's own backward-data (`torch.nn.grad.conv2d_input`), for any top/left padding: the
    symmetric padding torch takes, then the bottom/right rows the output size leaves out cropped."""
    n, _, p, q = dy.shape
    c, r, s = weight.shape[1], weight.shape[2], weight.shape[3]
    sh, sw = params.stride
    dh, dw = params.dilation
    ph, pw = params.padding
    # the input extent torch would infer with symmetric padding, large enough for every tap
    big_h = max(params.h, (p - 1) * sh + (r - 1) * dh + 1 - 2 * ph)
    big_w = max(params.w, (q - 1) * sw + (s - 1) * dw + 1 - 2 * pw)
    dx = torch.nn.grad.conv2d_input(
        (n, c, big_h, big_w),
        weight,
        dy,
        stride=params.stride,
        padding=params.padding,
        dilation=params.dilation,
    )
    return dx[:, :, : params.h, : params.w].contiguous()
