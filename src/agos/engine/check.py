"""`agos check`: train N steps twice from the same start — plain autograd, and with the sparse engine —
and show that skipping changes nothing.

Both runs start from one model (deep copies), see the same batches (`PreparedRun.batch`), replay the
same random numbers per step (`step_rng`: dropout) and take SGD steps with the same settings.

Where the comparison is made. Two free-running float32 trajectories drift apart by themselves: a
weight that differs in its last bit can flip a ReLU sign or a max-pool argmax a step later, and
small-batch BatchNorm amplifies the rest (two plain-autograd runs of resnet18, 64 px, batch 2, one
weight moved by one ulp, differ by 8e-6 in a gradient at step 1 and 6e-2 at step 3). So the sparse
engine is judged where it alone makes the difference: at every step, twins loaded with the sparse
run's exact weights and buffers compute the same step — one with plain float32 autograd, one whose
Conv2d/Linear backward is dense and accumulated in float64 (`float64_backward`). The plain
trajectory is still trained, and its loss and weight drift are shown for information.

Tolerance. The sparse engine forms every product it needs exactly and sums in float64, then rounds
once to float32: the float64 twin computes the same sums with every product and torch's own
convolution. The two can differ only where their float64 sums round to neighbouring float32 values (a
tie within ~1e-14 of the result), so `TOLERANCE` = 1e-6 of a parameter's largest gradient element
(8 float32 ulps) is generous for a correct engine, and a single needed dX element dropped exceeds it
by orders of magnitude. Float32 autograd is not the reference: its own rounding grows with the length
of a sum and with cancellation (conv → BatchNorm makes each channel's dY sum to zero) — for resnet50's
conv1 at 224 px batch 8, autograd's weight gradient is 1.6e-5 (relative) away from the float64 sum,
which the sparse engine reproduces bit for bit. The check prints the difference to float32 autograd
and autograd's own difference to the float64 twin side by side. The relative difference of a
parameter is max|Δg| / max|g_reference| over its elements; a step's figure is the largest over all
parameters. The forward is the model's own arithmetic on the same weights in the sparse run and its
twins, so their losses must be bit-identical (with `sparse_forward`, they are compared with the
tolerance instead).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from agos.engine.training import LayerWork, float64_backward, sparse_training
from agos.errors import AgosError
from agos.inputs.session import RunOptions, prepare
from agos.inputs.training import plain_step
from agos.report.provenance import provenance_label
from agos.report.sparsity import wide_console

TOLERANCE = 1e-6


@dataclass(frozen=True)
class StepResult:
    step: int  # 1-based
    loss_sparse: float  # the run on the sparse engine
    loss_autograd: float  # float32 autograd at the sparse run's weights
    loss_float64: float  # the float64-backward twin at the sparse run's weights
    max_rel_diff: float  # the criterion: sparse vs float64 twin, largest over parameters
    worst_param: str
    diff_autograd: float  # sparse vs float32 autograd (for information)
    rounding_autograd: float  # float32 autograd vs float64 twin: autograd's own rounding
    loss_plain: float  # the independent plain-autograd trajectory
    drift: float  # largest over parameters of max|w_plain − w_sparse| / max|w_plain| before the step
    bwd_data_products: int
    bwd_data_dense: int  # dense MACs of the BWD-D passes that ran (layers whose input needs dX)
    bwd_weight_products: int
    bwd_weight_dense: int
    seconds_autograd: float
    seconds_sparse: float
    problem: str | None  # why this step fails the check, or None

    @property
    def bwd_data_skipped(self) -> float:
        return 1 - self.bwd_data_products / self.bwd_data_dense if self.bwd_data_dense else 0.0

    @property
    def bwd_weight_skipped(self) -> float:
        return 1 - self.bwd_weight_products / self.bwd_weight_dense if self.bwd_weight_dense else 0.0


@dataclass
class CheckReport:
    provenance: dict
    graph: str
    tolerance: float
    sparse_forward: bool
    steps: list[StepResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(s.problem is None for s in self.steps)

    @property
    def label(self) -> str:
        return provenance_label(self.provenance, density="sparse engine vs autograd")


def _relative(ref: torch.Tensor, other: torch.Tensor) -> float:
    scale = float(ref.abs().max()) if ref.numel() else 0.0
    diff = float((other - ref).abs().max()) if ref.numel() else 0.0
    rel = diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)
    return math.inf if math.isnan(rel) else rel


def gradient_difference(reference: nn.Module, other: nn.Module) -> tuple[float, str]:
    """Largest relative gradient difference over parameters, and the parameter where it is."""
    worst, where = 0.0, ""
    other_params = dict(other.named_parameters())
    for name, p in reference.named_parameters():
        q = other_params[name]
        if p.grad is None and q.grad is None:
            continue
        if p.grad is None or q.grad is None:
            return math.inf, f"{name} (gradient in only one run)"
        rel = _relative(p.grad, q.grad)
        if rel > worst:
            worst, where = rel, name
    return worst, where


def weight_drift(reference: nn.Module, other: nn.Module) -> float:
    """Largest relative difference of any parameter tensor between two models."""
    other_params = dict(other.named_parameters())
    pairs = ((p.detach(), other_params[n].detach()) for n, p in reference.named_parameters())
    return max((_relative(a, b) for a, b in pairs), default=0.0)


def _totals(layers: list[LayerWork]) -> tuple[int, int, int, int]:
    data = [w for w in layers if w.needs_bwd_data]
    weight = [w for w in layers if w.bwd_weight_products is not None]
    return (
        sum(w.bwd_data_products or 0 for w in data),
        sum(w.dense_macs for w in data),
        sum(w.bwd_weight_products for w in weight),  # type: ignore[misc]
        sum(w.dense_macs for w in weight),
    )


def _problem(
    step: int, loss_reference: float, loss_sparse: float, rel: float, where: str, tol: float, exact_loss: bool
) -> str | None:
    losses = f"{loss_reference!r} reference vs {loss_sparse!r} sparse"
    if exact_loss and loss_reference != loss_sparse:
        return f"step {step}: losses differ ({losses}) although both ran the model's own forward"
    if not math.isclose(loss_reference, loss_sparse, rel_tol=tol, abs_tol=0.0):
        return f"step {step}: losses differ by more than {tol:g} relative ({losses})"
    if not rel <= tol:
        return (
            f"step {step}: gradient of {where} differs from the float64 reference by {rel:.3g} relative "
            f"(tolerance {tol:g})"
        )
    return None


def run_check(
    options: RunOptions,
    steps: int = 3,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    tolerance: float = TOLERANCE,
    sparse_forward: bool = False,
    on_step=None,
) -> CheckReport:
    """Train on the sparse engine and on plain autograd; `on_step(StepResult)` after each step."""
    if steps < 1:
        raise AgosError(f"--steps must be at least 1 (got {steps})")
    run = prepare(options)
    plain = run.model
    sparse = copy.deepcopy(plain)
    twin = copy.deepcopy(plain)  # float32 autograd, reloaded with the sparse run's state at every step
    twin64 = copy.deepcopy(plain)  # dense float64 Conv2d/Linear backward, reloaded likewise
    optimizers = [
        torch.optim.SGD(m.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
        for m in (plain, sparse)
    ]
    provenance = run.provenance()
    provenance["check"] = {"steps": steps, "lr": lr, "momentum": momentum, "weight_decay": weight_decay}
    with float64_backward(twin64), sparse_training(sparse, sparse_forward=sparse_forward) as engine:
        report = CheckReport(provenance, engine.graph, tolerance, sparse_forward)
        for i in range(steps):
            images, labels = run.batch(i)
            seed = options.seed + 1_000 + i  # the same dropout in every run of the step
            drift = weight_drift(plain, sparse)
            loss_plain = float(plain_step(plain, images, labels, seed))
            state = sparse.state_dict()  # weights and buffers (BN statistics)
            twin.load_state_dict(state)
            twin64.load_state_dict(state)
            start = time.perf_counter()
            loss_autograd = float(plain_step(twin, images, labels, seed))
            mid = time.perf_counter()
            loss_sparse = float(plain_step(sparse, images, labels, seed))
            end = time.perf_counter()
            loss_float64 = float(plain_step(twin64, images, labels, seed))
            rel, where = gradient_difference(twin64, sparse)
            data, data_dense, weight, weight_dense = _totals(engine.take_layers())
            exact_loss = not sparse_forward
            result = StepResult(
                step=i + 1,
                loss_sparse=loss_sparse,
                loss_autograd=loss_autograd,
                loss_float64=loss_float64,
                max_rel_diff=rel,
                worst_param=where,
                diff_autograd=gradient_difference(twin, sparse)[0],
                rounding_autograd=gradient_difference(twin64, twin)[0],
                loss_plain=loss_plain,
                drift=drift,
                bwd_data_products=data,
                bwd_data_dense=data_dense,
                bwd_weight_products=weight,
                bwd_weight_dense=weight_dense,
                seconds_autograd=mid - start,
                seconds_sparse=end - mid,
                problem=_problem(i + 1, loss_float64, loss_sparse, rel, where, tolerance, exact_loss),
            )
            report.steps.append(result)
            if on_step is not None:
                on_step(result)
            for optimizer in optimizers:
                optimizer.step()
    return report


def _products(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def print_report(report: CheckReport, console: Console | None = None) -> None:
    console = console or wide_console()
    table = Table(title=f"agos check — {report.label}", title_justify="left")
    columns = (
        ("step", "right"),
        ("loss sparse", "right"),
        ("loss references", "right"),
        ("Δgrad vs float64", "right"),
        ("at", "left"),
        ("Δgrad vs float32 autograd", "right"),
        ("autograd's own rounding", "right"),
        ("BWD-D skipped", "right"),
        ("BWD-W skipped", "right"),
        ("loss plain run", "right"),
        ("time autograd", "right"),
        ("time sparse", "right"),
    )
    for col, justify in columns:
        table.add_column(col, justify=justify, overflow="fold")
    for s in report.steps:
        same = s.loss_autograd == s.loss_sparse == s.loss_float64
        table.add_row(
            str(s.step),
            f"{s.loss_sparse:.7f}",
            "identical" if same else f"{s.loss_autograd:.7f} / {s.loss_float64:.7f}",
            f"{s.max_rel_diff:.2e}",
            s.worst_param if s.max_rel_diff > 0 else "—",
            f"{s.diff_autograd:.2e}",
            f"{s.rounding_autograd:.2e}",
            f"{100 * s.bwd_data_skipped:.1f}% of {_products(s.bwd_data_dense)}",
            f"{100 * s.bwd_weight_skipped:.1f}% of {_products(s.bwd_weight_dense)}",
            f"{s.loss_plain:.7f}",
            f"{s.seconds_autograd:.1f} s",
            f"{s.seconds_sparse:.1f} s",
        )
    console.print(table)
    forward = "FWD on the sparse engine" if report.sparse_forward else "FWD is the model's own op"
    console.print(
        f"graph: {report.graph}; {forward}. At the sparse run's weights, each step is also computed by "
        "float32 autograd and by a twin whose Conv2d/Linear backward is dense in float64. Pass: "
        f"Δgrad vs float64 ≤ {report.tolerance:g} (max|Δg| / max|g| per parameter)"
        + ("" if report.sparse_forward else " and bit-identical losses")
        + ". 'loss plain run': an independent autograd trajectory, for information."
    )
    if report.passed:
        console.print("PASS: skipping changed nothing — the sparse engine's gradients are the float64 sums")
