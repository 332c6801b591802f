"""The table of `agos check`: per step, the sparse engine's losses and gradients against float32
autograd and the float64 twin, and the share of BWD-D and BWD-W products it skipped."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from agos.engine.check import NOISE_FACTOR, TOLERANCE, CheckReport
from agos.report.format import macs, pct, wide_console


def _rel(numerator: float, scale: float) -> str:
    return f"{numerator / scale:.1e}" if scale > 0 else ("0" if numerator == 0 else "inf")


def print_report(report: CheckReport, console: Console | None = None) -> None:
    console = console or wide_console()
    table = Table(title=f"agos check — {report.label}", title_justify="left")
    columns = (
        ("step", "right"),
        ("loss sparse", "right"),
        ("loss autograd, float64", "right"),
        ("Δ / allowed", "right"),
        ("at", "left"),
        ("D/S there", "right"),
        ("N/S there", "right"),
        ("max rel Δ vs float32 autograd", "right"),
        ("BWD-D skipped", "right"),
        ("BWD-W skipped", "right"),
        ("loss plain run", "right"),
        ("time autograd", "right"),
        ("time sparse", "right"),
    )
    for col, justify in columns:
        table.add_column(col, justify=justify, overflow="fold")
    for s in report.steps:
        w = s.worst
        hit = w is not None and w.ratio > 0
        table.add_row(
            str(s.step),
            f"{s.loss_sparse:.7f}",
            "identical"
            if s.loss_autograd == s.loss_sparse == s.loss_float64
            else f"{s.loss_autograd:.7f}, {s.loss_float64:.7f}",
            f"{s.ratio:.2f}",
            w.name if hit else "— (bit-identical)",
            _rel(w.diff, w.scale) if hit else "0",
            _rel(w.noise, w.scale) if hit else "—",
            f"{s.max_rel_float32:.1e}",
            f"{pct(s.bwd_data_skipped, width=0)} of {macs(s.bwd_data_dense)}",
            f"{pct(s.bwd_weight_skipped, width=0)} of {macs(s.bwd_weight_dense)}",
            f"{s.loss_plain:.7f}",
            f"{s.seconds_autograd:.1f} s",
            f"{s.seconds_sparse:.1f} s",
        )
    console.print(table)
    forward = "FWD on the sparse engine" if report.sparse_forward else "FWD is the model's own op"
    unresolved = max((s.unresolved for s in report.steps), default=0)
    console.print(
        f"graph: {report.graph}; {forward}. Each step is also run, at the sparse run's weights, by float32 "
        "autograd and by a twin whose Conv2d/Linear backward is dense in float64. Per parameter, "
        "D = max|g_sparse − g_float64|, S = max|g_float64|, N = max|g_float32 − g_float64| (autograd's own "
        f"rounding); pass: D ≤ {TOLERANCE:g}·S + {NOISE_FACTOR:g}·N for every parameter"
        + ("" if report.sparse_forward else " and bit-identical losses")
        + ". 'max rel Δ vs float32 autograd' is over parameters float32 resolves to 1%"
        + (f" ({unresolved} gradients are ≈ 0 within float32 rounding)" if unresolved else "")
        + "; 'loss plain run' is an independent autograd trajectory."
    )
    if report.passed:
        console.print("PASS: skipping changed nothing beyond floating-point reassociation")
