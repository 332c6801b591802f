"""`agos trace`: prepare, optionally warm up, capture one step, write the trace."""

from __future__ import annotations

from pathlib import Path

from agos.capture.recorder import capture_step
from agos.capture.trace import Manifest, write_trace
from agos.inputs.session import RunOptions, prepare, save_weights, warm_up


def capture_trace(options: RunOptions, out: Path, save_weights_to: str | None = None) -> Manifest:
    run = prepare(options)
    warm_up(run)
    if save_weights_to:
        save_weights(run.model, save_weights_to)
    images, labels = run.batch(run.capture_batch_index)
    result = capture_step(run.model, images, labels, seed=options.seed)
    provenance = run.provenance()
    provenance["density_source"] = "real masks"
    return write_trace(out, result, provenance)
