"""SCALE-Sim 3.0.0 runs `agos export --to scalesim` of a resnet18 iteration (issue 22, item 3).

Captures resnet18 (init weights, the embedded photographs, seed 0; batch 2, 32 px by default, or
--trace DIR), exports it with `agos export --to scalesim` (dense@systolic's config: 32×32 output
stationary, 2 MiB buffer in three SRAMs, 128 values a cycle of DRAM), runs SCALE-Sim on the exported
files exactly as written — every GEMM whole, no fold extrapolation — and sets against each row agos's
count of that GEMM on dense@systolic with SCALE-Sim's counting (`agos.validate.gemm.agos_gemm_cycles`:
padding taps and stride holes as work, fill/drain per fold, a buffer that holds the GEMM). Expected:
agos = SCALE-Sim's compute cycles + 1 on every row (SCALE-Sim reports the last cycle's zero-based
index; docs/validation.md). For context it also gives agos's own count of each pass (dense@systolic
as shipped, valid taps only, BWD-D per stride phase, the 2 MiB buffer's tiling).

SCALE-Sim steps every cycle in Python: ~1.6 M cycles at 32 px batch 2 take several minutes.

    .venv/bin/python benchmarks/export_scalesim.py [--trace DIR] [--image-size 32 --batch-size 2]
        [--out benchmarks/results/export_scalesim.json]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "export_scalesim.json"
# benchmarks/scalesim.py is named like SCALE-Sim's package: keep this folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]


def _own_counts(trace_dir: Path) -> dict[tuple[str, str], int]:
    """agos's own compute cycles (work + fill/drain) of each layer pass on dense@systolic."""
    from agos.arch.load import load_arch
    from agos.cost.model import LayerContext, SharedPasses, layer_area, simulate_pass
    from agos.cost.network import MaskSource
    from agos.validate.gemm import DESIGN, compute_cycles
    from agos.workload.counts import layer_work
    from agos.workload.passes import PASSES

    loaded = load_arch(DESIGN)
    area, shared, out = layer_area(loaded), SharedPasses(), {}
    for _, masks in MaskSource(str(trace_dir)).layers():
        ctx = LayerContext(masks, layer_work(masks))
        for pass_ in PASSES:
            if pass_ == "bwd_data" and not masks.needs_bwd_data:
                continue
            out[(masks.name, pass_)] = compute_cycles(simulate_pass(pass_, ctx, loaded, area, shared))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trace", type=Path, default=None, help="reuse this trace")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from agos.api import trace as capture_trace
    from agos.capture.trace import load_trace
    from agos.cli import main as agos
    from agos.errors import AgosError
    from agos.export import scalesim
    from agos.fileio import write_json
    from agos.validate.gemm import DESIGN, agos_gemm_cycles
    from agos.validate.scalesim import run_export, version
    from agos.workload.gemm import Gemm
    from agos.workload.passes import PASSES

    try:
        version()
    except AgosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    with tempfile.TemporaryDirectory() as tmp:
        trace_dir = args.trace
        if trace_dir is None:
            from agos.inputs.options import RunOptions

            trace_dir = Path(tmp) / "trace"
            options = RunOptions(
                model=args.model, batch_size=args.batch_size, image_size=args.image_size, seed=args.seed,
                device="cpu",
            )  # fmt: skip
            capture_trace(options, trace_dir)
        folder = Path(tmp) / "export"
        command = ["export", str(trace_dir), "--to", "scalesim", "--out", str(folder)]
        if agos(command) != 0:
            return 1
        t0 = time.perf_counter()
        reports = run_export(folder)
        t_scalesim = time.perf_counter() - t0
        with open(folder / scalesim.GEMMS, newline="") as f:
            gemms = list(csv.DictReader(f))
        exported = {name: (folder / name).read_text() for name in (scalesim.CONFIG, scalesim.TOPOLOGY)}
        prov = json.loads((folder / "provenance.json").read_text())
        own = _own_counts(trace_dir)
        trace_prov = load_trace(trace_dir).provenance
    rows, cache = [], {}
    for g, rep in zip(gemms, reports, strict=True):
        shape = (int(g["M"]), int(g["N"]), int(g["K"]))
        if shape not in cache:
            cache[shape] = agos_gemm_cycles(Gemm(g["layer"], g["pass"], *shape))
        rows.append(
            {
                "topology_name": g["topology_name"],
                "layer": g["layer"],
                "pass": g["pass"],
                "m": shape[0],
                "n": shape[1],
                "k": shape[2],
                "scalesim_total": rep.cycles,
                "scalesim_stalls": rep.stall_cycles,
                "scalesim_compute": rep.compute_cycles,
                "agos_scalesim_counting": cache[shape],
                "agos_minus_scalesim": cache[shape] - rep.compute_cycles,
            }
        )
    totals = {}
    for span in (*PASSES, "iteration"):
        mine = [r for r in rows if span in ("iteration", r["pass"])]
        totals[span] = {
            "scalesim_compute": sum(r["scalesim_compute"] for r in mine),
            "scalesim_stalls": sum(r["scalesim_stalls"] for r in mine),
            "agos_scalesim_counting": sum(r["agos_scalesim_counting"] for r in mine),
            "agos_own_counting": sum(v for (_, p), v in own.items() if span in ("iteration", p)),
            "gemms": len(mine),
        }
    diffs = sorted({r["agos_minus_scalesim"] for r in rows})
    print(f"{prov['label']}: {len(rows)} GEMMs, SCALE-Sim {t_scalesim:.0f} s")
    print(f"{'span':11} {'GEMMs':>5} {'SCALE-Sim':>11} {'agos (SS way)':>13} {'agos own':>11} {'stalls':>9}")
    for span, t in totals.items():
        print(
            f"{span:11} {t['gemms']:5d} {t['scalesim_compute']:11d} {t['agos_scalesim_counting']:13d} "
            f"{t['agos_own_counting']:11d} {t['scalesim_stalls']:9d}"
        )
    print(f"agos − SCALE-Sim per GEMM: {diffs}")
    import numpy

    doc = {
        "what": "SCALE-Sim 3.0.0 on `agos export --to scalesim` (every GEMM whole, the exported config) vs "
        "agos's dense@systolic count of each GEMM with SCALE-Sim's counting; agos's own counting for context",
        "provenance": {
            "command": " ".join(["benchmarks/export_scalesim.py", *sys.argv[1:]]),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "trace": prov["label"],
            "trace_weights_sha256": trace_prov.weights.sha256,
            "design": DESIGN,
            "scalesim": version(),
            "numpy": numpy.__version__,
            "python": platform.python_version(),
            "scalesim_seconds": round(t_scalesim, 1),
        },
        "config": exported[scalesim.CONFIG],
        "agos_minus_scalesim_per_gemm": diffs,
        "totals": totals,
        "rows": rows,
    }
    write_json(doc, args.out)
    print(f"wrote {args.out}")
    return 0 if diffs == [1] else 1


if __name__ == "__main__":
    sys.exit(main())
