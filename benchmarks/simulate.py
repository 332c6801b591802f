"""`agos simulate` with every preset on both organisations against one plain training step of the
same batch.

Target (issue 9): simulating dense, zero-gate, input-skip, output-skip, agos and ideal on systolic
and on rows — with the dense twins and the equal-area dense candidates the comparison needs — on a
resnet50 batch-32 224 px trace (seeded init weights, embedded photographs) costs at most twice one
plain training step of that batch. Timed as `agos simulate`: loading and verifying the trace,
unpacking every mask, the exact work counts, every design and the summary (no plot), with the
default worker processes. The two alternate, so drift from other load hits both alike.

    .venv/bin/python benchmarks/simulate.py [--trace DIR] [--model resnet50 --batch-size 32 --reps 3]

writes its figures to benchmarks/results/simulate.json (or --json PATH).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
from pathlib import Path

from common import add_trace_args, base_figures, timed, trace_and_plain_step


def agos_simulate(trace_dir) -> dict:
    from rich.console import Console

    from agos.analysis.model import Analysis
    from agos.analysis.simulation import simulation_of
    from agos.arch.load import DEFAULT_DESIGNS, load_archs
    from agos.capture.trace import load_trace
    from agos.cost.network import MaskSource, simulate_network
    from agos.inputs.provenance import provenance_label
    from agos.report import simulate as report

    trace = load_trace(trace_dir)
    macs = 3 * sum(layer.macs for layer in trace.layers)
    net = simulate_network(
        MaskSource(str(trace_dir)), load_archs(DEFAULT_DESIGNS), trace.manifest, dense_macs=macs
    )
    analysis = Analysis(
        label=provenance_label(trace.provenance, "real masks"),
        provenance=trace.provenance,
        trace=str(trace_dir),
        simulation=simulation_of(net),
    )
    report.print_table(analysis, console=Console(file=io.StringIO(), width=200))
    return analysis.simulation.model_dump(mode="json")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_trace_args(parser)
    args = parser.parse_args()
    with trace_and_plain_step(args) as (trace_dir, prov, plain_step):
        summary = agos_simulate(trace_dir)  # compiles the numba scheduler once
        plain_times, sim_times = [], []
        for _ in range(args.reps):
            plain_times.append(timed(plain_step)[0])
            seconds, summary = timed(agos_simulate, trace_dir)
            sim_times.append(seconds)
    plain, sim = statistics.median(plain_times), statistics.median(sim_times)
    figures = {
        **base_figures(prov, args),
        "plain_step_s": plain,
        "simulate_s": sim,
        "ratio": sim / plain,
        "plain_step_times_s": plain_times,
        "simulate_times_s": sim_times,
        "designs": len(summary["designs"]),
        "speedup_over_twin": {n: summary["designs"][n]["speedup_over_twin"] for n in summary["requested"]},
        "speedup_over_best_dense_equal_area": {
            n: summary["designs"][n].get("speedup_over_best_dense_equal_area") for n in summary["requested"]
        },
    }
    print(
        f"{figures['model']}, batch {figures['batch_size']}, {figures['image_size']} px, "
        f"cpu {figures['threads']} threads, median of {args.reps}"
    )
    print(f"  plain training step          {plain:8.2f} s")
    print(
        f"  agos simulate ({len(figures['speedup_over_twin'])} designs, {figures['designs']} simulated)"
        f"  {sim:8.2f} s   ratio {sim / plain:.3f}  (target ≤ 2)"
    )
    for name, s in figures["speedup_over_twin"].items():
        eq = figures["speedup_over_best_dense_equal_area"][name]
        print(
            f"  {name:22s} over twin: backprop {s['backprop']:.2f}×  iteration {s['iteration']:.2f}×"
            + (f"   over equal-area dense {eq:.2f}×" if eq is not None else "")
        )
    out = args.json or Path(__file__).parent / "results" / "simulate.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(figures, indent=1) + "\n")
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
