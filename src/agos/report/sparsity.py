"""`agos sparsity`: per-layer zero fractions of the three passes and the forward/backward
correlation, as a table, JSON, CSV and a plot."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agos.capture.trace import LayerRecord, Trace
from agos.fileio import atomic_file
from agos.inputs.provenance import provenance_label


@dataclass(frozen=True)
class LayerSparsity:
    index: int
    name: str
    kind: str
    macs: int  # dense MACs of one pass
    x_zero_frac: float
    dy_zero_frac: float
    dx_skip_frac: float  # share of dX that need not be computed (0 where no BWD-D runs)
    needs_bwd_data: bool
    dx_reason: str | None
    x_producer: str
    y_consumer: str
    act_direct: bool  # Y goes straight into a ReLU-like op
    act_zero_frac: float | None  # share of Y's elements whose activation (ReLU output) is zero
    agreement: float | None  # P[(activation zero) == (dY zero)] over Y's elements
    dy_zero_given_act_zero: float | None


def _fraction(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def layer_sparsity(index: int, layer: LayerRecord) -> LayerSparsity:
    g = layer.geometry
    x_numel = g.x_numel
    y_numel = g.y_numel
    dy = layer.dy_nonzero
    dx = layer.dx_needed
    agreement = given = act_zero = None
    if layer.correlation is not None:
        c = layer.correlation
        total = c.act_zero_dy_zero + c.act_zero_dy_nonzero + c.act_nonzero_dy_zero + c.act_nonzero_dy_nonzero
        agreement = _fraction(c.act_zero_dy_zero + c.act_nonzero_dy_nonzero, total)
        given = _fraction(c.act_zero_dy_zero, c.act_zero_dy_zero + c.act_zero_dy_nonzero)
        act_zero = _fraction(c.act_zero_dy_zero + c.act_zero_dy_nonzero, total)
    first_step = layer.y_consumer.split(" → ")[0]
    return LayerSparsity(
        index=index,
        name=layer.name,
        kind=layer.kind,
        macs=layer.macs,
        x_zero_frac=1 - _fraction(layer.x_nonzero.count, x_numel),
        dy_zero_frac=1 - _fraction(dy.count, y_numel) if dy is not None else 0.0,
        dx_skip_frac=1 - _fraction(dx.count, x_numel) if (dx is not None and layer.needs_bwd_data) else 0.0,
        needs_bwd_data=layer.needs_bwd_data,
        dx_reason=layer.dx_reason,
        x_producer=layer.x_producer,
        y_consumer=layer.y_consumer,
        act_direct=first_step in ("ReLU", "ReLU6") or first_step.startswith("Hardtanh"),
        act_zero_frac=act_zero,
        agreement=agreement,
        dy_zero_given_act_zero=given,
    )


def summarise(trace: Trace) -> dict:
    layers = [layer_sparsity(i, layer) for i, layer in enumerate(trace.layers)]
    macs = sum(s.macs for s in layers)
    bwd_macs = sum(s.macs for s in layers if s.needs_bwd_data)

    def weighted(attr: str, only_bwd: bool = False) -> float:
        chosen = [s for s in layers if s.needs_bwd_data or not only_bwd]
        total = sum(s.macs for s in chosen)
        return sum(getattr(s, attr) * s.macs for s in chosen) / total if total else 0.0

    totals = {
        "layers": len(layers),
        "macs_per_pass": macs,
        "bwd_data_macs": bwd_macs,
        "weighting": "MAC-weighted means over layers (dX skip over layers that run BWD-D)",
        "x_zero_frac": weighted("x_zero_frac"),
        "dy_zero_frac": weighted("dy_zero_frac"),
        "dx_skip_frac": weighted("dx_skip_frac", only_bwd=True),
        "layers_with_dx_mask": sum(1 for s in layers if s.needs_bwd_data and s.dx_reason is None),
        "layers_act_direct": sum(1 for s in layers if s.act_direct),
    }
    return {
        "provenance": trace.provenance,
        "label": provenance_label(trace.provenance),
        "trace": str(trace.path),
        "loss": trace.manifest.loss,
        "graph": trace.manifest.graph,
        "layers": [asdict(s) for s in layers],
        "totals": totals,
    }


def wide_console() -> Console:
    """A terminal's own width; at least 180 columns when writing to a file or pipe."""
    probe = Console()
    return probe if probe.is_terminal else Console(width=max(180, probe.width))


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:5.1f}%"


def _macs(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def print_table(summary: dict, console: Console | None = None) -> None:
    console = console or wide_console()
    table = Table(title=f"Sparsity per layer — {summary['label']}", title_justify="left")
    for col, justify in (
        ("#", "right"),
        ("layer", "left"),
        ("kind", "left"),
        ("MACs/pass", "right"),
        ("X zero", "right"),
        ("dY zero", "right"),
        ("dX skip", "right"),
        ("act↔dY agree", "right"),
        ("X from", "left"),
        ("Y to", "left"),
    ):
        table.add_column(col, justify=justify, overflow="fold", no_wrap=justify == "right")
    for s in summary["layers"]:
        dx = _pct(s["dx_skip_frac"]) if s["needs_bwd_data"] else "no BWD-D"
        if s["needs_bwd_data"] and s["dx_reason"]:
            dx += " (all)"
        table.add_row(
            str(s["index"]),
            s["name"],
            s["kind"],
            _macs(s["macs"]),
            _pct(s["x_zero_frac"]),
            _pct(s["dy_zero_frac"]),
            dx,
            _pct(s["agreement"]),
            s["x_producer"],
            s["y_consumer"],
        )
    t = summary["totals"]
    table.add_section()
    table.add_row(
        "",
        "total (MAC-weighted)",
        "",
        _macs(t["macs_per_pass"]),
        _pct(t["x_zero_frac"]),
        _pct(t["dy_zero_frac"]),
        _pct(t["dx_skip_frac"]),
        "",
        "",
        "",
    )
    console.print(table)
    reasons = sorted({s["dx_reason"] for s in summary["layers"] if s["needs_bwd_data"] and s["dx_reason"]})
    if reasons:
        console.print("dX needed everywhere ('all') because: " + "; ".join(reasons))


def write_csv(summary: dict, path: Path) -> None:
    fields = list(summary["layers"][0].keys()) if summary["layers"] else ["name"]
    with atomic_file(path, "w") as f:
        f.write(f"# {summary['label']}\n")
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(summary["layers"])


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = summary["layers"]
    xs = list(range(len(layers)))
    fig, (ax, ax_macs) = plt.subplots(
        2,
        1,
        figsize=(max(8, min(24, 0.22 * len(xs) + 4)), 6.5),
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1]},
    )
    series = (
        ("x_zero_frac", "X zero (FWD input sparsity)", "o"),
        ("dy_zero_frac", "dY zero (BWD input sparsity)", "s"),
        ("dx_skip_frac", "dX skippable (output sparsity)", "^"),
    )
    for key, label, marker in series:
        ax.plot(xs, [s[key] for s in layers], marker=marker, markersize=3.5, linewidth=1, label=label)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("fraction")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(summary["label"], fontsize=9)
    ax_macs.bar(xs, [s["macs"] for s in layers], color="grey")
    ax_macs.set_yscale("log")
    ax_macs.set_ylabel("MACs/pass")
    step = max(1, len(xs) // 40)
    ax_macs.set_xticks(xs[::step])
    ax_macs.set_xticklabels([layers[i]["name"] for i in xs[::step]], rotation=90, fontsize=6)
    ax_macs.set_xlabel("layer (network order)")
    fig.tight_layout()
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format=Path(path).suffix.lstrip(".") or "png", dpi=130)
    plt.close(fig)


def plot_correlation(summary: dict, path: Path) -> None:
    """The correlation the paper starts from: per layer, the share of Y whose activation is zero
    against the share of dY that is zero. On the diagonal (and above) where ReLU follows the conv
    directly; near zero dY sparsity where BatchNorm sits between them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    points = [s for s in summary["layers"] if s["act_zero_frac"] is not None]
    for direct, label, marker in ((True, "conv → ReLU", "o"), (False, "conv → BN (→ add) → ReLU", "s")):
        chosen = [s for s in points if s["act_direct"] == direct]
        ax.scatter(
            [s["act_zero_frac"] for s in chosen],
            [s["dy_zero_frac"] for s in chosen],
            label=f"{label} ({len(chosen)})",
            marker=marker,
            s=22,
            alpha=0.8,
        )
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("forward: share of the layer's activations that are zero")
    ax.set_ylabel("backward: share of dY that is zero")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    ax.set_title(summary["label"], fontsize=7)
    fig.tight_layout()
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=130)
    plt.close(fig)
