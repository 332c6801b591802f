"""Where `agos simulate`'s time goes: cProfile of one in-process simulation (`--workers 1`) of every
preset on both organisations (the designs of benchmarks/simulate.py, twins and equal-area
candidates included), after a warm-up run that compiles the numba kernels.

    .venv/bin/python benchmarks/profile_simulate.py --trace DIR [--out benchmarks/results/profile-simulate]

writes OUT.txt (the time by part of the model, then the functions by cumulative and by own time)
and OUT.json (the parts). The parts are cumulative times of the functions that do them, so they
overlap nothing: the tiling search is `choose_tiling` less the compute it asks for; the compute is
item building (`build_items`) and scheduling (`schedule.lockstep` / `independent`). cProfile adds
its own overhead to every Python call: compare parts and runs with each other, not with wall times
taken without it. The profiler's clock is the process's CPU time (`time.process_time`), not the
wall clock, so that other load on a shared machine does not inflate whichever function it hit."""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import time
from pathlib import Path

PARTS = {  # part: (file suffix, function) whose cumulative times add up to it
    "masks (unpack)": [("density/real.py", "real_masks")],
    "exact counts (workload.counts)": [("workload/counts.py", "layer_work")],
    "tiling search (less its compute)": [("cost/tiling.py", "choose_tiling")],
    "compute: item building": [("cost/items.py", "build_items")],
    "compute: scheduling": [("cost/schedule.py", "lockstep"), ("cost/schedule.py", "independent")],
    "stream-block counts (workload.chunks)": [("workload/chunks.py", "block_counts")],
    "needed dX channels (cost.layout)": [("cost/layout.py", "needed_channels")],
    "bounds per design (cost.model._bounds)": [("cost/model.py", "_bounds")],
}
COMPUTE = [("cost/model.py", "compute_for")]  # the closures choose_tiling calls


def _cumulative(stats: pstats.Stats, wanted) -> float:
    total = 0.0
    for (file, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
        if any(file.endswith(suffix) and func == name for suffix, name in wanted):
            total += ct
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trace", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "profile-simulate")
    parser.add_argument("--top", type=int, default=35)
    args = parser.parse_args()
    os.environ["AGOS_PROGRESS"] = "0"
    from agos.arch.load import DEFAULT_DESIGNS, load_archs
    from agos.capture.trace import load_trace
    from agos.cost.network import MaskSource, simulate_network

    trace = load_trace(args.trace)
    designs = load_archs(DEFAULT_DESIGNS)

    def run():
        return simulate_network(MaskSource(str(args.trace)), designs, trace.manifest, workers=1)

    run()  # compiles (or loads) the numba kernels
    start, cpu = time.perf_counter(), time.process_time()
    net = run()
    plain_wall, plain_cpu = time.perf_counter() - start, time.process_time() - cpu
    profile = cProfile.Profile(time.process_time)
    start = time.perf_counter()
    profile.runcall(run)
    wall = time.perf_counter() - start
    stats = pstats.Stats(profile)
    total = stats.total_tt
    parts = {name: _cumulative(stats, wanted) for name, wanted in PARTS.items()}
    parts["tiling search (less its compute)"] -= _cumulative(stats, COMPUTE)
    parts["other"] = total - sum(parts.values())
    prov = trace.provenance
    head = (
        f"{prov.model}, batch {prov.batch_size}, {prov.image_size} px, real masks; "
        f"{len(net.designs)} simulated designs ({len(designs)} requested), one worker"
    )
    lines = [
        head,
        f"without the profiler {plain_wall:.2f} s wall, {plain_cpu:.2f} s CPU; under cProfile {wall:.2f} s "
        f"wall ({total:.2f} s CPU profiled)",
        "",
        f"{'part':44s} {'s':>7s} {'share':>6s}",
    ]
    lines += [f"{name:44s} {sec:7.2f} {100 * sec / total:5.1f}%" for name, sec in parts.items()]
    for order in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(profile, stream=buf).strip_dirs().sort_stats(order).print_stats(args.top)
        text = buf.getvalue()
        lines += ["", f"-- by {order} time --", text[text.index("   ncalls") :].rstrip()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.txt").write_text("\n".join(lines) + "\n")
    Path(f"{args.out}.json").write_text(
        json.dumps(
            {
                "label": head,
                "wall_s": plain_wall,
                "cpu_s": plain_cpu,
                "profiled_wall_s": wall,
                "profiled_s": total,
                "parts_s": parts,
                "designs": len(net.designs),
            },
            indent=1,
        )
        + "\n"
    )
    print("\n".join(lines[:14]))
    print(f"wrote {args.out}.txt and .json")


if __name__ == "__main__":
    main()
