"""CPU seconds of the report's per-analysis plots and of writing analysis.json, on the analyses of a
finished `agos reproduce` (its cache/analysis-*/ stages), so that before and after are timed on the
same figures.

Target (issue 22, `make demo` ≤ 3 min): the plotting of a quick reproduce at most 40% of what it
was; the JSON writing as small as it can be. Process CPU time (`time.process_time`), not wall time:
the machine is shared. Each analysis's plots are written into --png so that they can be looked at.

    PYTHONPATH=src .venv/bin/python -m agos reproduce --quick --models alexnet,googlenet,mobilenet_v2 \
        --trained none --out /tmp/plots-run
    PYTHONPATH=src .venv/bin/python benchmarks/plot_time.py --run /tmp/plots-run --png /tmp/pngs \
        --label after [--reps 2] [--json benchmarks/results/plot-time.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def cpu(fn, reps: int) -> float:
    """The least process CPU seconds of `reps` calls (the least: other load only adds)."""
    best = float("inf")
    for _ in range(reps):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True, help="a finished `agos reproduce` folder")
    parser.add_argument("--png", type=Path, required=True, help="where the plots are written")
    parser.add_argument("--label", required=True, help="the key of this measurement (before, after, …)")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "plot-time.json")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    load_before = os.getloadavg()[0]
    from agos.analysis import model as analysis_model
    from agos.report import simulate as simulate_report
    from agos.report import sparsity as sparsity_report
    from agos.report.sparsity import plot_correlation
    from agos.stages.analyse import read_analysis

    stages = sorted(args.run.glob("cache/analysis-*/"))
    if not stages:
        raise SystemExit(f"no cache/analysis-*/ stages in {args.run}")
    args.png.mkdir(parents=True, exist_ok=True)
    rows = []
    for stage in stages:
        analysis = read_analysis(stage)
        model = analysis.provenance.model
        tag = f"{model}-{analysis.density.kind if analysis.density else 'none'}"
        row = {"analysis": tag, "layers": len(analysis.sparsity.layers) if analysis.sparsity else None}
        png = {kind: args.png / f"{tag}-{kind}.png" for kind in ("simulate", "sparsity", "correlation")}
        png["json"] = args.png / f"{tag}-analysis.json"
        jobs = {
            "simulate_plot": lambda a=analysis, p=png: simulate_report.plot(a, p["simulate"]),
            "sparsity_plot": lambda a=analysis, p=png: sparsity_report.plot(a, p["sparsity"]),
            "correlation_plot": lambda a=analysis, p=png: plot_correlation(a, p["correlation"]),
            "analysis_json": lambda a=analysis, p=png: analysis_model.write(a, p["json"]),
        }
        for name, job in jobs.items():
            row[name] = round(cpu(job, args.reps), 3)
        print(json.dumps(row))
        rows.append(row)
    keys = ("simulate_plot", "sparsity_plot", "correlation_plot", "analysis_json")
    totals = {k: round(sum(r[k] for r in rows), 3) for k in keys}
    totals["plots"] = round(totals["simulate_plot"] + totals["sparsity_plot"] + totals["correlation_plot"], 3)
    print("totals", json.dumps(totals))
    results = json.loads(args.json.read_text()) if args.json.is_file() else {}
    results[args.label] = {
        "unit": "process CPU seconds, least of reps",
        "matplotlib": matplotlib.__version__,
        "agos_source": str(Path(analysis_model.__file__).parents[2]),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before, after
        "cpus": os.cpu_count(),
        "reps": args.reps,
        "run": str(args.run),
        "analyses": rows,
        "totals": totals,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
