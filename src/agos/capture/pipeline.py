"""`agos trace`: prepare, optionally warm up, capture one step, write the trace."""

from __future__ import annotations

from pathlib import Path

from agos.capture.recorder import capture_step
from agos.capture.trace import Manifest, write_trace
from agos.inputs.session import RunOptions, prepare, save_weights, warm_up
from agos.progress import progress_status


def capture_trace(options: RunOptions, out: Path, save_weights_to: str | None = None) -> Manifest:
    with progress_status(f"building {options.model} and its data"):
        run = prepare(options)
    warm_up(run)
    if save_weights_to:
        save_weights(run.model, save_weights_to)
    with progress_status(
        f"capturing one training step (batch {options.batch_size}, {options.image_size} px)"
    ):
        images, labels = run.batch(run.capture_batch_index)
        result = capture_step(run.model, images, labels, seed=options.seed)
    provenance = run.provenance()
    provenance["density_source"] = "real masks"
    with progress_status(f"writing {out}"):
        return write_trace(out, result, provenance)
