"""agos from Python — the functions the command line is made of (docs/api.md).

    import agos
    trace = agos.trace(model, data="imagefolder:photos", batch_size=8, image_size=64)
    analysis = agos.simulate(trace, designs="dense@systolic,input-skip@systolic,agos@systolic")
    analysis.designs_frame()      # pandas: one row per design, provenance in columns

`model` is an `nn.Module` in memory (its weights are used as they are, unless `weights` names a
state_dict file; the model itself is never trained or hooked: agos works on a copy) or a name as
`--model` takes it. Every figure carries its provenance: for a model in memory its class, the
SHA-256 of its code and of its state_dict. Bad input raises `agos.AgosError` with one line."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from torch import nn

from agos.analysis.analyse import analyse as _analyse
from agos.analysis.model import Analysis
from agos.analysis.work import MAX_FOLDS, check_work, simulation_work
from agos.arch.load import DEFAULT_DESIGNS, LoadedArch, load_archs
from agos.capture.trace import Trace, load_trace
from agos.density.select import parse_density, resolve_density
from agos.engine.check import CheckReport, run_check
from agos.errors import AgosError
from agos.inputs.options import Command, RunOptions
from agos.inputs.session import save_weights as _save_weights
from agos.inputs.weights import IN_MEMORY
from agos.progress import progress_status
from agos.stages import capture as stage
from agos.stages.resolve import ResolvedRun, resolve_run

__all__ = [
    "DEFAULT_DESIGNS",
    "AgosError",
    "Analysis",
    "RunOptions",
    "Trace",
    "analyse",
    "check",
    "designs",
    "load_trace",
    "resolve",
    "resolve_run",
    "simulate",
    "trace",
]

SIMULATION = ("realised", "bounds", "simulation")  # what `simulate` computes (one pass over the layers)
COUNTS = ("realised", "bounds")


def resolve(model: nn.Module | str, command: Command = "trace", **options) -> ResolvedRun:
    """A run resolved once: `model` and the run options (`inputs.options.RunOptions` fields —
    weights, data, batch_size, image_size, seed, device — and warm-up steps, lr, momentum,
    weight_decay), with the command's defaults for what is not given."""
    module = model if isinstance(model, nn.Module) else None
    if module is None and not isinstance(model, str):
        raise AgosError(f"a model is an nn.Module or a name, not {type(model).__name__}")
    name = type(module).__name__ if module is not None else model
    if module is not None and options.get("weights") is None:
        options["weights"] = IN_MEMORY
    return resolve_run(RunOptions.for_command(command, model=name, **options), model=module)


def _warn(note: str) -> None:
    warnings.warn(f"agos: {note}", stacklevel=3)


def _resolved(model, command: Command, options: dict) -> ResolvedRun:
    if isinstance(model, ResolvedRun):
        return model
    if isinstance(model, RunOptions):
        return resolve_run(model.model_copy(update=options) if options else model)
    return resolve(model, command, **options)


def trace(
    model: nn.Module | str | RunOptions | ResolvedRun,
    out: Path | str | None = None,
    *,
    save_weights: Path | str | None = None,
    on_note: Callable[[str], None] = _warn,
    **options,
) -> Trace:
    """Capture the masks of one real training step of `model` into a trace folder (`out`, or a new
    temporary folder) and return it loaded. What the trace leaves out (unmodelled layers, an
    untraced graph) is reported through `on_note`, one line each (default: a Python warning)."""
    resolved = _resolved(model, "trace", options)
    o = resolved.options
    with progress_status(f"building {resolved.name} and its data"):
        run = stage.prepared(resolved)
    if save_weights is not None:
        _save_weights(run.model, str(save_weights))
    with progress_status(f"capturing one training step (batch {o.batch_size}, {o.image_size} px)"):
        captured = stage.capture(resolved, run)
    folder = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="agos-trace-"))
    with progress_status(f"writing {folder}"):
        manifest = stage.write(captured, folder)
    for note in manifest.notes:
        on_note(note)
    return load_trace(folder)


def check(
    model: nn.Module | str | RunOptions | ResolvedRun,
    *,
    steps: int = 3,
    sparse_forward: bool = False,
    on_step=None,
    **options,
) -> CheckReport:
    """Train `steps` SGD steps twice from the same start — plain autograd and the exact sparse
    engine — and judge every step (`engine.check`); `report.passed` says whether all passed."""
    resolved = _resolved(model, "check", options)
    with progress_status(f"building {resolved.name} and its data"):
        run = resolved.prepare()
    return run_check(run, steps=steps, sparse_forward=sparse_forward, on_step=on_step)


def _load_designs(ref: str | Sequence[str] | Sequence[LoadedArch] = DEFAULT_DESIGNS) -> list[LoadedArch]:
    """Designs by reference: 'PRESET@ORG', a bare 'PRESET' (on every organisation), a YAML file,
    comma-separated or as a list."""
    if isinstance(ref, str):
        return load_archs(ref)
    items = list(ref)
    if all(isinstance(d, LoadedArch) for d in items):
        return items
    return load_archs(",".join(str(d) for d in items))


designs = _load_designs


def _trace(t: Trace | Path | str) -> Trace:
    return t if isinstance(t, Trace) else load_trace(t)


def analyse(
    trace: Trace | Path | str,
    *,
    density: str = "real",
    designs: str | Sequence | None = None,
    sections: Sequence[str] | None = None,
    seed: int = 0,
    workers: int | None = None,
    lookahead: list[int | str] | None = None,
    oracle: bool = False,
    max_folds: int | None = MAX_FOLDS,
    on_note: Callable[[str], None] = _warn,
) -> Analysis:
    """An `Analysis` of a trace under one density source ('real', 'uniform:S',
    'profile:FILE[:CHECKPOINT]', with ':structure=…' for statistical masks of a given structure;
    seeded by `seed`). `sections` default: the simulation and its counts when `designs` are given,
    else the counts (MAC bounds and realised sparsity). A simulation counts its work first: above
    `max_folds` PE-array folds it is refused (AgosError; None: no limit), a long one is announced
    through `on_note`. `oracle`: also run every design the bypass rule decides on with every
    feature always on (its per-layer oracle, an upper bound)."""
    t = _trace(trace)
    parse_density(density)  # a bad spec is one line before any work
    chosen = list(sections) if sections is not None else list(SIMULATION if designs is not None else COUNTS)
    loaded = _load_designs(designs) if designs is not None else None
    source = resolve_density(t, density, seed)
    if "simulation" in chosen and loaded is not None and max_folds is not None:
        note = check_work(simulation_work(t, loaded), max_folds)  # hours refused, minutes announced
        if note:
            on_note(note)
    return _analyse(t, source, chosen, loaded, workers=workers, lookahead=lookahead, oracle=oracle)


def simulate(
    trace: Trace | Path | str,
    designs: str | Sequence = DEFAULT_DESIGNS,
    *,
    density: str = "real",
    seed: int = 0,
    workers: int | None = None,
    lookahead: list[int | str] | None = None,
    oracle: bool = False,
    max_folds: int | None = MAX_FOLDS,
    on_note: Callable[[str], None] = _warn,
) -> Analysis:
    """Cycles, area, energy and speedups of each design (over its dense twin and the best dense
    design of equal area) on a trace: `analyse` with the simulation section."""
    return analyse(
        trace, density=density, designs=designs, sections=SIMULATION, seed=seed, workers=workers,
        lookahead=lookahead, oracle=oracle, max_folds=max_folds, on_note=on_note,
    )  # fmt: skip
