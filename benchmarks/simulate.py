"""`agos simulate` with all six presets against one plain training step of the same batch.

Target (issue 4): simulating dense, zero-gate, input-skip, output-skip, agos and ideal on a
resnet50 batch-32 224 px trace (seeded init weights, embedded photographs) costs at most twice one
plain training step of that batch. Timed as `agos simulate`: loading and verifying the trace,
unpacking every mask, the exact work counts, the six designs and the summary (no plot). The two
alternate, so drift from other load hits both alike.

    .venv/bin/python benchmarks/simulate.py [--trace DIR] [--model resnet50 --batch-size 32 --reps 3]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics

from common import add_trace_args, base_figures, timed, trace_and_plain_step


def agos_simulate(trace_dir) -> dict:
    from rich.console import Console

    from agos.arch.load import PRESETS, load_archs
    from agos.capture.trace import load_trace
    from agos.cost.network import simulate_network
    from agos.density.select import layer_masks
    from agos.report import simulate as report

    trace = load_trace(trace_dir)
    results = simulate_network(layer_masks(trace), load_archs(",".join(PRESETS)))
    summary = report.summarise(results, trace.provenance, "real masks")
    report.print_table(summary, console=Console(file=io.StringIO(), width=200))
    return summary


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
        "speedup": {n: a["speedup"] for n, a in summary["archs"].items()},
    }
    print(
        f"{figures['model']}, batch {figures['batch_size']}, {figures['image_size']} px, "
        f"cpu {figures['threads']} threads, median of {args.reps}"
    )
    print(f"  plain training step          {plain:8.2f} s")
    print(f"  agos simulate (six presets)  {sim:8.2f} s   ratio {sim / plain:.3f}  (target ≤ 2)")
    for name, s in figures["speedup"].items():
        print(f"  {name:12s} backprop {s['backprop']:.2f}×  iteration {s['iteration']:.2f}×")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
