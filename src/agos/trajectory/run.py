"""`agos trajectory`: capture one real step at every checkpoint, prove it lossless, count and
simulate it, and gather sparsity per pass, MAC bounds and design speedups against training step.

Every checkpoint is captured on the same batch, so the weights are the only thing that changes
along the trajectory. Points are the shared cached stages (`stages.capture`, `stages.analyse`) keyed
on content (checkpoint bytes, model code, images, designs), so a stopped trajectory restarts at the
first point it had not finished."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from rich.console import Console

from agos import __version__
from agos.arch.load import LoadedArch, load_archs
from agos.capture.trace import load_trace
from agos.errors import AgosError
from agos.fileio import output_lock, write_json
from agos.inputs.models import resolve_model
from agos.inputs.weights import check_weights_files
from agos.stages.analyse import analysis_stage, read_analysis
from agos.stages.cache import Cache, announcer
from agos.stages.capture import capture_and_prove
from agos.stages.records import POINT_SECTIONS, TrajectoryPoint, TrajectoryRecord, TrajectorySettings
from agos.stages.resolve import resolve_run
from agos.trajectory.checkpoints import Checkpoint, resolve_checkpoints, snapshot_steps, train_with_snapshots

__all__ = ["TrajectorySettings", "check_settings", "trajectory"]


def check_settings(s: TrajectorySettings) -> list[LoadedArch]:
    """Everything that can be wrong, before any training or capture; the designs, loaded once."""
    if (s.checkpoints is None) == (s.train_steps == 0):
        raise AgosError("give either --checkpoints (files of a training run) or --train-steps N --every K")
    if s.checkpoints is None:
        snapshot_steps(s.train_steps, s.every)
    elif s.every:
        raise AgosError("--every goes with --train-steps, not with --checkpoints")
    elif s.run.weights != "init":
        raise AgosError("--weights goes with --train-steps (checkpoints carry their own weights)")
    resolve_run(s.options())  # one line for any bad option, before any work
    designs = load_archs(s.archs)
    if all(d.arch.is_dense for d in designs):
        raise AgosError(f"--arch {s.archs}: name at least one skipping design (e.g. agos)")
    return designs


def _point(
    ckpt: Checkpoint, s: TrajectorySettings, designs: list[LoadedArch], cache: Cache, console: Console
) -> TrajectoryPoint:
    resolved = resolve_run(
        s.options(str(ckpt.path)), batch_index=s.capture_batch, training_step=ckpt.step, check_size=False
    )
    say = announcer(console, f"step {ckpt.step}")
    proven = capture_and_prove(resolved, cache, proof=s.check, say=say)
    stage = analysis_stage(
        cache, proven.trace_key, proven.trace_dir, "real", designs, s.run.seed, POINT_SECTIONS, False, say
    )
    analysis = read_analysis(stage)
    lossless = None if proven.verification is None else proven.verification.lossless
    seconds = sum(cache.seconds(k) for k in proven.keys) + cache.seconds(stage.name)
    loss = load_trace(proven.trace_dir, verify=False).manifest.loss
    return TrajectoryPoint.of(ckpt, analysis, lossless, loss, proven.trace_dir, seconds)


def trajectory(s: TrajectorySettings, out: Path, console: Console | None = None) -> TrajectoryRecord:
    console = console or Console(stderr=True)
    designs = check_settings(s)
    checkpoints = resolve_checkpoints(s.checkpoints) if s.checkpoints is not None else None
    if checkpoints is not None:  # every file readable, matching the model and finite, before any point
        check_weights_files([c.path for c in checkpoints], resolve_model(s.run.model), s.run.seed)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AgosError(f"{out} exists and is not a directory")
    with output_lock(out, "trajectory"):
        cache = Cache(out / "cache")
        cache.sweep()
        start = time.perf_counter()
        if checkpoints is None:
            # the data fingerprint covers every batch the training reads (0 … train_steps − 1)
            start_run = resolve_run(s.options(), batch_index=s.train_steps - 1, check_size=False)
            o = start_run.options
            identity = {
                "model": start_run.model_code,
                "init_weights": start_run.weights_id,
                "data": start_run.data_id,
                **{k: getattr(o, k) for k in ("batch_size", "image_size", "seed")},
                "sgd": o.warm_up.model_dump(exclude={"steps"}),
            }
            checkpoints = train_with_snapshots(
                start_run.prepare(), s.train_steps, s.every, out / "checkpoints", identity
            )
        points = [_point(c, s, designs, cache, console) for c in checkpoints]
        result = TrajectoryRecord(
            agos_version=__version__,
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            settings=s,
            capture_batch=s.capture_batch,
            source="checkpoints" if s.checkpoints is not None else "snapshots of agos's own training",
            wall_seconds=time.perf_counter() - start,
            compute_seconds=sum(p.compute_seconds for p in points),
            points=points,
        )
        from agos.trajectory import report

        write_json(result.model_dump(mode="json"), out / "trajectory.json", owned=True)
        report.write_csv(result, out / "trajectory.csv")
        report.plot(result, out / "trajectory.png")
        return result
