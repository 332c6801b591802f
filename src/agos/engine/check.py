"""`agos check`: train N steps twice from the same start — plain autograd, and with the sparse engine —
and show that skipping changes nothing beyond floating-point reassociation.

Both runs start from one model (deep copies), see the same batches (`PreparedRun.batch`), replay the
same random numbers per step (`step_rng`: dropout) and take SGD steps with the same settings.

Where the comparison is made. Two free-running float32 trajectories drift apart by themselves: a
weight that differs in its last bit can flip a ReLU sign or a max-pool argmax a step later, and
small-batch BatchNorm amplifies the rest (two plain-autograd runs of resnet18, 64 px, batch 2, one
weight moved by one ulp, differ by 8e-6 in a gradient at step 1 and 6e-2 at step 3). So the sparse
engine is judged where it alone makes the difference: at every step, a twin loaded with the sparse
run's exact weights and buffers computes the same step twice — once with plain float32 autograd,
once with its Conv2d/Linear backward dense and accumulated in float64 (`float64_backward`, torch's
own convolution). The plain trajectory is still trained and its loss is shown for information.

The criterion. The sparse engine forms the products it needs exactly, sums them in float64 and rounds
once to float32; so does the float64 twin, with every product and in torch's order. Per parameter p,
with S = max|g_float64|, D = max|g_sparse − g_float64| and N = max|g_float32 − g_float64| (float32
autograd's own rounding of that very gradient), a step passes when for every parameter

    D ≤ TOLERANCE · S + NOISE_FACTOR · N,        TOLERANCE = 1e-6, NOISE_FACTOR = 10,

and the losses are bit-identical (the forward is the model's own arithmetic on the same weights; with
`sparse_forward` they are compared with the tolerance instead). Why not a fixed relative bar: the two
float64 sums can round to neighbouring float32 values (a tie, ~1 in 10^5 elements of a long
cancelling sum), and the float32 layers around them (BatchNorm's backward mixes a whole channel)
spread that one ulp into every gradient upstream at the size of float32 rounding — ~1e-7 of most
gradients, but 100% of a gradient that is mathematically zero (a BatchNorm bias before a conv → BN:
S and N are rounding noise). So D is bounded by float32 autograd's own rounding of the same gradient,
with an order of magnitude to spare. Measured: on resnet18, resnet50, alexnet and googlenet no tie
occurs and D = 0; on mobilenet_v2 (64 px, batch 2, 4 seeds × 3 steps) D reaches 2.5 N; a single
needed dX element dropped from one mask of resnet18 gives D = 2.5e4 N to 7e5 N (tested). Float32
autograd itself is not the reference: its rounding grows with long cancelling sums (resnet50 conv1 at
224 px batch 8: N = 1.6e-5 S, where the sparse engine has D = 0).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn

from agos.engine.training import LayerProducts, float64_backward, sparse_training
from agos.errors import AgosError
from agos.inputs.provenance import Provenance, SgdInfo, provenance_label
from agos.inputs.session import MAX_STEPS, PreparedRun
from agos.inputs.training import left_as_found, model_errors, plain_step
from agos.progress import progress_bar

TOLERANCE = 1e-6
NOISE_FACTOR = 10.0
RESOLVED = 1e-2  # a gradient float32 autograd gets right to better than 1% (N < RESOLVED · S)


@dataclass(frozen=True)
class ParamComparison:
    """One parameter's gradient in the three runs of a step (max-abs figures over its elements)."""

    name: str
    scale: float  # S: max|g_float64|
    diff: float  # D: max|g_sparse − g_float64|
    noise: float  # N: max|g_float32 − g_float64|, float32 autograd's own rounding
    diff_float32: float  # max|g_sparse − g_float32|

    @property
    def allowed(self) -> float:
        return TOLERANCE * self.scale + NOISE_FACTOR * self.noise

    @property
    def ratio(self) -> float:
        """D / allowed: the step fails when any parameter's ratio exceeds 1."""
        if self.diff == 0:
            return 0.0
        return self.diff / self.allowed if self.allowed > 0 else math.inf

    @property
    def resolved(self) -> bool:
        return self.noise < RESOLVED * self.scale


CHUNK = 1 << 20  # elements per piece of a max-abs reduction (a small scratch, no full-size temporary)


def _max_abs(t: torch.Tensor, minus: torch.Tensor | None = None) -> float:
    """max|t| (or max|t − minus|), exactly, in pieces; NaN anywhere counts as ∞."""
    flat = t.reshape(-1)
    other = None if minus is None else minus.reshape(-1)
    worst = 0.0
    for start in range(0, flat.numel(), CHUNK):
        piece = flat[start : start + CHUNK]
        if other is not None:
            piece = piece - other[start : start + CHUNK]
        low, high = torch.aminmax(piece)
        value = max(-float(low), float(high))
        if math.isnan(value):
            return math.inf
        worst = max(worst, value)
    return worst


Gradients = dict[str, "torch.Tensor | None"]  # parameter name → its gradient after a step


def gradients(model: nn.Module) -> Gradients:
    return {name: p.grad for name, p in model.named_parameters()}


def compare_parameters(sparse: Gradients, autograd: Gradients, float64: Gradients) -> list[ParamComparison]:
    """Per parameter: the sparse gradient against the float64 twin's, and float32 autograd's rounding."""
    out = []
    for name, g in sparse.items():
        g32, g64 = autograd.get(name), float64.get(name)
        if g is None and g32 is None and g64 is None:
            continue
        if g is None or g32 is None or g64 is None:
            out.append(ParamComparison(f"{name} (gradient missing in a run)", 0.0, math.inf, 0.0, math.inf))
            continue
        out.append(
            ParamComparison(
                name=name,
                scale=_max_abs(g64),
                diff=_max_abs(g, g64),
                noise=_max_abs(g32, g64),
                diff_float32=_max_abs(g, g32),
            )
        )
    return out


@dataclass(frozen=True)
class StepResult:
    step: int  # 1-based
    loss_sparse: float  # the run on the sparse engine
    loss_autograd: float  # float32 autograd at the sparse run's weights
    loss_float64: float  # the float64-backward twin at the sparse run's weights
    worst: ParamComparison | None  # the parameter with the largest D / allowed
    max_rel_float32: float  # largest max|g_sparse − g_float32| / S over resolved parameters
    unresolved: int  # parameters whose gradient float32 autograd does not resolve (≈ 0)
    loss_plain: float  # the independent plain-autograd trajectory
    bwd_data_products: int
    bwd_data_dense: int  # dense MACs of the BWD-D passes that ran (layers whose input needs dX)
    bwd_weight_products: int
    bwd_weight_dense: int
    seconds_autograd: float
    seconds_sparse: float
    problem: str | None  # why this step fails the check, or None

    @property
    def ratio(self) -> float:
        return self.worst.ratio if self.worst is not None else 0.0

    @property
    def bwd_data_skipped(self) -> float:
        return 1 - self.bwd_data_products / self.bwd_data_dense if self.bwd_data_dense else 0.0

    @property
    def bwd_weight_skipped(self) -> float:
        return 1 - self.bwd_weight_products / self.bwd_weight_dense if self.bwd_weight_dense else 0.0


@dataclass
class CheckReport:
    provenance: Provenance
    graph: str
    sparse_forward: bool
    steps: list[StepResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(s.problem is None for s in self.steps)

    @property
    def label(self) -> str:
        return provenance_label(self.provenance, density="sparse engine vs autograd")


def _totals(layers: list[LayerProducts]) -> tuple[int, int, int, int]:
    data = [w for w in layers if w.needs_bwd_data]
    weight = [w for w in layers if w.bwd_weight_products is not None]
    return (
        sum(w.bwd_data_products or 0 for w in data),
        sum(w.dense_macs for w in data),
        sum(w.bwd_weight_products for w in weight),  # type: ignore[misc]
        sum(w.dense_macs for w in weight),
    )


def _problem(step: int, losses: tuple[float, float, float], worst: ParamComparison | None, exact_loss: bool):
    sparse, autograd, float64 = losses
    text = f"{sparse!r} sparse, {autograd!r} autograd, {float64!r} float64"
    if exact_loss and not sparse == autograd == float64:
        return f"step {step}: losses differ ({text}) although all ran the model's own forward"
    if not exact_loss and not math.isclose(sparse, float64, rel_tol=TOLERANCE, abs_tol=0.0):
        return f"step {step}: losses differ by more than {TOLERANCE:g} relative ({text})"
    if worst is not None and not worst.ratio <= 1:
        return (
            f"step {step}: gradient of {worst.name} differs from the float64 reference by "
            f"{worst.diff:.3g} (max|g| {worst.scale:.3g}, float32 autograd's own rounding {worst.noise:.3g}; "
            f"allowed {worst.allowed:.3g})"
        )
    return None


@dataclass(frozen=True)
class _TwinSteps:
    """The step computed by the twin: float32 autograd, and the float64-backward reference."""

    loss_autograd: float
    autograd: Gradients
    seconds_autograd: float
    loss_float64: float
    float64: Gradients


def _twin_steps(twin: nn.Module, load: Callable[[], None], images, labels, seed: int) -> _TwinSteps:
    """The step twice on `twin`, `load()` putting the sparse run's state in place before each."""
    load()
    start = time.perf_counter()
    loss_autograd = float(plain_step(twin, images, labels, seed))
    seconds = time.perf_counter() - start
    autograd = gradients(twin)
    load()
    with float64_backward(twin):
        loss_float64 = float(plain_step(twin, images, labels, seed))
    return _TwinSteps(loss_autograd, autograd, seconds, loss_float64, gradients(twin))


def _judged_step(
    step: int,
    twins: _TwinSteps,
    sparse,
    engine,
    images,
    labels,
    seed: int,
    loss_plain: float,
    sparse_forward: bool,
) -> StepResult:
    """One step on the sparse engine, judged against the twin's two runs of it from the same state."""
    start = time.perf_counter()
    with model_errors(f"check step {step}, on the sparse engine", images, (ValueError, RuntimeError)):
        loss_sparse = float(plain_step(sparse, images, labels, seed))
    seconds_sparse = time.perf_counter() - start
    params = compare_parameters(gradients(sparse), twins.autograd, twins.float64)
    worst = max(params, key=lambda c: c.ratio, default=None)
    resolved = [c for c in params if c.resolved]
    data, data_dense, weight, weight_dense = _totals(engine.take_layers())
    losses = (loss_sparse, twins.loss_autograd, twins.loss_float64)
    return StepResult(
        step=step,
        loss_sparse=loss_sparse,
        loss_autograd=twins.loss_autograd,
        loss_float64=twins.loss_float64,
        worst=worst,
        max_rel_float32=max((c.diff_float32 / c.scale for c in resolved), default=0.0),
        unresolved=len(params) - len(resolved),
        loss_plain=loss_plain,
        bwd_data_products=data,
        bwd_data_dense=data_dense,
        bwd_weight_products=weight,
        bwd_weight_dense=weight_dense,
        seconds_autograd=twins.seconds_autograd,
        seconds_sparse=seconds_sparse,
        problem=_problem(step, losses, worst, exact_loss=not sparse_forward),
    )


def check_batch(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, seed: int
) -> tuple[StepResult, str]:
    """One training step of `model` on this batch through the sparse engine, judged as `agos check`
    judges every step; the model itself is left as it was. Returns the step and the graph mode.
    The model is its own twin and its own sparse run: the three steps run on it one after another,
    each from its buffers as found (`left_as_found`), so no copy of its parameters is made."""
    with left_as_found(model) as reset:
        twins = _twin_steps(model, reset, images, labels, seed)
        reset()
        with sparse_training(model) as engine:
            result = _judged_step(1, twins, model, engine, images, labels, seed, math.nan, False)
            return result, engine.graph


def run_check(run: PreparedRun, steps: int = 3, sparse_forward: bool = False, on_step=None) -> CheckReport:
    """Train `steps` SGD steps (the run's `warm_up` settings: lr, momentum, weight decay) on the
    sparse engine and on plain autograd; `on_step(StepResult)` after each step."""
    if not 1 <= steps <= MAX_STEPS:
        raise AgosError(f"--steps must be between 1 and {MAX_STEPS:,} (got {steps})")
    sgd = run.options.warm_up
    lr, momentum, weight_decay = sgd.lr, sgd.momentum, sgd.weight_decay
    plain = run.model
    sparse = copy.deepcopy(plain)
    twin = copy.deepcopy(plain)  # float32 autograd and float64 backward, from the sparse run's state
    optimizers = [
        torch.optim.SGD(m.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
        for m in (plain, sparse)
    ]
    provenance = run.provenance(check=SgdInfo(steps=steps, **sgd.model_dump(exclude={"steps"})))
    with sparse_training(sparse, sparse_forward=sparse_forward) as engine:
        report = CheckReport(provenance, engine.graph, sparse_forward)
        with progress_bar("check: autograd and the sparse engine", steps) as advance:
            for i in range(steps):
                images, labels = run.batch(i)
                seed = run.options.seed + 1_000 + i  # the same dropout in every run of the step
                loss_plain = float(plain_step(plain, images, labels, seed))
                state = sparse.state_dict()  # weights and buffers (BN statistics) before the step
                twins = _twin_steps(twin, partial(twin.load_state_dict, state), images, labels, seed)
                result = _judged_step(
                    i + 1, twins, sparse, engine, images, labels, seed, loss_plain, sparse_forward
                )
                report.steps.append(result)
                if on_step is not None:
                    on_step(result)
                for optimizer in optimizers:
                    optimizer.step()
                advance(1, f"step {i + 1}: {'ok' if result.problem is None else 'FAILED'}")
    return report
