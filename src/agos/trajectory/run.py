"""`agos trajectory`: capture one real step at every checkpoint, prove it lossless, count and
simulate it, and gather sparsity per pass, MAC bounds and design speedups against training step.

Every checkpoint is captured on the same batch, so the weights are the only thing that changes
along the trajectory. Points are content-addressed stages (checkpoint bytes, model code, images,
designs), so a stopped trajectory restarts at the first point it had not finished."""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console

from agos import __version__
from agos.analysis import model as analysis_model
from agos.analysis.model import Analysis
from agos.arch.load import load_archs
from agos.capture.recorder import capture_step
from agos.capture.trace import SCHEMA_VERSION, write_trace
from agos.errors import AgosError
from agos.fileio import output_lock, write_json
from agos.inputs.data import data_fingerprint, parse_data
from agos.inputs.models import model_fingerprint, resolve_model
from agos.inputs.session import RunOptions, check_image_size, check_options, prepare
from agos.inputs.training import WarmUp
from agos.inputs.weights import check_weights_files
from agos.reproduce.pipeline import analyse_trace, read_analysis, soundness_record
from agos.reproduce.stages import StageCache
from agos.trajectory.checkpoints import Checkpoint, resolve_checkpoints, snapshot_steps, train_with_snapshots
from agos.trajectory.points import read_points

POINT_SECTIONS = ("realised", "bounds", "simulation")  # what a point shows; no per-point plots
FORMAT = "agos-trajectory"
VERSION = 1


@dataclass(frozen=True)
class TrajectorySettings:
    model: str = "resnet18"
    data: str = "samples"
    batch_size: int = 8
    image_size: int = 64
    seed: int = 0
    device: str = "auto"
    archs: str = "dense,input-skip,agos"
    checkpoints: str | None = None  # a list or glob of the user's files
    train_steps: int = 0  # …or train this many steps here, with a snapshot every `every`
    every: int = 0
    sgd: WarmUp = field(default_factory=WarmUp)
    weights: str = "init"  # where agos's own training starts
    check: bool = True  # prove every point lossless (a masked step, bit-identical gradients)

    @property
    def capture_batch(self) -> int:
        """The first batch no snapshot was trained on; batch 0 for the user's own checkpoints."""
        return self.train_steps if self.checkpoints is None else 0

    def options(self, weights: str = "init") -> RunOptions:
        return RunOptions(
            model=self.model,
            weights=weights,
            data=self.data,
            batch_size=self.batch_size,
            image_size=self.image_size,
            seed=self.seed,
            device=self.device,
            warm_up=WarmUp(0, self.sgd.lr, self.sgd.momentum, self.sgd.weight_decay),
        )


def check_settings(s: TrajectorySettings) -> None:
    """Everything that can be wrong, before any training or capture."""
    if (s.checkpoints is None) == (s.train_steps == 0):
        raise AgosError("give either --checkpoints (files of a training run) or --train-steps N --every K")
    if s.checkpoints is None:
        snapshot_steps(s.train_steps, s.every)
    elif s.every:
        raise AgosError("--every goes with --train-steps, not with --checkpoints")
    elif s.weights != "init":
        raise AgosError("--weights goes with --train-steps (checkpoints carry their own weights)")
    check_options(s.options(s.weights))
    check_image_size(s.options())
    designs = load_archs(s.archs)
    if all(d.arch.is_dense for d in designs):
        raise AgosError(f"--arch {s.archs}: name at least one skipping design (e.g. agos)")


def _point(
    ckpt: Checkpoint, s: TrajectorySettings, designs: list, cache: StageCache, console: Console
) -> dict:
    options = s.options(str(ckpt.path))
    t_inputs = {
        "model": model_fingerprint(s.model),
        "weights": "sha256:" + ckpt.sha256,
        "data": data_fingerprint(parse_data(s.data), s.seed, s.batch_size * (s.capture_batch + 1)),
        "batch_size": s.batch_size,
        "image_size": s.image_size,
        "seed": s.seed,
        "batch_index": s.capture_batch,
        "check": s.check,
        "trace_schema": SCHEMA_VERSION,
    }
    t_key = cache.key("point", t_inputs)
    cached = cache.done(t_key)
    console.print(
        f"[bold]step {ckpt.step}[/bold] · capture and prove" + (" [dim](cached)[/dim]" if cached else " …")
    )

    def make_trace(out: Path) -> None:
        run = prepare(options)
        images, labels = run.batch(s.capture_batch)
        before = copy.deepcopy(run.model) if s.check else None
        capture = capture_step(run.model, images, labels, seed=s.seed)
        grads = {n: p.grad for n, p in run.model.named_parameters() if p.grad is not None}
        provenance = run.provenance()
        provenance["batch_index"] = s.capture_batch
        provenance["density_source"] = "real masks"
        provenance["training_step"] = ckpt.step
        write_trace(out / "trace", capture, provenance)
        masks = {layer.name: layer.dx_needed for layer in capture.layers}
        soundness = soundness_record(before, images, labels, s.seed, masks, grads) if before else None
        write_json({"soundness": soundness, "notes": capture.notes}, out / "verify.json")

    trace_stage = cache.build(t_key, t_inputs, make_trace)
    a_inputs = {
        "trace": t_key,
        "seed": s.seed,
        "archs": {d.name: d.sha256 for d in designs},
        "analysis": analysis_model.format_id(),
        "sections": list(POINT_SECTIONS),
    }
    a_key = cache.key("point-analysis", a_inputs)
    console.print(
        f"[bold]step {ckpt.step}[/bold] · counts and simulation"
        + (" [dim](cached)[/dim]" if cache.done(a_key) else " …")
    )
    analysis_stage = cache.build(
        a_key,
        a_inputs,
        lambda out: analyse_trace(
            trace_stage / "trace", "real", designs, s.seed, out, sections=list(POINT_SECTIONS), plots=False
        ),
    )
    analysis = read_analysis(analysis_stage)
    verify = json.loads((trace_stage / "verify.json").read_text())
    manifest = json.loads((trace_stage / "trace" / "manifest.json").read_text())
    return _record(ckpt, analysis, verify, manifest, trace_stage, cache.seconds(t_key) + cache.seconds(a_key))


def _record(
    ckpt: Checkpoint, analysis: Analysis, verify: dict, manifest: dict, stage: Path, seconds: float
) -> dict:
    sim = analysis.simulation
    designs = {}
    for name in sim.requested:
        d = sim.designs[name]
        if d.preset == "dense":
            continue
        designs[name] = d.model_dump(
            mode="json",
            include={
                "twin",
                "speedup_over_twin",
                "mac_bound_speedup",
                "energy_vs_twin",
                "speedup_over_best_dense_equal_area",
            },
        )
    soundness = verify["soundness"]
    return {
        "step": ckpt.step,
        "step_source": ckpt.step_source,
        "checkpoint": str(ckpt.path),
        "sha256": ckpt.sha256,
        "loss": manifest["loss"],
        "sparsity": analysis.realised.model_dump(mode="json", exclude={"weighting"}),
        "mac_bounds": {k: v.model_dump(mode="json") for k, v in analysis.bounds.speedups.items()},
        "designs": designs,
        "lossless": None if soundness is None else soundness["bit_identical"],
        "notes": verify["notes"],
        "trace": str(stage / "trace"),
        "label": analysis.label,
        "compute_seconds": seconds,
    }


def trajectory(s: TrajectorySettings, out: Path, console: Console | None = None) -> dict:
    console = console or Console(stderr=True)
    check_settings(s)
    checkpoints = resolve_checkpoints(s.checkpoints) if s.checkpoints is not None else None
    if checkpoints is not None:  # every file readable, matching the model and finite, before any point
        check_weights_files([c.path for c in checkpoints], resolve_model(s.model), s.seed)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AgosError(f"{out} exists and is not a directory")
    with output_lock(out, "trajectory"):
        cache = StageCache(out / "cache")
        cache.sweep()
        start = time.perf_counter()
        if checkpoints is None:
            run = prepare(s.options(s.weights))
            identity = {
                "model": model_fingerprint(s.model),
                "init_weights": run.weights.sha256,
                "data": data_fingerprint(parse_data(s.data), s.seed, s.batch_size * s.train_steps),
                "batch_size": s.batch_size,
                "image_size": s.image_size,
                "seed": s.seed,
                "sgd": asdict(s.sgd),
            }
            checkpoints = train_with_snapshots(run, s.train_steps, s.every, out / "checkpoints", identity)
        designs = load_archs(s.archs)  # once: every point simulates the same designs
        points = [_point(c, s, designs, cache, console) for c in checkpoints]
        result = {
            "format": FORMAT,
            "version": VERSION,
            "agos_version": __version__,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "settings": {**asdict(s), "capture_batch": s.capture_batch},
            "source": "checkpoints" if s.checkpoints is not None else "snapshots of agos's own training",
            "wall_seconds": time.perf_counter() - start,
            "compute_seconds": sum(p["compute_seconds"] for p in points),
            "points": points,
        }
        from agos.trajectory import report

        write_json(result, out / "trajectory.json", owned=True)
        report.write_csv(result, out / "trajectory.csv")
        report.plot(result, out / "trajectory.png")
        return result


def read_trajectory(folder: Path | str) -> dict:
    """A finished trajectory folder, for the reproduce report; one line if it is not one."""
    path = Path(folder) / "trajectory.json"
    if not path.is_file():
        raise AgosError(f"--trajectory {folder}: no trajectory.json there (made by agos trajectory --out)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AgosError(f"--trajectory {folder}: cannot read trajectory.json ({exc})") from None
    result = read_points(text, f"--trajectory {path}")  # numbers finite and in range, one line if not
    if result.get("format") != FORMAT or result.get("version") != VERSION:
        raise AgosError(f"--trajectory {folder}: not an agos trajectory (version {VERSION})")
    if not result.get("points"):
        raise AgosError(f"--trajectory {folder}: the trajectory has no points")
    result["plot"] = str(Path(folder) / "trajectory.png")
    return result
