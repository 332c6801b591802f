"""What the side-by-side benchmarks share: a trace to work on and a plain step of the same batch."""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def add_trace_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", type=Path, help="reuse this trace (its model, batch and size)")
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")


@contextlib.contextmanager
def trace_and_plain_step(args: argparse.Namespace) -> Iterator[tuple[Path, dict, object]]:
    """Yield (trace dir, its provenance, a zero-argument plain training step of the same batch)."""
    from agos.api import trace as capture_trace
    from agos.capture.trace import load_trace
    from agos.inputs.options import RunOptions
    from agos.inputs.session import prepare
    from agos.inputs.training import plain_step

    with tempfile.TemporaryDirectory() as tmp:
        trace_dir = args.trace
        if trace_dir is None:
            trace_dir = Path(tmp) / "trace"
            options = RunOptions(
                model=args.model,
                batch_size=args.batch_size,
                image_size=args.image_size,
                seed=args.seed,
                device="cpu",
            )
            t = time.perf_counter()
            capture_trace(options, trace_dir)
            print(f"captured {trace_dir} in {time.perf_counter() - t:.1f} s (not timed below)")
        prov = load_trace(trace_dir).provenance
        # a plain step's time depends on the model and the batch's shape, not on the weights' values
        run = prepare(
            RunOptions(
                model=prov.model,
                batch_size=prov.batch_size,
                image_size=prov.image_size,
                seed=prov.seed,
                device="cpu",
            )
        )
        images, labels = run.batch(prov.batch_index)

        def step() -> None:
            plain_step(run.model, images, labels, seed=0)

        step()  # warm caches and allocator
        yield trace_dir, prov, step


def timed(fn, *args):
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def base_figures(prov, args: argparse.Namespace) -> dict:
    import torch

    return {
        "model": prov.model,
        "batch_size": prov.batch_size,
        "image_size": prov.image_size,
        "reps": args.reps,
        "threads": torch.get_num_threads(),
    }
