"""`agos bounds`: the tables of the bounds section (`analysis.bounds`) — exact MACs of every layer
and pass under each skipping policy, and the ideal speedups they bound."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from agos.report.format import macs, print_density_notes, times, wide_console
from agos.workload.passes import LABELS, PASSES, SPANS

if TYPE_CHECKING:
    from agos.analysis.bounds import LayerBounds, PassMacs, SpanSpeedups
    from agos.analysis.model import Analysis


def _macs(n: int) -> str:
    return macs(n, digits=3, units="TGMk")


def _x(value: float | None, dense: int) -> str:
    if value is None:
        return "—" if dense == 0 else "∞"
    return times(value)


def _rows(
    table: Table,
    label: str,
    name: str,
    macs: PassMacs | LayerBounds,
    speedups: dict[str, SpanSpeedups],
    policies: list[str],
    keys,
) -> None:
    for j, key in enumerate(keys):
        per = macs.span(key)
        table.add_row(
            label if j == 0 else "",
            name if j == 0 else "",
            LABELS[key],
            *(_macs(per[policy]) for policy in policies),
            *(_x(getattr(s, key), per["dense"]) for s in speedups.values()),
        )


def _table(title: str, policies: list[str], sparse: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for col, justify in (("#", "right"), ("layer", "left"), ("pass", "left")):
        table.add_column(col, justify=justify, overflow="fold")
    for policy in policies:
        table.add_column(f"{policy} MACs", justify="right", no_wrap=True)
    for policy in sparse:
        table.add_column(f"× {policy}", justify="right", no_wrap=True)
    return table


def print_table(analysis: Analysis, console: Console | None = None) -> None:
    console = console or wide_console()
    b = analysis.bounds
    sparse = list(b.speedups)
    table = _table(f"Exact MACs per policy and ideal speedups — {analysis.label}", b.policies, sparse)
    for layer in b.layers:
        _rows(table, str(layer.index), layer.name, layer, layer.speedups, b.policies, PASSES)
        table.add_section()
    _rows(table, "", "model total", b.totals, b.speedups, b.policies, SPANS)
    console.print(table)

    short = Table(
        title="Ideal speedup of the whole model (dense MACs / effective MACs)", title_justify="left"
    )
    short.add_column("policy", justify="left")
    for key in SPANS:
        short.add_column(LABELS[key], justify="right", no_wrap=True)
    dense = {key: b.totals.span(key)["dense"] for key in SPANS}
    for policy, s in b.speedups.items():
        short.add_row(policy, *(_x(getattr(s, key), dense[key]) for key in SPANS))
    console.print(short)
    for policy in b.policies:
        console.print(f"{policy}: {b.notes[policy]}")
    print_density_notes(analysis, console)


def csv_rows(analysis: Analysis) -> list[dict]:
    """One row per layer × pass: its MACs under each policy and the ideal speedup of each sparse
    policy (dense MACs / its MACs; empty where undefined)."""
    b = analysis.bounds
    rows = []
    for layer in b.layers:
        for pass_ in PASSES:
            counts = getattr(layer, pass_)
            rows.append(
                {
                    "layer_index": layer.index,
                    "layer": layer.name,
                    "kind": layer.kind,
                    "needs_bwd_data": layer.needs_bwd_data,
                    "pass": pass_,
                    **{f"macs_{policy}": counts[policy] for policy in b.policies},
                    **{f"speedup_{policy}": getattr(s, pass_) for policy, s in layer.speedups.items()},
                }
            )
    return rows


def write_csv(analysis: Analysis, path) -> None:
    from agos.report import csvfile

    csvfile.write_csv(analysis, csv_rows(analysis), path)
