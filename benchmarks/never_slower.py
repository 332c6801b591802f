"""Issue 20's first check, at the quick reproduce's size: no skipping design is slower than its
dense twin on any pass (beyond 1 %), and `agos` is at least `input-skip` on backprop on both
organisations. Six CNNs at init and two trained networks, batch 8, 160 px, real masks; every
skipping preset on both organisations, with the per-layer oracle and the always-on variant beside
(what the bypass rule is worth).

    .venv/bin/python benchmarks/never_slower.py [--traces DIR] [--batch-size 8 --image-size 160]

captures the traces it lacks into --traces (default: a temporary folder) and writes
benchmarks/results/never-slower.json (or --json PATH); exit 1 when either property fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
NETWORKS = (
    "alexnet:init",
    "vgg16:init",
    "resnet18:init",
    "resnet50:init",
    "googlenet:init",
    "mobilenet_v2:init",
    "mobilenet_v2:imagenet",
    "efficientnet_lite0:imagenet",
)
SKIPPING = ("zero-gate", "input-skip", "output-skip", "agos")
TOLERANCE = 0.99  # "slower than its twin by more than 1 %"


def _trace(folder: Path, model: str, weights: str, batch: int, size: int) -> Path:
    out = folder / f"{model}-{weights}-b{batch}-{size}px"
    if not (out / "manifest.json").is_file():
        cmd = [sys.executable, "-m", "agos", "trace", "--model", model, "--weights", weights]
        cmd += ["--batch-size", str(batch), "--image-size", str(size), "--out", str(out), "--force"]
        subprocess.run(cmd, check=True, capture_output=True)
    return out


def _network(trace_dir: Path) -> dict:
    from agos.arch.load import ORGANISATIONS, load_archs
    from agos.capture.trace import load_trace
    from agos.cost.network import MaskSource, simulate_network, speedups
    from agos.density.select import resolve_density
    from agos.inputs.provenance import provenance_label
    from agos.workload.passes import PASSES

    trace = load_trace(trace_dir)
    designs = load_archs(",".join(SKIPPING))
    start = time.perf_counter()
    net = simulate_network(
        MaskSource.resolved_from(trace, resolve_density(trace, "real", 0)),
        designs,
        trace.manifest,
        workers=1,
        oracle=True,
    )
    figures = {d.name: speedups(net, d.name) for d in designs}
    worst = min(
        (f["speedup_over_twin"][p], name, p)
        for name, f in figures.items()
        for p in PASSES
        if f["speedup_over_twin"][p] is not None
    )
    backprop = {
        org: {
            "agos": figures[f"agos@{org}"]["speedup_over_twin"]["backprop"],
            "input-skip": figures[f"input-skip@{org}"]["speedup_over_twin"]["backprop"],
        }
        for org in ORGANISATIONS
    }
    return {
        "label": provenance_label(trace.provenance),
        "seconds": time.perf_counter() - start,
        "worst_pass": {"speedup_over_twin": worst[0], "design": worst[1], "pass": worst[2]},
        "backprop": backprop,
        "designs": {
            name: {
                "speedup_over_twin": f["speedup_over_twin"],
                "mac_bound_speedup": f["mac_bound_speedup"],
                "always_on_speedup_over_twin": f["always_on_speedup_over_twin"],
                "oracle_speedup_over_twin": f["oracle_speedup_over_twin"],
                "speedup_over_best_dense_equal_area": f["speedup_over_best_dense_equal_area"],
                "best_dense_equal_area": f["best_dense_equal_area"],
                "bypassed_passes": f["bypassed_passes"],
                "flags": f["flags"],
            }
            for name, f in figures.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, help="keep (and reuse) the traces here")
    parser.add_argument("--networks", default=",".join(NETWORKS), help="model:weights, comma-separated")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--json", type=Path, default=RESULTS / "never-slower.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.traces or Path(tmp)
        results, failures = {}, []
        for entry in args.networks.split(","):
            model, weights = entry.split(":")
            trace_dir = _trace(folder, model, weights, args.batch_size, args.image_size)
            r = results[entry] = _network(trace_dir)
            w = r["worst_pass"]
            line = f"{entry}: worst pass {w['speedup_over_twin']:.4f} ({w['design']} {w['pass']})"
            for org, b in r["backprop"].items():
                line += f"; {org}: agos backprop {b['agos']:.3f} vs input-skip {b['input-skip']:.3f}"
                if b["agos"] < b["input-skip"]:
                    failures.append(f"{entry} {org}: agos backprop below input-skip")
            if w["speedup_over_twin"] < TOLERANCE:
                failures.append(f"{entry}: {w['design']} {w['pass']} {w['speedup_over_twin']:.4f}× its twin")
            print(line, flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "command": " ".join(["benchmarks/never_slower.py", *sys.argv[1:]]),
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "tolerance": TOLERANCE,
        "failures": failures,
        "networks": results,
    }
    args.json.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.json}; " + ("every property holds" if not failures else "; ".join(failures)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
