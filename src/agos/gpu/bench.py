"""`agos gpu-bench --bwd-data`: per layer of a trace, time cuDNN's backward-data against the dense
and the tile-skipping variants of agos's Triton kernel (`bwd_data_kernel`), on the trace's own
geometry and needed-dX masks (real, or a converged profile's seeded masks).

What is timed, per layer (float32, TF32 off everywhere, cuDNN benchmark mode on; dY and W seeded
random — their values do not change the work, the mask does):

- `cudnn`: `torch.nn.grad.conv2d_input` (no mask: in training the mask is fused into the ReLU
  backward that follows, so this is the time to beat);
- `dense`: the kernel computing every tile, then masking;
- `skip`: the kernel leaving all-masked tiles unrun (the tile table is built beforehand, as it
  would be at the end of the forward pass; its time is the `table` column).

Each is the median of `repeats` runs timed with CUDA events after `warmup` runs. Every row is
checked: the skipping kernel's dX must equal cuDNN's × mask within the rounding bound of
`bwd_data_kernel.rounding_bound` (the `check` column), so no timing is reported for a wrong result.
Every row carries model, weights, data, batch, image size and density source.
"""

from __future__ import annotations

import csv
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from rich.table import Table

from agos.capture.trace import load_trace
from agos.density.select import resolve_density
from agos.density.tiles import TileShape, layer_tiles
from agos.errors import AgosError
from agos.fileio import atomic_file
from agos.gpu import bwd_data_kernel as kern
from agos.gpu import training_bench as gpu_bench
from agos.inputs.provenance import Provenance
from agos.report.format import wide_console
from agos.workload.masks import LayerMasks

NO_GPU = "no CUDA GPU here: gpu-bench --bwd-data times kernels on a local NVIDIA GPU; nothing was measured"


@dataclass(frozen=True)
class BwdDataRow:
    model: str
    weights: str
    data: str
    batch: int
    image_size: int
    density: str
    layer: str
    shape: str  # N×C×H×W ← K, R×S, stride
    tile: str
    empty_tiles: float  # fraction of the kernel's tiles that are all masked
    work_skipped: float  # share of BWD-D MACs inside them
    cudnn_ms: float
    dense_ms: float
    skip_ms: float
    table_ms: float
    skip_vs_cudnn: float  # cudnn_ms / skip_ms (> 1: the skipping kernel is faster)
    skip_vs_dense: float
    max_error: float
    check: str  # "ok" or what failed
    device: str


def parse_block(text: str) -> tuple[int, int, int]:
    """'64x64' or '64x64x32' (BLOCK_M × BLOCK_N [× BLOCK_K], each a power of two ≥ 16)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise AgosError(f"--block '{text}' is not BLOCK_MxBLOCK_N[xBLOCK_K], e.g. 64x64") from None
    if len(parts) == 2:
        parts.append(32)
    if len(parts) != 3 or any(p < 16 or p & (p - 1) for p in parts):
        raise AgosError(f"--block '{text}': three powers of two ≥ 16 (BLOCK_MxBLOCK_N[xBLOCK_K])")
    return parts[0], parts[1], parts[2]


def cuda_device(ref: str) -> torch.device:
    return gpu_bench.cuda_device(ref, NO_GPU)


def cuda_timer(device: torch.device) -> Callable[[Callable[[], object], int, int], float]:
    def timed(fn: Callable[[], object], warmup: int, repeats: int) -> float:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        return statistics.median(times)

    return timed


def wall_timer(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    """For runs off a GPU (tests in Triton's interpreter): wall milliseconds, median."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def _supported(lm: LayerMasks) -> bool:
    return lm.needs_bwd_data and lm.geometry.groups == 1


def bench_layer(
    lm: LayerMasks,
    prov: Provenance,
    density: str,
    block: tuple[int, int, int],
    device: torch.device,
    timer: Callable[[Callable[[], object], int, int], float],
    warmup: int,
    repeats: int,
    seed: int = 0,
) -> BwdDataRow:
    g = lm.geometry
    gen = torch.Generator().manual_seed(seed)
    dy = torch.randn(g.y_shape, generator=gen).to(device)
    weight = torch.randn(g.w_shape, generator=gen).to(device)
    mask = lm.dx_needed.reshape(g.x_shape).to(device)
    params = kern.ConvParams(g.h, g.w, g.stride, g.padding, g.dilation)
    prep = kern.prepare(dy, weight, params, mask, block)
    out = torch.empty(g.x_shape, device=device)
    cudnn_ms = timer(lambda: kern.reference(dy, weight, params), warmup, repeats)
    dense_ms = timer(lambda: kern.launch(prep, skip=False, out=out), warmup, repeats)
    skip_ms = timer(lambda: kern.launch(prep, skip=True, out=out), warmup, repeats)
    table_ms = timer(lambda: kern.tile_table(mask, block[0], block[1]), warmup, repeats)
    got = kern.launch(prep, skip=True)
    expected = kern.reference(dy, weight, params) * mask
    error = (got - expected).abs()
    bound = kern.rounding_bound(dy, weight, params)
    check = "ok"
    if not bool((error <= bound).all()):
        check = "exceeds the rounding bound"
    elif not bool((got[~mask] == 0).all()):
        check = "masked elements not zero"
    tiles = layer_tiles(lm, [TileShape("kernel", block[0], block[1])])
    stats = tiles.stats("kernel")
    return BwdDataRow(
        model=prov.model,
        weights=prov.weights.source + (f" ({prov.weights.sha256[:8]})" if prov.weights.sha256 else ""),
        data=prov.data.source,
        batch=prov.batch_size,
        image_size=prov.image_size,
        density=density,
        layer=lm.name,
        shape=f"{g.n}×{g.c}×{g.h}×{g.w} ← {g.k}, {g.r}×{g.s}/{g.stride[0]}",
        tile=f"{block[0]}x{block[1]}",
        empty_tiles=stats.empty_fraction,
        work_skipped=stats.work_skipped / tiles.work_dense if tiles.work_dense else 0.0,
        cudnn_ms=cudnn_ms,
        dense_ms=dense_ms,
        skip_ms=skip_ms,
        table_ms=table_ms,
        skip_vs_cudnn=cudnn_ms / skip_ms if skip_ms else float("nan"),
        skip_vs_dense=dense_ms / skip_ms if skip_ms else float("nan"),
        max_error=float(error.max()) if error.numel() else 0.0,
        check=check,
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
    )


def run(
    traces: Iterable[Path],
    densities: list[str],
    seed: int,
    block: tuple[int, int, int],
    device: torch.device,
    timer: Callable[[Callable[[], object], int, int], float],
    warmup: int = 3,
    repeats: int = 20,
    max_layers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[BwdDataRow]:
    """Every supported layer of every trace at every density; grouped layers are left out (named)."""
    rows: list[BwdDataRow] = []
    loaded = [load_trace(t) for t in traces]
    # every density spec resolved (and so checked) before any timing
    sources = [[resolve_density(trace, d, seed) for d in densities] for trace in loaded]
    for trace, resolved in zip(loaded, sources, strict=True):
        for density, source in zip(densities, resolved, strict=True):
            label = source.label
            done = 0
            for lm in source.masks(trace):
                if not _supported(lm):
                    if lm.needs_bwd_data and progress:
                        progress(f"{lm.name}: groups={lm.geometry.groups} left out (the kernel is groups=1)")
                    continue
                if max_layers is not None and done >= max_layers:
                    break
                rows.append(
                    bench_layer(lm, trace.provenance, label, block, device, timer, warmup, repeats, seed)
                )
                done += 1
                if progress:
                    r = rows[-1]
                    progress(
                        f"{r.model} {r.layer} [{density}]: cudnn {r.cudnn_ms:.3f} ms, skip {r.skip_ms:.3f} ms"
                    )
    if not rows:
        raise AgosError("no layer with a groups=1 BWD-D to time in these traces")
    return rows


def write_csv(rows: list[BwdDataRow], path: Path) -> None:
    names = [f.name for f in fields(BwdDataRow)]
    with atomic_file(path) as fh:
        writer = csv.DictWriter(fh, fieldnames=names)
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))


def print_table(rows: list[BwdDataRow], console=None) -> None:
    console = console or wide_console()
    groups: dict[tuple, list[BwdDataRow]] = {}
    for r in rows:
        groups.setdefault(
            (r.model, r.weights, r.data, r.batch, r.image_size, r.density, r.device), []
        ).append(r)
    for (model, weights, data, batch, size, density, device), group in groups.items():
        table = Table(
            title=f"BWD-D on {device}, fp32 — {model} · weights {weights} · data {data} · batch {batch} · "
            f"{size} px · {density} · tiles {group[0].tile}",
            title_justify="left",
        )
        for col in (
            "layer",
            "shape",
            "empty tiles",
            "work in them",
            "cuDNN ms",
            "dense kernel ms",
            "skip kernel ms",
            "table ms",
            "cuDNN/skip",
            "dense/skip",
            "check",
        ):
            table.add_column(col, justify="left" if col in ("layer", "shape", "check") else "right")
        for r in group:
            table.add_row(
                r.layer,
                r.shape,
                f"{100 * r.empty_tiles:.2f}%",
                f"{100 * r.work_skipped:.2f}%",
                f"{r.cudnn_ms:.3f}",
                f"{r.dense_ms:.3f}",
                f"{r.skip_ms:.3f}",
                f"{r.table_ms:.3f}",
                f"{r.skip_vs_cudnn:.2f}×",
                f"{r.skip_vs_dense:.2f}×",
                r.check,
            )
        table.add_section()
        c, d, s = (sum(getattr(r, a) for r in group) for a in ("cudnn_ms", "dense_ms", "skip_ms"))
        table.add_row(
            "total",
            "",
            "",
            "",
            f"{c:.3f}",
            f"{d:.3f}",
            f"{s:.3f}",
            "",
            f"{c / s:.2f}×" if s else "—",
            f"{d / s:.2f}×" if s else "—",
            "",
        )
        console.print(table)


def configure_cuda() -> None:
    """fp32 means fp32: no TF32 in cuDNN or matmuls (the kernel uses IEEE products too)."""
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
