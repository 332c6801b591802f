"""Two versions of agos side by side on one trace: `simulate_network(workers=1)` of every preset on
both organisations (the designs of benchmarks/simulate.py), each run in a fresh process with one
version's src/ first on the import path, the versions alternating so that the load of a shared
machine hits both alike. Per run: process CPU time (less sensitive to other load than wall time),
wall time, and a digest of every figure (the simulation as JSON), which must be the same for both.
Beside them, in each round, one plain training step of the same batch on one thread (its CPU time
too, so that simulate / step compares one core's work with one core's work).

    .venv/bin/python benchmarks/simulate_versions.py --trace DIR --src main=PATH/src --src now=src \
        [--reps 2] [--json benchmarks/results/simulate-versions.json]

A warm-up run per version first (numba's kernels compiled or loaded); then `reps` timed runs each."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = """
import hashlib, json, os, sys, time
os.environ["AGOS_PROGRESS"] = "0"
from agos.analysis.simulation import simulation_of
from agos.arch.load import DEFAULT_DESIGNS, load_archs
from agos.capture.trace import load_trace
from agos.cost.network import MaskSource, simulate_network

trace_dir = sys.argv[1]
trace = load_trace(trace_dir)
designs = load_archs(DEFAULT_DESIGNS)
cpu, wall = time.process_time(), time.perf_counter()
net = simulate_network(MaskSource(trace_dir), designs, trace.manifest, workers=1)
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
dump = json.dumps(simulation_of(net).model_dump(mode="json"), sort_keys=True).encode()
print(json.dumps({"cpu_s": cpu, "wall_s": wall, "designs": len(net.designs),
                  "sha256": hashlib.sha256(dump).hexdigest()}))
"""

PLAIN = """
import json, sys, time
import torch
torch.set_num_threads(1)
from agos.capture.trace import load_trace
from agos.inputs.options import RunOptions
from agos.inputs.session import prepare
from agos.inputs.training import plain_step

prov = load_trace(sys.argv[1]).provenance
run = prepare(RunOptions(model=prov.model, batch_size=prov.batch_size, image_size=prov.image_size,
                         seed=prov.seed, device="cpu"))
images, labels = run.batch(prov.batch_index)
plain_step(run.model, images, labels, seed=0)  # warm caches and allocator
cpu, wall = time.process_time(), time.perf_counter()
plain_step(run.model, images, labels, seed=0)
print(json.dumps({"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}))
"""


def run(src: Path, trace: Path, code: str = CHILD) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src.resolve()), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(trace)], env=env, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trace", type=Path, required=True)
    parser.add_argument("--src", action="append", required=True, help="NAME=PATH of a src/ folder")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    versions = dict(s.split("=", 1) for s in args.src)
    for name, src in versions.items():
        run(Path(src), args.trace)  # warm-up
        print(f"warmed {name}", flush=True)
    runs: dict[str, list[dict]] = {name: [] for name in versions}
    plain: list[dict] = []
    for rep in range(args.reps):
        plain.append(run(Path(next(iter(versions.values()))), args.trace, PLAIN))
        print(f"rep {rep} plain step, one thread: cpu {plain[-1]['cpu_s']:.2f} s", flush=True)
        for name, src in versions.items():
            r = run(Path(src), args.trace)
            runs[name].append(r)
            print(f"rep {rep} {name}: cpu {r['cpu_s']:.2f} s, wall {r['wall_s']:.2f} s", flush=True)
    digests = {r["sha256"] for rs in runs.values() for r in rs}
    figures = {
        "trace": str(args.trace),
        "load_average": os.getloadavg(),
        "identical": len(digests) == 1,
        "plain_step_one_thread": {"cpu_s": statistics.median(r["cpu_s"] for r in plain), "runs": plain},
        "versions": {
            name: {
                "src": versions[name],
                "cpu_s": statistics.median(r["cpu_s"] for r in rs),
                "wall_s": statistics.median(r["wall_s"] for r in rs),
                "runs": rs,
            }
            for name, rs in runs.items()
        },
    }
    names = list(versions)
    base = figures["versions"][names[0]]["cpu_s"]
    step = figures["plain_step_one_thread"]["cpu_s"]
    print(f"plain step (one thread) median cpu {step:.2f} s")
    for name in names:
        v = figures["versions"][name]
        v["cpu_over_first"] = v["cpu_s"] / base
        v["cpu_over_plain_step"] = v["cpu_s"] / step
        print(
            f"{name:8s} median cpu {v['cpu_s']:.2f} s  wall {v['wall_s']:.2f} s  cpu / {names[0]} "
            f"{v['cpu_s'] / base:.3f}  cpu / plain step {v['cpu_s'] / step:.3f}"
        )
    print("every figure identical" if figures["identical"] else "FIGURES DIFFER between versions")
    if args.json:
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(figures, indent=1) + "\n")
        tmp.replace(args.json)
    sys.exit(0 if figures["identical"] else 1)


if __name__ == "__main__":
    main()
