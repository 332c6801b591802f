"""`agos density`: the tables of the density-mapping section (`analysis.density_mapping`) — profile
row → activation → layers, and per layer the real, target and realised zero fractions of X, dY and
dX."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from agos.report.format import macs as _macs
from agos.report.format import pct as _pct
from agos.report.format import wide_console

if TYPE_CHECKING:
    from agos.analysis.model import Analysis


def _opt(x: float | None) -> str:
    return "real" if x is None else _pct(x)


def print_tables(analysis: Analysis, console: Console | None = None) -> None:
    console = console or wide_console()
    summary = analysis.density_mapping
    source = analysis.density.label
    if summary.rows:
        table = Table(title=f"Profile rows → activations → layers — {source}", title_justify="left")
        for col, justify in (
            ("row", "right"),
            ("label", "left"),
            ("zero", "right"),
            ("activation", "left"),
            ("sets X of", "left"),
            ("Y reaches it (dY)", "left"),
        ):
            table.add_column(col, justify=justify, overflow="fold")
        for r in summary.rows:
            act = r.activation or "— (no match)"
            if r.pooled:
                act = f"max-pool of {r.activation}" if r.activation else act
            table.add_row(
                str(r.row),
                r.label,
                _pct(r.zero_fraction),
                act,
                ", ".join(r.x_layers) or "—",
                ", ".join(r.y_layers) or "—",
            )
        console.print(table)
        p = summary.profile
        console.print(
            f"{len(summary.rows)} rows; unmatched rows: {', '.join(p.unmatched_rows) or 'none'}; "
            f"activations without a row: {', '.join(p.unmapped_activations) or 'none'}"
        )
    else:
        table = Table(title=f"Activations — {source}", title_justify="left")
        for col, justify in (
            ("#", "right"),
            ("activation", "left"),
            ("op", "left"),
            ("shape", "left"),
            ("real clamped", "right"),
            ("target zero", "right"),
            ("sets X of", "left"),
            ("sets dY of", "left"),
        ):
            table.add_column(col, justify=justify, overflow="fold")
        for a in summary.activations:
            table.add_row(
                str(a.index),
                a.name,
                a.op,
                "×".join(map(str, a.shape)),
                _pct(a.real_clamped_frac),
                _opt(a.target),
                ", ".join(a.x_reused_by) or "—",
                ", ".join(a.dy_drawn_for) or "—",
            )
        console.print(table)

    table = Table(
        title=f"Zero fractions per layer: real → target → realised — {analysis.label}", title_justify="left"
    )
    for col, justify in (
        ("#", "right"),
        ("layer", "left"),
        ("MACs/pass", "right"),
        ("X real", "right"),
        ("X target", "right"),
        ("X got", "right"),
        ("dY real", "right"),
        ("dY target", "right"),
        ("dY got", "right"),
        ("dX skip real", "right"),
        ("target", "right"),
        ("got", "right"),
        ("X from", "left"),
    ):
        table.add_column(col, justify=justify, overflow="fold", no_wrap=justify == "right")
    for s in summary.layers:
        if s.needs_bwd_data:
            dx = (_pct(s.dx_skip.real), _opt(s.dx_skip.target), _pct(s.dx_skip.realised))
        else:
            dx = ("no BWD-D", "", "")
        table.add_row(
            str(s.index),
            s.name,
            _macs(s.macs),
            _pct(s.x.real),
            _opt(s.x.target),
            _pct(s.x.realised),
            _pct(s.dy.real),
            _opt(s.dy.target),
            _pct(s.dy.realised),
            *dx,
            s.x.rule,
        )
    t = summary.totals
    table.add_section()
    table.add_row(
        "",
        "total (MAC-weighted)",
        "",
        _pct(t.x_real),
        "",
        _pct(t.x_realised),
        _pct(t.dy_real),
        "",
        _pct(t.dy_realised),
        _pct(t.dx_skip_real),
        "",
        _pct(t.dx_skip_realised),
        "",
    )
    console.print(table)
    for note in summary.notes:
        console.print(f"note: {note}")
