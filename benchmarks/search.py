"""`agos search` on the issue's networks (resnet50, vgg16, mobilenet_v2 at init; real masks and
the converged published profile), with its run time: one command reproduces the fronts.

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
MODELS = ("resnet50", "vgg16", "mobilenet_v2")
DENSITIES = "real,profile:sparsetrain:last"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--density", default=DENSITIES)
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
    for model in args.models.split(","):
        trace = work / "traces" / model
        subprocess.run(
            [*agos, "trace", "--model", model, "--batch-size", str(args.batch_size), "--image-size",
             str(args.image_size), "--out", str(trace)],
            check=True, capture_output=True,
        )  # fmt: skip
        traces.append(str(trace))
    captured = time.perf_counter() - start
    space = args.space
    if args.quick and space is None:
        import yaml

        space = work / "quick.yaml"
        quick = {"lookahead": [3], "broadcast_width": [1], "scale": {"arrays": [[16, 16], [32, 32]],
                 "buffer_mib": [2], "store_entries": [256]}, "top": 1}  # fmt: skip
        space.write_text(yaml.safe_dump(quick))
    cmd = [*agos, "search", *traces, "--out", str(out), "--density", args.density]
    cmd += ["--workers", str(args.workers)]
    if space is not None:
        cmd += ["--space", str(space)]
    begin = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - begin
    result = json.loads((out / "search.json").read_text())
    figures = {
        "command": " ".join(cmd[2:]),
        "models": args.models.split(","),
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "densities": args.density.split(","),
        "workers": args.workers,
        "capture_seconds": round(captured, 1),
        "search_seconds": round(seconds, 1),
        "points": result["points"],
        "points_per_second": round(result["points"] / seconds, 3),
        "fronts": len(result["fronts"]),
        "cpus": os.cpu_count(),
    }
    RESULTS.mkdir(exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=1) + "\n")
    shutil.copy(out / "search.json", args.json.with_name(args.json.stem + "-fronts.json"))
    print(json.dumps(figures, indent=1))
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
