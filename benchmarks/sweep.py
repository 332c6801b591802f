"""`agos sweep` throughput: points per second on a 2-worker Dask LocalCluster against a serial loop
in the same run (target ≥ 1.7×), and the cost of one point against one separate `agos simulate` of
the same design (the shared counts must make a point cheaper).

Both throughputs are measured warm — the cluster already started and each process through one
warm-up point (imports, numba's cached kernels, the trace's counts) — on the same points, each
into a fresh output folder (no cached points). The cold figures (cluster start included) are
reported beside them. A point is compared with `agos simulate TRACE --arch DESIGN` run as its own
process (what a researcher does by hand today) and, in process, with `simulate_network` on the
trace (counts recomputed, no process start).

    .venv/bin/python benchmarks/sweep.py [--trace DIR] [--model resnet18 --batch-size 2 --image-size 32]

writes its figures to benchmarks/results/sweep.json (or --json PATH).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

SPEC = {
    "archs": ["agos"],
    "axes": {
        "pe_array.rows": [16, 32],
        "pe_array.cols": [16, 32, 64],
        "skipping.lookahead": [2, 3, 8],
    },
}
WARM_SPEC = {"archs": ["input-skip"], "axes": {"pe_array.rows": [8, 9]}}  # 4 points, 2 per worker


def _spec(tmp: Path, name: str, trace: Path, body: dict) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"traces": [str(trace)], **body}))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", type=Path)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "sweep.json")
    args = parser.parse_args()
    os.environ["AGOS_PROGRESS"] = "0"

    from rich.console import Console

    from agos.arch.load import load_arch
    from agos.capture.trace import load_trace
    from agos.cost.network import MaskSource, simulate_network
    from agos.sweep.run import dask_client, run_sweep

    quiet = Console(stderr=True, quiet=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        trace = args.trace
        if trace is None:
            from agos.api import trace as capture_trace
            from agos.inputs.options import RunOptions

            trace = tmp / "trace"
            capture_trace(
                RunOptions(
                    model=args.model, batch_size=args.batch_size, image_size=args.image_size, device="cpu"
                ),
                trace,
            )
        spec = _spec(tmp, "spec", trace, SPEC)
        warm = _spec(tmp, "warm", trace, WARM_SPEC)

        # serial, warm: one warm-up sweep in this process, then the points
        run_sweep(warm, tmp / "serial-warm", workers=0, console=quiet)
        t = time.perf_counter()
        serial = run_sweep(spec, tmp / "serial", workers=0, console=quiet)
        serial_s = time.perf_counter() - t
        n = len(serial.plan.points)

        # 2 workers: cold (cluster start included), then warm on the same cluster
        t = time.perf_counter()
        with dask_client(None, args.workers) as client:
            started = time.perf_counter() - t
            address = client.scheduler.address
            run_sweep(warm, tmp / "dask-warm", scheduler=address, console=quiet)
            t2 = time.perf_counter()
            dask = run_sweep(spec, tmp / "dask", scheduler=address, console=quiet)
            dask_s = time.perf_counter() - t2
        cold_s = time.perf_counter() - t
        same = [
            (a["cycles_iteration"], a["energy_j"]) == (b["cycles_iteration"], b["energy_j"])
            for a, b in zip(serial.rows, dask.rows, strict=True)
        ]

        # one point against one `agos simulate` of the same design
        per_point = statistics.median(r["point_seconds"] for r in serial.rows)
        design = load_arch("agos@systolic")
        loaded_trace = load_trace(trace)
        t = time.perf_counter()
        simulate_network(MaskSource(str(trace)), [design], loaded_trace.manifest)
        in_process = time.perf_counter() - t
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        walls = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "agos", "simulate", str(trace), "--arch", "agos@systolic"],
                check=True,
                capture_output=True,
                env=env,
            )
            walls.append(time.perf_counter() - t)
        prov = loaded_trace.provenance

    figures = {
        "trace": prov.model_dump(mode="json", include={"model", "batch_size", "image_size"}),
        "points": n,
        "spec": SPEC,
        "cpu_count": os.cpu_count(),
        "workers": args.workers,
        "serial_seconds": serial_s,
        "serial_points_per_s": n / serial_s,
        "dask_seconds_warm": dask_s,
        "dask_points_per_s_warm": n / dask_s,
        "speedup_warm": serial_s / dask_s,
        "dask_cluster_start_seconds": started,
        "dask_seconds_cold": cold_s,
        "speedup_cold_with_cluster_start": serial_s / cold_s,
        "dask_rows_equal_serial": all(same),
        "median_point_seconds_serial": per_point,
        "simulate_network_in_process_seconds": in_process,
        "agos_simulate_cli_seconds_median": statistics.median(walls),
        "point_vs_cli": per_point / statistics.median(walls),
        "point_vs_in_process": per_point / in_process,
        "target_speedup": 1.7,
    }
    print(json.dumps(figures, indent=1))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
