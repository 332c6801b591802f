"""`agos bounds` against one plain training step of the same batch, side by side in one process.

Target (issue 3): the exact work counts of a resnet50 batch-32 224 px trace (seeded init weights,
embedded photographs) cost at most one plain training step of that batch (ratio ≤ 1).

What is timed as `agos bounds`: loading and verifying the trace (SHA-256 of the masks), unpacking
every mask, every layer's exact counts, and rendering the tables (into memory) — all of the command
but the terminal. The plain step is forward, loss and backward of the same batch on the same model,
with nothing attached. The two alternate, so drift from other load hits both alike.

    .venv/bin/python benchmarks/bounds.py [--trace DIR] [--model resnet50 --batch-size 32 --reps 3]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
from pathlib import Path

from common import add_trace_args, base_figures, timed, trace_and_plain_step


def agos_bounds(trace_dir: Path) -> dict:
    from rich.console import Console

    from agos.analysis.bounds import compute_bounds
    from agos.analysis.model import Analysis
    from agos.capture.trace import load_trace
    from agos.density.real import iter_real_masks
    from agos.inputs.provenance import provenance_label
    from agos.report import bounds

    trace = load_trace(trace_dir)
    section = compute_bounds(iter_real_masks(trace), len(trace.layers))
    label = provenance_label(trace.provenance, section.density_source)
    analysis = Analysis(label=label, provenance=trace.provenance, bounds=section)
    bounds.print_table(analysis, Console(file=io.StringIO(), width=200))
    return section.model_dump(mode="json")


def counts_without_shortcuts(trace_dir: Path) -> None:
    """The general path: every output channel's BWD-W both-nonzero count convolved (what a model
    without BN between conv and ReLU, e.g. vgg16, pays in every layer)."""
    from agos.capture.trace import load_trace
    from agos.density.real import iter_real_masks
    from agos.workload.counts import layer_work

    for masks in iter_real_masks(load_trace(trace_dir)):
        _ = layer_work(masks, shortcuts=False).totals


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_trace_args(parser)
    parser.add_argument(
        "--no-general", action="store_true", help="skip timing the counts without the BWD-W shortcuts"
    )
    args = parser.parse_args()

    with trace_and_plain_step(args) as (trace_dir, prov, plain_step):
        summary = agos_bounds(trace_dir)
        plain_times, bounds_times, general_times = [], [], []
        for _ in range(args.reps):  # interleaved, so drift hits all alike
            plain_times.append(timed(plain_step)[0])
            seconds, summary = timed(agos_bounds, trace_dir)
            bounds_times.append(seconds)
            if not args.no_general:
                general_times.append(timed(counts_without_shortcuts, trace_dir)[0])

    plain, counted = statistics.median(plain_times), statistics.median(bounds_times)
    figures = {
        **base_figures(prov, args),
        "plain_step_s": plain,
        "bounds_s": counted,
        "ratio": counted / plain,
        "plain_step_times_s": plain_times,
        "bounds_times_s": bounds_times,
        "counts_without_shortcuts_s": statistics.median(general_times) if general_times else None,
        "counts_without_shortcuts_times_s": general_times,
        "macs_per_pass": summary["totals"]["fwd"]["dense"],
        "speedups": summary["speedups"],
    }
    print(
        f"{figures['model']}, batch {figures['batch_size']}, {figures['image_size']} px, "
        f"cpu {figures['threads']} threads, median of {args.reps}"
    )
    print(f"  plain training step   {plain:8.2f} s")
    print(f"  agos bounds           {counted:8.2f} s   ratio {counted / plain:.3f}  (target ≤ 1)")
    if general_times:
        general = figures["counts_without_shortcuts_s"]
        print(
            f"  counts, no shortcuts  {general:8.2f} s   ratio {general / plain:.3f}  (every BWD-W convolved)"
        )
    for policy, s in summary["speedups"].items():
        print(f"  ideal speedup {policy:13s} backprop {s['backprop']:.2f}×  iteration {s['iteration']:.2f}×")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
