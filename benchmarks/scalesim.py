"""agos's dense `systolic` against SCALE-Sim 3.0.0 over a whole resnet18 iteration (issue 10, item 3).

For every conv and the FC of a real trace, and every pass agos runs (the first layer runs no BWD-D),
three counts of compute cycles (no memory stalls) on a 32×32 output-stationary array:
- `agos`: agos's own counting — `dense@systolic` (the shipped design, 2 MiB buffer) on the trace,
  work + fill/drain of `simulate_pass` (valid taps only; BWD-D per stride phase);
- `scalesim`: SCALE-Sim's count of the pass as its im2col GEMM (agos.validate.gemm: padding taps
  and stride holes are work), one SCALE-Sim run per distinct GEMM;
- `agos_gemm`: agos's cost model run on that same GEMM (SCALE-Sim's counting), expected to be
  `scalesim` + 1 per GEMM copy.
and the iteration ratio agos / scalesim. SCALE-Sim steps every cycle in Python (~0.3 ms a cycle
here), so GEMMs above --full-below cycles are run as one fold and scaled by the fold count (exact:
agos.validate.scalesim, tests/test_scalesim.py); below it both are run and must agree.

    .venv/bin/pip install -e '.[dev]'     # SCALE-Sim 3.0.0
    .venv/bin/python benchmarks/scalesim.py [--image-sizes 64 224 --batch-size 8]
        [--trace DIR ...] [--out benchmarks/results/scalesim.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "scalesim.json"
# this file's name is SCALE-Sim's package name: keep its folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]


def _trace(args: argparse.Namespace, size: int, tmp: Path) -> Path:
    from agos.api import trace as capture_trace
    from agos.inputs.options import RunOptions

    out = tmp / f"{args.model}-{size}"
    options = RunOptions(
        model=args.model, batch_size=args.batch_size, image_size=size, seed=args.seed, device="cpu"
    )
    t = time.perf_counter()
    capture_trace(options, out)
    print(f"captured {out} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return out


def compare_trace(trace_dir: Path, full_below: int, with_agos_gemm: bool) -> dict:
    from agos.arch.load import load_arch
    from agos.capture.trace import load_trace
    from agos.cost.model import LayerContext, SharedPasses, layer_area, simulate_pass
    from agos.cost.network import MaskSource
    from agos.validate import scalesim
    from agos.validate.gemm import DESIGN, agos_gemm_cycles, compute_cycles, layer_gemm
    from agos.workload.counts import layer_work
    from agos.workload.passes import PASSES

    trace = load_trace(trace_dir)
    loaded = load_arch(DESIGN)
    area = layer_area(loaded)
    org = loaded.arch.organisation
    rows_, cols = org.pe_array.rows, org.pe_array.cols
    shared = SharedPasses()
    rows: list[dict] = []
    gemms = []
    t0 = time.perf_counter()
    for _, masks in MaskSource(str(trace_dir)).layers():
        ctx = LayerContext(masks, layer_work(masks))
        g = masks.geometry
        for pass_ in PASSES:
            if pass_ == "bwd_data" and not masks.needs_bwd_data:
                continue  # no design computes the first layer's dX
            cost = simulate_pass(pass_, ctx, loaded, area, shared)
            gemm = layer_gemm(g, pass_, masks.name, cols)
            gemms.append(gemm)
            rows.append(
                {
                    "layer": masks.name,
                    "kind": g.kind,
                    "pass": pass_,
                    "geometry": f"{g.c}→{g.k} {g.r}×{g.s}/{g.stride[0]} pad {g.padding[0]} "
                    f"groups {g.groups}, {g.h}×{g.w}→{g.p}×{g.q}, N {g.n}",
                    "gemm": {"m": gemm.m, "n": gemm.n, "k": gemm.k, "copies": gemm.copies},
                    "agos_macs": cost.dense_macs,
                    "gemm_macs": gemm.macs,
                    "agos": compute_cycles(cost),
                    "agos_work": cost.components["work"],
                    "agos_fill_drain": cost.components["fill_drain"],
                    "agos_with_stalls": cost.cycles,
                    "agos_tiling": list(cost.blocks),
                }
            )
    t_agos = time.perf_counter() - t0
    t0 = time.perf_counter()
    folded = scalesim.simulate(gemms, rows_, cols, method="fold")
    small = [i for i, r in enumerate(folded) if r.cycles <= full_below]
    whole = scalesim.simulate([gemms[i] for i in small], rows_, cols, method="full")
    for i, res in zip(small, whole, strict=True):
        if res.cycles != folded[i].cycles:
            raise SystemExit(
                f"SCALE-Sim whole run {res.cycles} ≠ fold-scaled {folded[i].cycles} "
                f"on {gemms[i].name} {gemms[i].pass_}"
            )
    t_scalesim = time.perf_counter() - t0
    checked = set(small)
    t0 = time.perf_counter()
    for i, (row, res) in enumerate(zip(rows, folded, strict=True)):
        row["scalesim"] = res.cycles
        row["scalesim_method"] = "full (= fold)" if i in checked else "fold"
        row["agos_minus_scalesim"] = row["agos"] - res.cycles
        row["ratio"] = row["agos"] / res.cycles
        if with_agos_gemm:
            row["agos_gemm"] = agos_gemm_cycles(gemms[i])
            row["agos_gemm_minus_scalesim"] = row["agos_gemm"] - res.cycles
    t_gemm = time.perf_counter() - t0

    def total(key: str, pass_: str | None = None) -> int:
        return sum(r[key] for r in rows if pass_ is None or r["pass"] == pass_)

    totals = {}
    for span in (*PASSES, None):
        keys = ["agos", "scalesim", "agos_macs", "gemm_macs"] + (["agos_gemm"] if with_agos_gemm else [])
        t = {k: total(k, span) for k in keys}
        t["ratio"] = t["agos"] / t["scalesim"]
        totals[span or "iteration"] = t
    prov = trace.provenance
    return {
        "model": prov.model,
        "image_size": prov.image_size,
        "batch_size": prov.batch_size,
        "seed": prov.seed,
        "trace_weights_sha256": prov.weights.sha256,
        "layer_passes": len(rows),
        "scalesim_runs_whole": len(small),
        "max_abs_agos_gemm_minus_scalesim_per_copy": (
            max(abs(r["agos_gemm_minus_scalesim"]) / r["gemm"]["copies"] for r in rows)
            if with_agos_gemm
            else None
        ),
        "totals": totals,
        "seconds": {"agos": t_agos, "scalesim": t_scalesim, "agos_gemm": t_gemm},
        "rows": rows,
    }


def _print(result: dict) -> None:
    print(
        f"\n{result['model']} {result['image_size']} px, batch {result['batch_size']}: "
        f"{result['layer_passes']} layer-passes"
    )
    head = f"{'layer':24} {'pass':10} {'M×N×K':>20} {'agos':>11} {'SCALE-Sim':>11} {'diff':>11} {'ratio':>6}"
    with_gemm = "agos_gemm" in result["rows"][0]
    print(head + ("  agos(GEMM)−SS" if with_gemm else ""))
    for r in result["rows"]:
        g = r["gemm"]
        shape = f"{g['m']}×{g['n']}×{g['k']}" + (f" ×{g['copies']}" if g["copies"] > 1 else "")
        line = (
            f"{r['layer']:24} {r['pass']:10} {shape:>20} {r['agos']:11d} {r['scalesim']:11d} "
            f"{r['agos_minus_scalesim']:11d} {r['ratio']:6.3f}"
        )
        print(line + (f"  {r['agos_gemm_minus_scalesim']:+d}" if with_gemm else ""))
    for span, t in result["totals"].items():
        print(f"  {span:11} agos {t['agos']:13d}  SCALE-Sim {t['scalesim']:13d}  ratio {t['ratio']:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trace", type=Path, nargs="*", default=None, help="reuse these traces")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--full-below", type=int, default=5000, help="also run whole GEMMs up to this many cycles"
    )
    parser.add_argument("--no-agos-gemm", action="store_true", help="skip agos's count of the GEMMs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from agos.errors import AgosError
    from agos.fileio import atomic_file

    try:
        from agos.validate import scalesim

        scalesim.version()
        results = []
        with tempfile.TemporaryDirectory() as tmp:
            traces = args.trace or [_trace(args, size, Path(tmp)) for size in args.image_sizes]
            for trace_dir in traces:
                result = compare_trace(Path(trace_dir), args.full_below, not args.no_agos_gemm)
                _print(result)
                results.append(result)
    except AgosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    import numpy

    from agos.arch.load import load_arch
    from agos.validate.gemm import DESIGN

    loaded = load_arch(DESIGN)
    doc = {
        "what": "agos dense@systolic compute cycles (work + fill/drain, own counting: valid taps) vs "
        "SCALE-Sim 3.0.0 (im2col GEMM: padding taps and stride holes as work), 32×32 output stationary",
        "provenance": {
            "command": " ".join(["benchmarks/scalesim.py", *sys.argv[1:]]),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "design": DESIGN,
            "design_sha256": loaded.sha256,
            "scalesim": scalesim.version(),
            "numpy": numpy.__version__,
            "python": platform.python_version(),
            "full_below": args.full_below,
        },
        "iteration_ratio": {str(r["image_size"]): r["totals"]["iteration"]["ratio"] for r in results},
        "results": results,
    }
    with atomic_file(args.out) as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
