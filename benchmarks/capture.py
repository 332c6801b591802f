"""Capture cost against a plain training step of the same batch, side by side in one run.

Targets (issue 2): capture ≤ 1.3× a plain step (resnet50, batch 16, 224 px); trace ≤ 1.1 bits per
mask element; resnet50 at batch 64, 224 px captured within 12 GB (peak RSS of a fresh process).

    .venv/bin/python benchmarks/capture.py [--model resnet50 --batch-size 16 --reps 3]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def _setup(model_name: str, batch_size: int, image_size: int):
    from agos.inputs.options import RunOptions
    from agos.inputs.session import prepare

    run = prepare(RunOptions(model=model_name, batch_size=batch_size, image_size=image_size, device="cpu"))
    images, labels = run.batch(0)
    return run, images, labels


def time_steps(model_name: str, batch_size: int, image_size: int, reps: int) -> dict:
    from agos.capture.recorder import capture_step
    from agos.capture.trace import write_trace
    from agos.inputs.training import plain_step

    run, images, labels = _setup(model_name, batch_size, image_size)
    plain_model, capture_model = run.model, copy.deepcopy(run.model)
    plain_step(plain_model, images, labels, seed=0)  # warm caches and allocator
    capture_step(capture_model, images, labels, seed=0)
    plain_times, capture_times, write_times = [], [], []
    result = None
    for _ in range(reps):  # interleaved, so drift hits both equally
        t = time.perf_counter()
        plain_step(plain_model, images, labels, seed=0)
        plain_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        result = capture_step(capture_model, images, labels, seed=0)
        capture_times.append(time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        manifest = write_trace(Path(tmp) / "t", result, run.provenance())
        write_times.append(time.perf_counter() - t)
    raw_bytes = sum(
        (m.numel + 7) // 8
        for layer in result.layers
        for m in (layer.x_nonzero, layer.dy_nonzero, layer.dx_needed)
        if m is not None
    )
    plain, capture = statistics.median(plain_times), statistics.median(capture_times)
    return {
        "model": model_name,
        "batch_size": batch_size,
        "image_size": image_size,
        "reps": reps,
        "threads": torch.get_num_threads(),
        "plain_step_s": plain,
        "capture_step_s": capture,
        "ratio": capture / plain,
        "write_trace_s": write_times[0],
        "ratio_with_write": (capture + write_times[0]) / plain,
        "mask_elements": manifest.mask_elements,
        "trace_bytes": manifest.masks_bytes,
        "bits_per_mask_element": 8 * manifest.masks_bytes / manifest.mask_elements,
        "bits_per_mask_element_without_dedup": 8 * raw_bytes / manifest.mask_elements,
    }


def peak_memory(mode: str, model_name: str, batch_size: int, image_size: int) -> float:
    """Peak RSS (GiB) of a fresh process doing one plain or captured step."""
    code = f"""
import resource, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from capture import _setup
from agos.capture.recorder import capture_step
from agos.inputs.training import plain_step
run, images, labels = _setup({model_name!r}, {batch_size}, {image_size})
(capture_step if {mode!r} == "capture" else plain_step)(run.model, images, labels, seed=0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--memory-batch-size", type=int, default=64, help="0 skips the memory check")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    figures = time_steps(args.model, args.batch_size, args.image_size, args.reps)
    print(
        f"{args.model}, batch {args.batch_size}, {args.image_size} px, cpu {figures['threads']} threads, "
        f"median of {args.reps}"
    )
    print(f"  plain training step   {figures['plain_step_s']:8.2f} s")
    print(
        f"  captured step         {figures['capture_step_s']:8.2f} s   ratio {figures['ratio']:.3f}  "
        "(target ≤ 1.3)"
    )
    print(
        f"  + writing the trace   {figures['write_trace_s']:8.2f} s   ratio {figures['ratio_with_write']:.3f}"
    )
    print(
        f"  trace size            {figures['bits_per_mask_element']:.3f} bits per mask element "
        f"({figures['bits_per_mask_element_without_dedup']:.3f} before deduplication; target ≤ 1.1)"
    )
    if args.memory_batch_size:
        for mode in ("plain", "capture"):
            gib = peak_memory(mode, args.model, args.memory_batch_size, args.image_size)
            figures[f"peak_rss_gib_{mode}_batch{args.memory_batch_size}"] = gib
            print(
                f"  peak RSS, {mode:7s} step, batch {args.memory_batch_size}: {gib:6.2f} GiB"
                + ("   (target ≤ 12 GB)" if mode == "capture" else "")
            )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
