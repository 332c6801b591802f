"""CPU time and peak memory of the verify stage of `agos reproduce --quick`, per network: the capture
of the step, the soundness proof of its masks and the sparse-engine check on 2 images of the batch
(batch 8, 160 px, the quick run's options; `stages.capture.capture_and_prove` does the same steps).

Each network runs in a fresh process, so its peak RSS is its own; the numba kernels are loaded (or
compiled) before the clock starts. CPU seconds (process time) are the figure to compare, each part
the least of --reps runs, on --threads threads (torch and numba; default 1): the machine is shared,
and on a loaded machine OpenMP worker threads spinning in wait inflate the CPU time of a
multi-threaded run several-fold (measured: 0.5 to 7.6 s for the same step), so one thread measures
the work itself; the wall seconds are given beside. `--baseline LABEL=SRC` also times the agos source
tree SRC (e.g. an export of the commit before), alternating with this one network by network so
that both see the same load. Records go to benchmarks/results/verify-time.json, with the
verification itself (less its seconds): `identical_to` says whether the two gave the same results.

    python benchmarks/verify_time.py --label after --baseline before=/tmp/agos-before/src
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "verify-time.json"
MODELS = "alexnet,vgg16,resnet50,googlenet,mobilenet_v2"


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _warm_kernels() -> None:
    """Load (or compile) the backward kernels on a tiny layer, outside the timed region."""
    import torch

    from agos.engine import sparse_ops
    from agos.workload.layer import LayerGeometry

    g = LayerGeometry(kind="conv", n=1, c=2, h=3, w=3, k=2, p=3, q=3, r=3, s=3, padding=(1, 1))
    x, w, dy = torch.ones(1, 2, 3, 3), torch.ones(2, 2, 3, 3), torch.ones(1, 2, 3, 3)
    sparse_ops.conv_backward_data(dy, w, None, g)
    sparse_ops.conv_backward_weight(x, dy, g)


def one(model: str, reps: int, threads: int) -> dict:
    """The verify stage of one network, timed part by part (as `capture_and_prove` runs it)."""
    import numba
    import torch

    from agos.inputs.options import RunOptions
    from agos.stages.capture import capture, prepared
    from agos.stages.resolve import resolve_run

    torch.set_num_threads(threads)
    numba.set_num_threads(threads)
    _warm_kernels()
    resolved = resolve_run(RunOptions.for_command("reproduce-quick", model=model))
    run = prepared(resolved)
    warmed = copy.deepcopy(run.model)
    cpu: dict[str, list[float]] = {}
    wall: dict[str, list[float]] = {}
    rss_start = _rss_mb()

    def timed(name, fn):
        c, w = time.process_time(), time.perf_counter()
        out = fn()
        cpu.setdefault(name, []).append(time.process_time() - c)
        wall.setdefault(name, []).append(time.perf_counter() - w)
        return out

    seed = resolved.options.seed
    for _ in range(reps):
        run.model = copy.deepcopy(warmed)  # every capture starts from the warmed-up model
        c = timed("capture", lambda: capture(resolved, run))
        soundness, engine = _prove(c, seed, timed)
        del c
    verification = {
        "soundness": soundness.model_dump(mode="json"),
        "engine": engine.model_dump(mode="json", exclude={"seconds"}),
    }
    best = {k: min(v) for k, v in cpu.items()}
    return {
        "verify_cpu_seconds": round(sum(best.values()), 2),
        "verify_wall_seconds": round(sum(min(v) for v in wall.values()), 2),
        "cpu_seconds": {k: round(v, 2) for k, v in best.items()},
        "cpu_seconds_every_run": {k: [round(x, 2) for x in v] for k, v in cpu.items()},
        "rss_before_capture_mb": round(rss_start),
        "peak_rss_mb": round(_peak_mb()),
        "verification": verification,
    }


def _prove(c, seed: int, timed):
    from agos.capture.verify import soundness_record
    from agos.reproduce.settings import CHECK_IMAGES
    from agos.stages.capture import engine_check, write

    with tempfile.TemporaryDirectory() as tmp:
        timed("write", lambda: write(c, Path(tmp) / "trace"))
    soundness = timed(
        "soundness", lambda: soundness_record(c.before, c.images, c.labels, seed, c.masks, c.grads)
    )
    images = CHECK_IMAGES["reproduce-quick"]
    engine = timed("engine_check", lambda: engine_check(c.before, c.images, c.labels, seed, images))
    return soundness, engine


def _child(model: str, reps: int, threads: int, src: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    args = [sys.executable, __file__, "--one", model, "--reps", str(reps), "--threads", str(threads)]
    child = subprocess.run(args, capture_output=True, text=True, env=env)
    if child.returncode != 0:
        last = child.stderr.strip().splitlines()[-1] if child.stderr.strip() else child.returncode
        sys.exit(f"{model} ({src}): {last}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def _record(src: Path, networks: dict, load_before, threads: int) -> dict:
    commit = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True)
    return {
        "src": str(src),
        "commit": commit.stdout.strip() or None,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "options": "reproduce --quick: batch 8, 160 px, samples, seed 0; engine check on 2 images",
        "threads": threads,
        "total_verify_cpu_seconds": round(sum(r["verify_cpu_seconds"] for r in networks.values()), 1),
        "peak_rss_mb": {m: r["peak_rss_mb"] for m, r in networks.items()},
        "networks": networks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--label", help="the record's name in verify-time.json")
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--reps", type=int, default=2, help="runs of each part; the least CPU time counts")
    parser.add_argument("--threads", type=int, default=1, help="torch and numba threads (default 1)")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the agos source tree to time")
    parser.add_argument("--baseline", help="LABEL=SRC: also time this source tree, network by network")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: one network
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.reps, args.threads)))
        return
    if not args.label:
        parser.error("--label is required")
    runs = {args.label: args.src.resolve()}
    baseline = None
    if args.baseline:
        baseline, src = args.baseline.split("=", 1)
        runs = {baseline: Path(src).resolve(), **runs}
    load_before = os.getloadavg()
    networks: dict[str, dict] = {label: {} for label in runs}
    for model in args.models.split(","):
        for label, src in runs.items():
            r = networks[label][model] = _child(model, args.reps, args.threads, src)
            print(
                f"{label:8s} {model:14s} verify {r['verify_cpu_seconds']:7.2f} CPU s "
                f"({r['verify_wall_seconds']:.1f} s wall)  {json.dumps(r['cpu_seconds'])}  "
                f"peak RSS {r['peak_rss_mb']} MB",
                flush=True,
            )
    data = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for label, src in runs.items():
        data[label] = _record(src, networks[label], load_before, args.threads)
    if baseline is not None:
        base, other = networks[baseline], networks[args.label]
        same = {m: base[m]["verification"] == other[m]["verification"] for m in other}
        data[args.label]["identical_to"] = {"label": baseline, "networks": same}
        print(f"verification identical to '{baseline}': {same}")
    RESULTS.write_text(json.dumps(data, indent=1) + "\n")
    for label in runs:
        print(f"{label}: total verify {data[label]['total_verify_cpu_seconds']} CPU s")


if __name__ == "__main__":
    main()
