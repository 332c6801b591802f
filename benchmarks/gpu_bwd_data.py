"""The prepared GPU check of issue 14: the tile-skipping BWD-D kernel against cuDNN, per layer.

Run once on a machine with a CUDA GPU (written for one H200; ≤ 8 minutes wall):

    .venv/bin/python benchmarks/gpu_bwd_data.py            # resnet50 and vgg16, batch 32, 224 px

It captures one training step of each model on the GPU (init weights, embedded photographs), then
runs `agos gpu-bench --bwd-data` on both traces with their real masks and the converged published
profile (`profile:sparsetrain:last`), and writes the table to
`benchmarks/results/gpu_bwd_data_<device>.txt` and the rows to `…csv`, and prints it. Without a
GPU it prints one line and exits 3; nothing is written. Every figure it writes was measured by it.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,vgg16")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--density", default="real,profile:sparsetrain:last")
    parser.add_argument("--block", default="64x64")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--budget-s", type=float, default=450.0, help="wall-clock limit for the whole run")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("gpu_bwd_data: no CUDA GPU here; nothing measured, nothing written", file=sys.stderr)
        return 3
    device = torch.cuda.get_device_name(0)
    slug = re.sub(r"[^a-z0-9]+", "_", device.lower()).strip("_")
    start = time.monotonic()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    agos = [sys.executable, "-m", "agos"]

    def left() -> float:
        return args.budget_s - (time.monotonic() - start)

    with tempfile.TemporaryDirectory(prefix="agos-bwd-data-") as tmp:
        traces = []
        for model in [m.strip() for m in args.models.split(",") if m.strip()]:
            out = Path(tmp) / model
            cmd = [
                *agos,
                "trace",
                "--model",
                model,
                "--batch-size",
                str(args.batch_size),
                "--image-size",
                str(args.image_size),
                "--device",
                "cuda",
                "--out",
                str(out),
            ]
            print("+", " ".join(cmd), flush=True)
            subprocess.run(cmd, env=env, check=True, timeout=max(10.0, left()))
            traces += ["--trace", str(out)]
        csv_path = RESULTS / f"gpu_bwd_data_{slug}.csv"
        cmd = [
            *agos,
            "gpu-bench",
            "--bwd-data",
            *traces,
            "--density",
            args.density,
            "--block",
            args.block,
            "--repeats",
            str(args.repeats),
            "--out",
            str(csv_path),
        ]
        print("+", " ".join(cmd), flush=True)
        done = subprocess.run(
            cmd,
            env={**env, "COLUMNS": "220"},
            check=True,
            timeout=max(10.0, left()),
            stdout=subprocess.PIPE,
            text=True,
        )
    header = (
        f"# agos gpu-bench --bwd-data on {device}, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')}: {args.models}, init weights, embedded photographs, "
        f"batch {args.batch_size}, {args.image_size} px, densities {args.density}, tiles {args.block}, "
        f"median of {args.repeats} runs; wall {time.monotonic() - start:.0f} s\n"
    )
    text_path = RESULTS / f"gpu_bwd_data_{slug}.txt"
    sys.path.insert(0, str(ROOT / "src"))
    from agos.fileio import atomic_file

    with atomic_file(text_path) as fh:
        fh.write(header + done.stdout)
    print(header + done.stdout)
    print(f"wrote {text_path} and {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
