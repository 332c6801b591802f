"""`agos density`: how a statistical density source maps onto a trace (profile row → activation →
layers) and, per layer, the real, target and realised zero fractions of X, dY and dX."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

from agos.capture.trace import Trace
from agos.density.select import parse_density, statistical_source
from agos.density.statistical import plan_layers, statistical_masks
from agos.errors import AgosError
from agos.inputs.provenance import provenance_label
from agos.report.sparsity import _macs, _pct, wide_console


def _frac(count: int, numel: int) -> float:
    return 1 - count / numel if numel else 0.0


def summarise(trace: Trace, density: str, seed: int = 0) -> dict:
    spec = parse_density(density)
    if spec.kind == "real":
        raise AgosError("agos density shows statistical sources: give --density uniform:S or profile:FILE")
    source = statistical_source(trace, spec)
    fractions = source.fractions
    label = f"{fractions.label} (seed {seed})"
    mapping = source.mapping
    plans = plan_layers(trace, fractions)

    x_of: dict[str, list[str]] = {}
    dy_of: dict[str, list[str]] = {}
    for layer, plan in zip(trace.layers, plans, strict=True):
        for a in plan.x.parts:
            x_of.setdefault(a, []).append(layer.name)
        if plan.dy.act:
            dy_of.setdefault(plan.dy.act, []).append(layer.name)

    row_of = {}
    rows = []
    if mapping is not None:
        for m in mapping.matches:
            if m.activation and not m.row.pooled:
                row_of[m.activation] = m.row.label
            rows.append(
                {
                    "row": m.row.order,
                    "label": m.row.label,
                    "zero_fraction": m.row.zero_fraction,
                    "pooled": m.row.pooled,
                    "activation": m.activation,
                    "x_layers": list(m.x_layers),
                    "y_layers": list(m.y_layers),
                    "note": m.note,
                }
            )
    activations = []
    for i, a in enumerate(trace.manifest.activations, 1):
        numel = math.prod(a.shape)
        activations.append(
            {
                "index": i,
                "name": a.name,
                "op": a.op,
                "shape": list(a.shape),
                "row": row_of.get(a.name),
                "real_clamped_frac": a.clamped / numel if numel else 0.0,
                "target": fractions.activations.get(a.name),
                "x_reused_by": x_of.get(a.name, []),
                "dy_drawn_for": dy_of.get(a.name, []),
            }
        )

    layers = []
    for i, (layer, plan, masks) in enumerate(
        zip(trace.layers, plans, statistical_masks(trace, fractions, seed, plans), strict=True)
    ):
        g = layer.geometry
        x_numel, y_numel = g.x_numel, g.y_numel
        bwd = layer.needs_bwd_data
        real_dx = _frac(layer.dx_needed.count, x_numel) if (bwd and layer.dx_needed is not None) else 0.0
        layers.append(
            {
                "index": i,
                "name": layer.name,
                "macs": layer.macs,
                "needs_bwd_data": bwd,
                "x": {
                    "real": _frac(layer.x_nonzero.count, x_numel),
                    "target": plan.x.target,
                    "realised": _frac(masks.x_count, x_numel),
                    "rule": plan.x.rule,
                },
                "dy": {
                    "real": _frac(layer.dy_nonzero.count, y_numel) if layer.dy_nonzero is not None else 0.0,
                    "target": plan.dy.target,
                    "realised": _frac(masks.dy_count, y_numel),
                    "rule": plan.dy.rule,
                },
                "dx_skip": {
                    "real": real_dx,
                    "target": plan.dx.target if bwd else None,
                    "realised": _frac(masks.dx_count, x_numel) if bwd else 0.0,
                    "rule": plan.dx.rule,
                },
            }
        )

    def weighted(part: str, key: str, only_bwd: bool = False) -> float:
        chosen = [s for s in layers if s["needs_bwd_data"] or not only_bwd]
        total = sum(s["macs"] for s in chosen)
        return sum(s[part][key] * s["macs"] for s in chosen) / total if total else 0.0

    totals = {
        "weighting": "MAC-weighted means over layers (dX skip over layers that run BWD-D)",
        **{
            f"{part}_{key}": weighted(part, key, only_bwd=part == "dx_skip")
            for part in ("x", "dy", "dx_skip")
            for key in ("real", "realised")
        },
    }
    notes = list(mapping.notes) if mapping is not None else []
    kept_x = [s["name"] for s in layers if s["x"]["target"] is None]
    if kept_x:
        notes.append(f"X keeps its real mask in {len(kept_x)} layer(s): {', '.join(kept_x)}")
    pooled = [s["name"] for s in layers if "pooling exponent" in s["x"]["rule"]]
    if pooled:
        notes.append(
            "X is pooled and no row describes the pooled output, so it is drawn at s^k (k: the trace's "
            f"own pooling exponent) in: {', '.join(pooled)}"
        )
    kept_dy = [s["name"] for s in layers if s["dy"]["target"] is None]
    if kept_dy:
        notes.append(f"dY keeps its real mask in {len(kept_dy)} layer(s) (BN before the ReLU, or no ReLU)")
    return {
        "trace": str(trace.path),
        "label": provenance_label(trace.provenance, label),
        "density": spec.text,
        "source": label,
        "seed": seed,
        "profile": (
            {
                "source": mapping.profile.source,
                "model": mapping.profile.model,
                "checkpoint": mapping.profile.checkpoint,
                "checkpoints": len(mapping.profile.checkpoints),
                "trace_model": mapping.trace_model,
                "unmatched_rows": [m.row.label for m in mapping.unmatched_rows],
                "unmapped_activations": list(mapping.unmapped_activations),
            }
            if mapping is not None
            else None
        ),
        "rows": rows,
        "activations": activations,
        "layers": layers,
        "totals": totals,
        "notes": notes,
    }


def _opt(x: float | None) -> str:
    return "real" if x is None else _pct(x)


def print_tables(summary: dict, console: Console | None = None) -> None:
    console = console or wide_console()
    if summary["rows"]:
        table = Table(
            title=f"Profile rows → activations → layers — {summary['source']}", title_justify="left"
        )
        for col, justify in (
            ("row", "right"),
            ("label", "left"),
            ("zero", "right"),
            ("activation", "left"),
            ("sets X of", "left"),
            ("Y reaches it (dY)", "left"),
        ):
            table.add_column(col, justify=justify, overflow="fold")
        for r in summary["rows"]:
            act = r["activation"] or "— (no match)"
            if r["pooled"]:
                act = f"max-pool of {r['activation']}" if r["activation"] else act
            table.add_row(
                str(r["row"]),
                r["label"],
                _pct(r["zero_fraction"]),
                act,
                ", ".join(r["x_layers"]) or "—",
                ", ".join(r["y_layers"]) or "—",
            )
        console.print(table)
        p = summary["profile"]
        console.print(
            f"{len(summary['rows'])} rows; unmatched rows: {', '.join(p['unmatched_rows']) or 'none'}; "
            f"activations without a row: {', '.join(p['unmapped_activations']) or 'none'}"
        )
    else:
        table = Table(title=f"Activations — {summary['source']}", title_justify="left")
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
        for a in summary["activations"]:
            table.add_row(
                str(a["index"]),
                a["name"],
                a["op"],
                "×".join(map(str, a["shape"])),
                _pct(a["real_clamped_frac"]),
                _opt(a["target"]),
                ", ".join(a["x_reused_by"]) or "—",
                ", ".join(a["dy_drawn_for"]) or "—",
            )
        console.print(table)

    table = Table(
        title=f"Zero fractions per layer: real → target → realised — {summary['label']}", title_justify="left"
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
    for s in summary["layers"]:
        if s["needs_bwd_data"]:
            dx = (_pct(s["dx_skip"]["real"]), _opt(s["dx_skip"]["target"]), _pct(s["dx_skip"]["realised"]))
        else:
            dx = ("no BWD-D", "", "")
        table.add_row(
            str(s["index"]),
            s["name"],
            _macs(s["macs"]),
            _pct(s["x"]["real"]),
            _opt(s["x"]["target"]),
            _pct(s["x"]["realised"]),
            _pct(s["dy"]["real"]),
            _opt(s["dy"]["target"]),
            _pct(s["dy"]["realised"]),
            *dx,
            s["x"]["rule"],
        )
    t = summary["totals"]
    table.add_section()
    table.add_row(
        "",
        "total (MAC-weighted)",
        "",
        _pct(t["x_real"]),
        "",
        _pct(t["x_realised"]),
        _pct(t["dy_real"]),
        "",
        _pct(t["dy_realised"]),
        _pct(t["dx_skip_real"]),
        "",
        _pct(t["dx_skip_realised"]),
        "",
    )
    console.print(table)
    for note in summary["notes"]:
        console.print(f"note: {note}")
