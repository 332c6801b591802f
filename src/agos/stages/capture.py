"""Capture one real training step and prove skipping it lossless — the one implementation behind
`agos trace`, `reproduce`, `trajectory`, `sweep` and `agos.api.trace`.

`capture` runs the step (after the warm-up, on the run's batch), `write` stores it as a trace,
`prove` judges its masks (the masked step's gradients bit for bit against the captured ones, and
optionally the sparse engine on part of the batch). `capture_and_prove` composes them as two cached
stages — the trace, keyed on the run's identity, and its proof, keyed on the trace — so that a
finished capture is reused when only its proof is missing."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from agos.capture.recorder import CaptureResult, capture_step
from agos.capture.trace import Manifest, load_trace, write_trace
from agos.capture.verify import soundness_record
from agos.engine.check import check_batch
from agos.fileio import write_json
from agos.inputs.session import PreparedRun, save_weights, warm_up
from agos.inputs.training import left_as_found
from agos.stages.cache import Cache
from agos.stages.resolve import ResolvedRun
from agos.stages.verification import EngineCheck, StepCheck, Verification
from agos.workload.bits import PackedMask

TRACE, WEIGHTS, VERIFICATION = "trace", "weights.pt", "verification.json"
Say = Callable[[str, bool], None]  # (what the stage does, whether it was cached)


@dataclass
class Captured:
    """One captured step, in memory."""

    resolved: ResolvedRun
    run: PreparedRun
    images: torch.Tensor
    labels: torch.Tensor
    before: nn.Module  # the run's model as the step found it (the warmed-up weights), left as found
    result: CaptureResult
    grads: dict[str, torch.Tensor]  # the captured step's own parameter gradients

    @property
    def masks(self) -> dict[str, PackedMask | None]:
        return {layer.name: layer.dx_needed for layer in self.result.layers}


def prepared(resolved: ResolvedRun, warmed: Path | None = None) -> PreparedRun:
    """The run's model with its weights, warmed up (or with the warmed-up weights of `warmed`)."""
    run = resolved.prepare()
    if resolved.options.warm_up.steps and warmed is not None and warmed.is_file():
        run.model.load_state_dict(torch.load(warmed, weights_only=True))
    else:
        warm_up(run)
    return run


def capture(resolved: ResolvedRun, run: PreparedRun | None = None) -> Captured:
    """The step, captured on the run's model itself: the model is left as the step found it
    (`left_as_found`: no copy of its parameters), the step's gradients are kept in `grads`."""
    run = run or prepared(resolved)
    images, labels = run.batch(resolved.batch_index)
    with left_as_found(run.model):
        result = capture_step(run.model, images, labels, seed=resolved.options.seed)
        grads = {n: p.grad for n, p in run.model.named_parameters() if p.grad is not None}
    return Captured(resolved, run, images, labels, run.model, result, grads)


def write(captured: Captured, out: Path) -> Manifest:
    r = captured.resolved
    provenance = captured.run.provenance(batch_index=r.batch_index, training_step=r.training_step)
    return write_trace(out, captured.result, provenance)


def engine_check(model: nn.Module, images, labels, seed: int, count: int) -> EngineCheck | None:
    """The sparse engine on `count` images of the batch (at least 2: BatchNorm in training mode)."""
    if count <= 0:
        return None
    k = min(max(count, 2), images.shape[0])
    start = time.perf_counter()
    step, graph = check_batch(model, images[:k], labels[:k], seed)
    return EngineCheck(
        images=k,
        graph=graph,
        seconds=time.perf_counter() - start,
        step=StepCheck.model_validate(step, from_attributes=True),
    )


def prove(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    seed: int,
    masks: dict[str, PackedMask | None],
    reference: dict[str, torch.Tensor] | None,
    engine_images: int,
    notes: list[str],
    soundness: bool = True,
) -> Verification:
    """The verification of a step's masks on its batch: the soundness proof (unless `soundness` is
    False) against `reference`, the captured gradients (None: a plain step is run for them), and the
    sparse engine on `engine_images` images of the batch (0: not run)."""
    return Verification(
        soundness=soundness_record(model, images, labels, seed, masks, reference) if soundness else None,
        engine=engine_check(model, images, labels, seed, engine_images),
        notes=notes,
    )


@dataclass(frozen=True)
class Proven:
    """A cached capture and its proof."""

    trace_dir: Path
    verification: Verification | None  # None: no proof was asked for
    trace_key: str
    keys: list[str]  # every stage it used (their compute times add up)


def capture_and_prove(
    resolved: ResolvedRun,
    cache: Cache,
    *,
    proof: bool = True,
    engine_images: int = 0,
    say: Say = lambda what, cached: None,
    warn: Callable[[str], None] = lambda note: None,
) -> Proven:
    """The trace of the run and (with `proof` or `engine_images`) its verification, each a cached
    stage keyed on content: an edited model, a retrained weights file or replaced images are
    captured again; a finished capture is reused when only its proof is missing."""
    t_inputs = resolved.identity()
    t_key = cache.key("trace", t_inputs)
    wants_proof = proof or engine_images > 0
    v_inputs = {"trace": t_key, "proof": proof, "engine_images": engine_images}
    v_key = cache.key("verify", v_inputs)
    traced = cache.done(t_key)
    done = traced and (not wants_proof or cache.done(v_key))
    say("training step: capture" + (" and verify" if wants_proof else ""), traced)
    if not done:
        seed = resolved.options.seed
        run = prepared(resolved, cache.path(t_key) / WEIGHTS)
        if traced:  # the proof was interrupted: read the masks back, judge against a plain step
            trace = load_trace(cache.path(t_key) / TRACE)
            images, labels = run.batch(resolved.batch_index)
            model, reference = run.model, None
            masks = {layer.name: trace.mask(layer, "dx_needed") for layer in trace.layers}
            notes = list(trace.manifest.notes)
        else:
            captured = capture(resolved, run)
            images, labels, model = captured.images, captured.labels, captured.before
            masks, reference, notes = captured.masks, captured.grads, list(captured.result.notes)
            for note in notes:
                warn(note)

            def make_trace(out: Path) -> None:
                write(captured, out / TRACE)
                if resolved.options.warm_up.steps:
                    save_weights(captured.before, str(out / WEIGHTS))

            cache.build(t_key, t_inputs, make_trace)
        if wants_proof:
            say("losslessness on the captured batch", False)

            def make_proof(out: Path) -> None:
                record = prove(model, images, labels, seed, masks, reference, engine_images, notes, proof)
                write_json(record.model_dump(mode="json"), out / VERIFICATION)

            cache.build(v_key, v_inputs, make_proof)
    verification = cache.read(v_key, VERIFICATION, Verification) if wants_proof else None
    return Proven(cache.path(t_key) / TRACE, verification, t_key, [t_key, *([v_key] if wants_proof else [])])
