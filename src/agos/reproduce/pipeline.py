"""The evaluation of the seed paper, run on each model: capture one real training step, prove that
skipping is lossless on that batch, count the exact work, simulate every design — with the real
masks and, where ../shared/sparsity publishes a profile for the model, its early and converged
sparsity. Every step is a shared stage (`agos.stages`), cached by the content of its inputs."""

from __future__ import annotations

import sys
import time
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path

from agos.arch.load import LoadedArch, load_archs
from agos.density.profiles import published_info
from agos.errors import AgosError
from agos.inputs.offline_weights import INSTALL, OFFLINE, offline_file
from agos.inputs.options import RunOptions
from agos.inputs.session import check_image_size
from agos.reproduce.settings import Settings
from agos.stages.analyse import analysis_key, analysis_stage
from agos.stages.cache import Cache, announcer
from agos.stages.capture import Proven, capture_and_prove
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


def ready() -> None:
    """Nothing: sent to each worker at the start so that it imports this module (and what the
    analyses need) while the first model is captured."""


def _analysis_task(
    cache_root: Path, trace_key: str, trace_dir: Path, density: str, designs, seed: int, plots: bool
) -> Path:
    """One analysis stage in a worker process (module level, so that it can be sent there)."""
    return analysis_stage(
        Cache(cache_root), trace_key, trace_dir, density, designs, seed, sections_for(density), plots
    )


@dataclass
class PendingModel:
    """A model whose capture and proof are done and whose analyses run (inline, or in the run's
    worker processes while the next model is captured)."""

    model: str
    proven: Proven
    analyses: dict[str, Future | Path]
    started: float
    cache: Cache
    console: object

    def finish(self) -> ModelOutcome:
        done = {}
        for density, stage in self.analyses.items():
            if isinstance(stage, Future):
                stage = stage.result()
                seconds = self.cache.seconds(stage.name)
                self.console.print(
                    f"[bold]{self.model}[/bold] · counts and simulation, {density}: {seconds:.0f} s"
                )
            done[density] = stage
        compute = sum(self.cache.seconds(k) for k in self.proven.keys) + sum(
            self.cache.seconds(p.name) for p in done.values()
        )
        assert self.proven.verification is not None  # proof=True
        return ModelOutcome(
            self.model,
            self.proven.trace_dir,
            self.proven.verification,
            done,
            time.perf_counter() - self.started,
            compute,
        )


def start_model(
    resolved: ResolvedRun,
    settings: Settings,
    designs: list[LoadedArch],
    cache: Cache,
    console,
    densities: list[str] | None = None,
    pool: Executor | None = None,
    plotted: frozenset[str] = frozenset({"real"}),
) -> PendingModel:
    """Capture and prove one model here (torch's arithmetic, on this process's threads, as every
    capture is made), then its analyses: in `pool` when given (they are functions of the trace and
    the designs only: the same figures wherever they run), else here, one after the other. The
    analyses of the densities in `plotted` draw their plots (the page shows the real masks' plots
    of the init-weight models; the others' figures are in its tables, not drawn twice)."""
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
    analyses: dict[str, Future | Path] = {}
    for d in densities or densities_for(model):
        plots = d in plotted
        if pool is None:
            analyses[d] = analysis_stage(
                cache, proven.trace_key, proven.trace_dir, d, designs, seed, sections_for(d), plots, say
            )
            continue
        key = analysis_key(cache, proven.trace_key, d, designs, seed, sections_for(d), plots)
        if cache.done(key):
            say(f"counts and simulation, {d}", True)
            analyses[d] = cache.path(key)
        else:
            say(f"counts and simulation, {d} (in a worker)", False)
            analyses[d] = pool.submit(
                _analysis_task, cache.root, proven.trace_key, proven.trace_dir, d, designs, seed, plots
            )
    return PendingModel(model, proven, analyses, start, cache, console)
