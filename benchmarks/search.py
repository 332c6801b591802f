"""`agos search` on the issue's networks with its run time: one command reproduces the fronts.
Real masks of resnet50, vgg16 and mobilenet_v2 at init and of the trained mobilenet_v2 (ImageNet
weights, offline), and the converged published profile where one exists (resnet50, vgg16: the
profile has no mobilenet_v2; its trained weights stand for its converged state).

    .venv/bin/python benchmarks/search.py [--batch-size 4 --image-size 96] [--workers 2] [--quick]

writes benchmarks/results/search.json (time, points, points per second, per stage) and
benchmarks/results/search-fronts.json (the search's own search.json: fronts, budgets, winners);
the plots go to the --out folder (default: a temporary one, kept with --out).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
MODELS = ("resnet50:init", "vgg16:init", "mobilenet_v2:init", "mobilenet_v2:imagenet")
PROFILED = ("resnet50", "vgg16")  # the published profile's networks (../shared/sparsity)
PROFILE = "profile:sparsetrain:last"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--no-profile", action="store_true", help="real masks only")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--space", type=Path, help="a search-space file (default: the shipped one)")
    parser.add_argument("--quick", action="store_true", help="one window, one broadcast width, two arrays")
    parser.add_argument("--out", type=Path, help="keep the search folder here")
    parser.add_argument("--json", type=Path, default=RESULTS / "search.json")
    args = parser.parse_args()
    os.environ["AGOS_PROGRESS"] = "0"
    agos = [sys.executable, "-m", "agos"]
    work = Path(tempfile.mkdtemp(prefix="agos-search-"))
    out = args.out or work / "search"
    traces = []
    start = time.perf_counter()
    for entry in args.models.split(","):
        model, _, weights = entry.partition(":")
        trace = work / "traces" / f"{model}-{weights or 'init'}"
        subprocess.run(
            [*agos, "trace", "--model", model, "--weights", weights or "init", "--batch-size",
             str(args.batch_size), "--image-size", str(args.image_size), "--out", str(trace)],
            check=True, capture_output=True,
        )  # fmt: skip
        traces.append((model, weights or "init", str(trace)))
    captured = time.perf_counter() - start
    space = args.space
    if args.quick and space is None:
        import yaml

        space = work / "quick.yaml"
        quick = {"lookahead": [3], "broadcast_width": [1], "scale": {"arrays": [[16, 16], [32, 32]],
                 "buffer_mib": [2], "store_entries": [256]}, "top": 1}  # fmt: skip
        space.write_text(yaml.safe_dump(quick))
    runs = [("real", [t for _, _, t in traces])]
    profiled = [t for m, w, t in traces if m in PROFILED and w == "init"]
    if profiled and not args.no_profile:
        runs.append((PROFILE, profiled))
    commands, results, seconds = [], [], 0.0
    for density, group in runs:
        folder = out / density.replace(":", "-")
        cmd = [*agos, "search", *group, "--out", str(folder), "--density", density]
        cmd += ["--workers", str(args.workers)] + (["--space", str(space)] if space is not None else [])
        begin = time.perf_counter()
        subprocess.run(cmd, check=True)
        seconds += time.perf_counter() - begin
        commands.append(" ".join(cmd[2:]))
        results.append(json.loads((folder / "search.json").read_text()))
    points = sum(r["points"] for r in results)
    figures = {
        "commands": commands,
        "models": args.models.split(","),
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "workers": args.workers,
        "capture_seconds": round(captured, 1),
        "search_seconds": round(seconds, 1),
        "points": points,
        "points_per_second": round(points / seconds, 3),
        "fronts": sum(len(r["fronts"]) for r in results),
        "cpus": os.cpu_count(),
    }
    RESULTS.mkdir(exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=1) + "\n")
    merged = {**results[0], "fronts": [f for r in results for f in r["fronts"]], "points": points}
    args.json.with_name(args.json.stem + "-fronts.json").write_text(json.dumps(merged, indent=1) + "\n")
    print(json.dumps(figures, indent=1))
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
