"""The evaluation of the seed paper, run on each model: capture one real training step, prove that
skipping is lossless on that batch, count the exact work, simulate every design — with the real
masks and, where ../shared/sparsity publishes a profile for the model, its early and converged
sparsity. Every step is a shared stage (`agos.stages`), cached by the content of its inputs."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from agos.arch.load import LoadedArch, load_archs
from agos.density.profiles import published_info
from agos.errors import AgosError
from agos.inputs.offline_weights import INSTALL, OFFLINE, offline_file
from agos.inputs.options import RunOptions
from agos.inputs.session import check_image_size
from agos.reproduce.settings import Settings
from agos.stages.analyse import analysis_stage
from agos.stages.cache import Cache, announcer
from agos.stages.capture import capture_and_prove
from agos.stages.resolve import ResolvedRun, resolve_run
from agos.stages.verification import Verification


def runs_at(models: list[str], image_size: int) -> list[str]:
    """The trained networks `--trained auto` can run at this image size; the others named once."""
    kept = []
    for model in models:
        try:
            check_image_size(RunOptions(model=model, image_size=image_size))
        except AgosError as exc:
            print(f"agos: note: --trained auto leaves out {model}: {exc}", file=sys.stderr)
        else:
            kept.append(model)
    return kept


def check_settings(settings: Settings) -> dict[str, ResolvedRun]:
    """Every argument of a reproduce run, for every model, before any work starts; the runs,
    resolved once (keys: the models, then `trained:MODEL` for the trained networks)."""
    if not settings.models:
        raise AgosError("--models needs at least one model")
    batch = settings.run.batch_size
    if not 0 <= settings.check_images <= batch:
        raise AgosError(
            f"--check-images must be between 0 and the batch size {batch} (got {settings.check_images})"
        )
    weights = settings.run.weights
    if "=" in weights:  # model=PATH,…: every pair well formed and naming a model of the run
        for pair in (p for p in weights.split(",") if p):
            model, _, path = pair.partition("=")
            if not model or not path:
                raise AgosError(f"--weights: '{pair}' is not MODEL=PATH")
            if model not in settings.models:
                raise AgosError(
                    f"--weights {pair}: {model} is not among --models ({', '.join(settings.models)})"
                )
    runs = {model: resolve_run(settings.options_for(model)) for model in settings.models}
    for model in settings.trained:
        if model not in OFFLINE:
            known = ", ".join(OFFLINE)
            raise AgosError(f"--trained: no offline trained weights for {model} (there are: {known})")
        if offline_file(model) is None:
            raise AgosError(f"--trained {model}: its trained weights are not installed: {INSTALL}")
        runs[f"trained:{model}"] = resolve_run(settings.options_for(model, "imagenet"))
    load_archs(settings.archs)
    return runs


def sections_for(density: str) -> list[str]:
    """What the analysis stage computes: counts and simulation always; tiles for real masks and the
    converged profile; the trace's own sparsity for real masks."""
    out = ["realised", "bounds", "simulation"]
    if density == "real" or density.endswith(":last"):
        out.append("tiles")
    if density == "real":
        out.append("sparsity")
    return out


def densities_for(model: str) -> list[str]:
    """Real masks always; the published early and converged profiles where they exist."""
    info = published_info(model)
    return ["real"] + ([info.spec("first"), info.spec("last")] if info is not None else [])


@dataclass
class ModelOutcome:
    model: str
    trace_dir: Path
    verify: Verification
    analyses: dict[str, Path]  # density → stage directory
    seconds: float  # wall time of this invocation
    compute_seconds: float  # what its stages took when they were computed (cached or not)


def run_model(
    resolved: ResolvedRun,
    settings: Settings,
    designs: list[LoadedArch],
    cache: Cache,
    console,
    densities: list[str] | None = None,
) -> ModelOutcome:
    """Capture, prove and analyse one model; `designs` are loaded once for the whole run."""
    start = time.perf_counter()
    model = resolved.name
    say = announcer(console, model)
    proven = capture_and_prove(
        resolved,
        cache,
        proof=True,
        engine_images=settings.check_images,
        say=say,
        warn=lambda note: console.print(f"[yellow]warning:[/yellow] {model}: {note}"),
    )
    seed = resolved.options.seed
    analyses = {
        d: analysis_stage(
            cache, proven.trace_key, proven.trace_dir, d, designs, seed, sections_for(d), True, say
        )
        for d in (densities or densities_for(model))
    }
    compute = sum(cache.seconds(k) for k in proven.keys) + sum(
        cache.seconds(p.name) for p in analyses.values()
    )
    assert proven.verification is not None  # proof=True
    return ModelOutcome(
        model, proven.trace_dir, proven.verification, analyses, time.perf_counter() - start, compute
    )
