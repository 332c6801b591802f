"""The trajectory as a table on the terminal, a CSV and a plot against training step."""

from __future__ import annotations

import csv
import io

from rich.console import Console

from agos.fileio import owned_file
from agos.report.format import Col, pct, print_fitted, times, wide_console
from agos.stages.records import TrajectoryRecord

SPARSITY = (("x_zero_frac", "X zero"), ("dy_zero_frac", "dY zero"), ("dx_skip_frac", "dX skip"))


def _designs(result: TrajectoryRecord) -> list[str]:
    return list(result.points[0].designs) if result.points else []


def _label(result: TrajectoryRecord) -> str:
    """Where the figures came from; the weights are each point's own, so they are not in it."""
    s = result.settings.run
    return (
        f"{s.model} · {result.source} · data {s.data} · batch {s.batch_size} · "
        f"{s.image_size} px · seed {s.seed} · capture batch {result.capture_batch} · real masks"
    )


def rows(result: TrajectoryRecord) -> list[dict]:
    out = []
    for p in result.points:
        row = {"step": p.step, "loss": p.loss, "lossless": p.lossless, "sha256": p.sha256[:12]}
        row.update({key: getattr(p.sparsity, key) for key, _ in SPARSITY})
        row["mac_bound_backprop"] = p.mac_bounds["input+output"].backprop
        for name, d in p.designs.items():
            row[f"{name} backprop"] = d.speedup_over_twin.backprop
            row[f"{name} iteration"] = d.speedup_over_twin.iteration
            row[f"{name} energy/twin"] = d.energy_vs_twin
        row["checkpoint"] = p.checkpoint
        out.append(row)
    return out


def write_csv(result: TrajectoryRecord, path) -> None:
    table = rows(result)
    buffer = io.StringIO()
    if table:
        writer = csv.DictWriter(buffer, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    with owned_file(path) as f:
        f.write(buffer.getvalue())


def print_table(result: TrajectoryRecord, console: Console | None = None) -> None:
    """Backprop speedups only, so that the table fits a terminal; the CSV and JSON have the rest."""
    console = console or wide_console()
    cols = [Col(c) for c in ("step", "loss", "X zero", "dY zero", "dX skip", "MAC bound")]
    cols += [*(Col(name) for name in _designs(result)), Col("lossless", "center")]
    rows = []
    for p in result.points:
        cells = [str(p.step), f"{p.loss:.3f}"]
        cells += [pct(getattr(p.sparsity, key), width=0) for key, _ in SPARSITY]
        cells.append(times(p.mac_bounds["input+output"].backprop))
        cells += [times(d.speedup_over_twin.backprop) for d in p.designs.values()]
        cells.append({True: "yes", False: "NO", None: "not checked"}[p.lossless])
        rows.append(cells)
    print_fitted(console, "Sparsity along training (backprop speedup over the dense twin)", cols, rows)
    console.print(_label(result), markup=False, highlight=False)
    console.print("twin: the same organisation with skipping off; MAC bound: skipping every zero operand")


def plot(result: TrajectoryRecord, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    points = result.points
    steps = [p.step for p in points]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    for key, name in SPARSITY:
        top.plot(steps, [100 * getattr(p.sparsity, key) for p in points], marker="o", label=name)
    top.set_ylabel("MAC-weighted %")
    top.set_ylim(0, 100)
    top.legend(fontsize=8)
    top.set_title("Sparsity along training", fontsize=10)
    bottom.plot(
        steps,
        [p.mac_bounds["input+output"].backprop for p in points],
        "k--",
        label="MAC bound (input+output skipping)",
    )
    for name in _designs(result):
        values = [p.designs[name].speedup_over_twin.backprop for p in points]
        bottom.plot(steps, values, marker="o", label=name)
    bottom.axhline(1.0, color="grey", linewidth=0.6)
    bottom.set_ylabel("backprop speedup over dense twin")
    bottom.set_xlabel("training step")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.legend(fontsize=8)
    fig.text(0.5, 0.005, _label(result), ha="center", fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    with owned_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
