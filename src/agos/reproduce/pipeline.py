"""The evaluation of the seed paper, run on each model: capture one real training step, prove that
skipping is lossless on that batch, count the exact work, simulate every design — with the real
masks and, where ../shared/sparsity publishes a profile for the model, its early and converged
sparsity — and gather everything the report shows. Each stage is cached by its inputs."""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from agos.analysis import model as analysis_model
from agos.analysis.analyse import analyse
from agos.analysis.model import Analysis
from agos.arch.load import DEFAULT_DESIGNS, LoadedArch, load_archs
from agos.capture.recorder import capture_step
from agos.capture.trace import SCHEMA_VERSION, load_trace, write_trace
from agos.capture.verify import compare_gradients, masked_step_gradients
from agos.density.profiles import published_info
from agos.density.select import resolve_density
from agos.engine.check import check_batch
from agos.errors import AgosError
from agos.fileio import json_text
from agos.inputs.data import data_fingerprint, parse_data
from agos.inputs.models import model_fingerprint
from agos.inputs.offline_weights import INSTALL, OFFLINE, offline_file
from agos.inputs.session import RunOptions, check_image_size, check_options, prepare, save_weights, warm_up
from agos.inputs.training import WarmUp, plain_step
from agos.report import simulate as simulate_report
from agos.report import sparsity as sparsity_report
from agos.reproduce.stages import StageCache

DEFAULT_MODELS = ("alexnet", "vgg16", "resnet18", "resnet50", "googlenet", "mobilenet_v2")
FULL = {"batch_size": 32, "image_size": 224, "check_images": 4}
QUICK = {"batch_size": 8, "image_size": 160, "check_images": 2}


@dataclass(frozen=True)
class Settings:
    models: tuple[str, ...] = DEFAULT_MODELS
    weights: str = "init"  # init | imagenet | PATH (one model) | model=PATH,…
    data: str = "samples"
    batch_size: int = FULL["batch_size"]
    image_size: int = FULL["image_size"]
    seed: int = 0
    device: str = "auto"
    warm_up: WarmUp = field(default_factory=WarmUp)
    check_images: int = FULL["check_images"]  # images of the batch the sparse engine recomputes
    archs: str = DEFAULT_DESIGNS
    quick: bool = False
    trained: tuple[str, ...] = ()  # also run these with trained ImageNet weights (real masks only)
    trajectory: str | None = None  # a finished `agos trajectory` folder to show in the report
    sweep: str | None = None  # a sweep spec: its results become the report's "Design-space sweep" section

    def weights_for(self, model: str) -> str:
        if self.weights in ("init", "imagenet"):
            return self.weights
        if "=" in self.weights:
            pairs = dict(p.split("=", 1) for p in self.weights.split(",") if p)
            return pairs.get(model, "init")
        if len(self.models) > 1:
            raise AgosError("--weights PATH needs a single model; use --weights model=PATH,… for several")
        return self.weights

    def describe(self) -> dict:
        d = asdict(self)
        d["models"] = list(self.models)
        d["trained"] = list(self.trained)
        return d


def _weights_id(ref: str) -> str:
    """What identifies the weights for caching: the name, or the file's content."""
    if ref in ("init", "imagenet"):
        return ref
    path = Path(ref)
    if not path.is_file():
        raise AgosError(f"weights file {ref} does not exist")
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _stage(console, model: str, stage: str, cached: bool) -> None:
    console.print(f"[bold]{model}[/bold] · {stage}" + (" [dim](cached)[/dim]" if cached else " …"))


# -- stages 1 and 2: trace and verify -------------------------------------------------------


def soundness_record(model, images, labels, seed: int, capture, reference: dict | None = None) -> dict:
    """Bit-exact: every layer's dX zeroed outside its mask leaves all parameter gradients unchanged.
    `reference`: the captured step's own gradients, which are a plain step's (capture is transparent,
    tests/test_capture_soundness.py) — it saves a second full-batch step. The masked step shares no
    code with the recorder, so a capture that was not transparent would fail here, never pass."""
    source = "the captured step's gradients"
    if reference is None:
        plain = copy.deepcopy(model)
        plain_step(plain, images, labels, seed)
        reference = {n: p.grad for n, p in plain.named_parameters() if p.grad is not None}
        source = "a plain autograd step"
    grads, zeroed = masked_step_gradients(copy.deepcopy(model), images, labels, seed, capture)
    identical, worst, differing = compare_gradients(reference, grads)
    return {
        "bit_identical": identical,
        "max_abs_diff": worst,
        "differing": differing[:5],
        "dx_zeroed_fraction": zeroed,
        "parameters": len(reference),
        "reference": source,
    }


def _engine_check(model, images, labels, seed: int, count: int) -> dict | None:
    if count <= 0:
        return None
    k = min(max(count, 2), images.shape[0])  # BatchNorm in training mode needs two images
    start = time.perf_counter()
    step, graph = check_batch(model, images[:k], labels[:k], seed)
    return {
        "images": k,
        "passed": step.problem is None,
        "problem": step.problem,
        "worst_parameter": step.worst.name if step.worst else None,
        "worst_ratio": step.ratio,  # sparse − float64 difference / allowed (≤ 1 passes)
        "max_rel_vs_float32": step.max_rel_float32,
        "loss_sparse": step.loss_sparse,
        "loss_autograd": step.loss_autograd,
        "bwd_data_skipped": step.bwd_data_skipped,
        "bwd_weight_skipped": step.bwd_weight_skipped,
        "graph": graph,
        "seconds": time.perf_counter() - start,
    }


def options_for(model: str, settings: Settings) -> RunOptions:
    return RunOptions(
        model=model,
        weights=settings.weights_for(model),
        data=settings.data,
        batch_size=settings.batch_size,
        image_size=settings.image_size,
        seed=settings.seed,
        device=settings.device,
        warm_up=settings.warm_up,
    )


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


def check_settings(settings: Settings) -> None:
    """Every argument of a reproduce run, for every model, before any work starts."""
    if not settings.models:
        raise AgosError("--models needs at least one model")
    if not 0 <= settings.check_images <= settings.batch_size:
        raise AgosError(
            f"--check-images must be between 0 and the batch size {settings.batch_size} "
            f"(got {settings.check_images})"
        )
    if "=" in settings.weights:  # model=PATH,…: every pair well formed and naming a model of the run
        for pair in (p for p in settings.weights.split(",") if p):
            model, _, path = pair.partition("=")
            if not model or not path:
                raise AgosError(f"--weights: '{pair}' is not MODEL=PATH")
            if model not in settings.models:
                raise AgosError(
                    f"--weights {pair}: {model} is not among --models ({', '.join(settings.models)})"
                )
    for model in settings.models:
        check_options(options_for(model, settings))
        check_image_size(options_for(model, settings))
    for model in settings.trained:
        if model not in OFFLINE:
            known = ", ".join(OFFLINE)
            raise AgosError(f"--trained: no offline trained weights for {model} (there are: {known})")
        if offline_file(model) is None:
            raise AgosError(f"--trained {model}: its trained weights are not installed: {INSTALL}")
        check_options(options_for(model, replace(settings, weights="imagenet")))
        check_image_size(options_for(model, settings))
    load_archs(settings.archs)


def trace_and_verify(
    model: str, settings: Settings, cache: StageCache, console
) -> tuple[Path, dict, str, list[str]]:
    """The trace directory, the verification record, the trace stage's key and both stage keys.
    Keys are on content (the model's code, the weights' and images' bytes), so an edited model or
    replaced images are computed again; a finished capture is reused when only its check is missing."""
    options = options_for(model, settings)
    t_inputs = {
        "model": model_fingerprint(model),
        "weights": _weights_id(options.weights),
        "data": data_fingerprint(
            parse_data(settings.data), settings.seed, settings.batch_size * (settings.warm_up.steps + 1)
        ),
        "batch_size": settings.batch_size,
        "image_size": settings.image_size,
        "seed": settings.seed,
        "warm_up": asdict(settings.warm_up),
        "trace_schema": SCHEMA_VERSION,  # a cached trace of an older layout is captured again
    }
    t_key = cache.key("trace", t_inputs)
    v_inputs = {"trace": t_key, "check_images": settings.check_images}
    v_key = cache.key("verify", v_inputs)
    traced = cache.done(t_key)
    if not (traced and cache.done(v_key)):
        _stage(console, model, "training step: capture and verify", traced)
        run = prepare(options)
        warmed = cache.path(t_key) / "weights.pt"
        if settings.warm_up.steps and warmed.is_file():
            run.model.load_state_dict(torch.load(warmed, weights_only=True))
        else:
            warm_up(run)
        images, labels = run.batch(run.capture_batch_index)
        before = copy.deepcopy(run.model)
        if traced:  # the check was interrupted: read the masks back, judge against a plain step
            trace = load_trace(cache.path(t_key) / "trace")
            masks = {layer.name: trace.mask(layer, "dx_needed") for layer in trace.layers}
            captured = None
        else:
            capture = capture_step(run.model, images, labels, seed=settings.seed)
            captured = {n: p.grad for n, p in run.model.named_parameters() if p.grad is not None}
            masks = {layer.name: layer.dx_needed for layer in capture.layers}
            for note in capture.notes:
                console.print(f"[yellow]warning:[/yellow] {model}: {note}")

            def make_trace(out: Path) -> None:
                provenance = run.provenance()
                provenance["density_source"] = "real masks"
                write_trace(out / "trace", capture, provenance)
                if settings.warm_up.steps:
                    save_weights(before, str(out / "weights.pt"))

            cache.build(t_key, t_inputs, make_trace)

        def make_verify(out: Path) -> None:
            record = {
                "soundness": soundness_record(before, images, labels, settings.seed, masks, captured),
                "engine": _engine_check(before, images, labels, settings.seed, settings.check_images),
            }
            (out / "verify.json").write_text(json_text(record))

        _stage(console, model, "losslessness on the captured batch", False)
        cache.build(v_key, v_inputs, make_verify)
    else:
        _stage(console, model, "training step: capture and verify", True)
    verify = json.loads((cache.path(v_key) / "verify.json").read_text())
    return cache.path(t_key) / "trace", verify, t_key, [t_key, v_key]


# -- stage 3: counts and simulation under one density ----------------------------------------


def sections_for(density: str) -> list[str]:
    """What the analysis stage computes: counts and simulation always; tiles for real masks and the
    converged profile; the trace's own sparsity for real masks."""
    out = ["realised", "bounds", "simulation"]
    if density == "real" or density.endswith(":last"):
        out.append("tiles")
    if density == "real":
        out.append("sparsity")
    return out


def analyse_trace(
    trace_dir: Path,
    density: str,
    designs: list,
    seed: int,
    out: Path,
    sections: list[str] | None = None,
    plots: bool = True,
) -> Analysis:
    """The shared analysis of reproduce and trajectory: one `Analysis` of a trace under one density
    (`sections`, default `sections_for(density)`), written into `out` as analysis.json (its dump),
    with its plots unless `plots` is False."""
    trace = load_trace(trace_dir)
    chosen = sections if sections is not None else sections_for(density)
    analysis = analyse(trace, resolve_density(trace, density, seed), chosen, designs)
    analysis_model.write(analysis, out / "analysis.json")
    if not plots:
        return analysis
    simulate_report.plot(analysis, out / "simulate.png")
    if analysis.sparsity is not None:
        sparsity_report.plot(analysis, out / "sparsity.png")
        sparsity_report.plot_correlation(analysis, out / "correlation.png")
    return analysis


def read_analysis(stage: Path) -> Analysis:
    """The analysis a stage wrote (validated: a stage of another format is refused by its key)."""
    return analysis_model.load(stage / "analysis.json")


def analysis_stage(
    model: str,
    trace_dir: Path,
    t_key: str,
    density: str,
    designs: list[LoadedArch],
    settings: Settings,
    cache: StageCache,
    console,
) -> Path:
    inputs = {
        "trace": t_key,
        "density": density,
        "seed": settings.seed,
        "archs": {d.name: d.sha256 for d in designs},
        "analysis": analysis_model.format_id(),  # what analysis.json holds
    }
    key = cache.key("analysis", inputs)
    _stage(console, model, f"counts and simulation, {density}", cache.done(key))

    def make(out: Path) -> None:
        analyse_trace(trace_dir, density, designs, settings.seed, out)

    return cache.build(key, inputs, make)


def densities_for(model: str) -> list[str]:
    """Real masks always; the published early and converged profiles where they exist."""
    info = published_info(model)
    return ["real"] + ([info.spec("first"), info.spec("last")] if info is not None else [])


@dataclass
class ModelOutcome:
    model: str
    trace_dir: Path
    verify: dict
    analyses: dict[str, Path]  # density → stage directory
    seconds: float  # wall time of this invocation
    compute_seconds: float  # what its stages took when they were computed (cached or not)


def run_model(
    model: str,
    settings: Settings,
    designs: list[LoadedArch],
    cache: StageCache,
    console,
    densities: list[str] | None = None,
) -> ModelOutcome:
    """Trace, verify and analyse one model; `designs` are loaded once for the whole run."""
    start = time.perf_counter()
    trace_dir, verify, t_key, keys = trace_and_verify(model, settings, cache, console)
    analyses = {
        d: analysis_stage(model, trace_dir, t_key, d, designs, settings, cache, console)
        for d in (densities or densities_for(model))
    }
    compute = sum(cache.seconds(k) for k in keys) + sum(cache.seconds(p.name) for p in analyses.values())
    return ModelOutcome(model, trace_dir, verify, analyses, time.perf_counter() - start, compute)
