"""Run one real training step and record, for every Conv2d/Linear call, the masks of its three
passes: X ≠ 0, dY ≠ 0 (as autograd computed it) and the needed-dX mask (DESIGN.md §2).

The step runs through a torch.fx Interpreter over the model's own modules, so its arithmetic is
the model's, op for op; the recorder only reads tensors and hooks the backward nodes of layer
outputs. Models that torch.fx cannot trace fall back to module hooks, with conservative dX masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import fx, nn

from agos.capture.autograd_masks import describe_producer, needed_from_autograd
from agos.capture.graph import LAYER_TYPES, GraphPlan, LayerSite, build_plan, trace
from agos.capture.masking import MaskingInterpreter
from agos.capture.unmodelled import UnmodelledLayer, unmodelled_note, watching_unmodelled
from agos.errors import first_line
from agos.inputs.training import loss_of, model_errors, require_finite_step, split_outputs, step_rng
from agos.workload.bits import PackedMask, pack, popcount
from agos.workload.layer import CallNames, LayerGeometry, geometry_of


@dataclass
class LayerCapture:
    """Everything one layer call left behind in one training step."""

    name: str
    geometry: LayerGeometry
    x_producer: str
    y_consumer: str
    needs_bwd_data: bool  # False when X does not require grad (the first layer): no BWD-D at all
    x_nonzero: PackedMask
    dx_needed: PackedMask | None  # None: every element of dX is needed (see dx_reason)
    dx_reason: str | None
    w_nonzero: int
    w_numel: int
    x_acts: list[str] = field(default_factory=list)  # ReLU-like ops whose outputs reach X
    y_act: str | None = None  # the ReLU-like op that Y reaches through BN/add only
    dy_nonzero: PackedMask | None = None
    correlation: dict[str, int] | None = None  # activation-zero vs dY-zero contingency counts
    _act_inactive: PackedMask | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ActivationStats:
    """One ReLU-like op of the forward pass: how many of its outputs were clamped."""

    name: str  # the fx node name (unique even when a module is called several times)
    op: str  # ReLU, ReLU6, …
    shape: tuple[int, ...]
    clamped: int  # outputs with a zero local derivative (zeros of a ReLU)


@dataclass(frozen=True)
class VectorOp:
    """One non-convolution op of the forward pass (BN, ReLU, pooling, add, …): the vector unit's
    work, sized by the elements it reads and writes (its backward is priced from the same)."""

    name: str
    op: str  # the op's label: BatchNorm2d, ReLU, MaxPool2d, add, …
    kind: str  # the mask-rule class of agos.capture.rules.OpKind (band, maxpool, shape, …)
    out_numel: int
    in_numel: int  # elements of its tensor inputs, summed


@dataclass
class CaptureResult:
    layers: list[LayerCapture]
    loss: float
    graph: str  # "torch.fx", or "autograd (…why fx failed)" when masks come from the autograd graph
    skipped: list[str]
    activations: list[ActivationStats] = field(default_factory=list)
    vector_ops: list[VectorOp] = field(default_factory=list)
    vector_note: str | None = None  # what the record of non-convolution work may miss
    parameters: int = 0  # trainable parameters (the SGD update's work)
    logits_numel: int = 0  # the loss's input
    notes: list[str] = field(default_factory=list)  # what the trace leaves out, one line each


class _Recorder(MaskingInterpreter):
    def __init__(self, plan: GraphPlan, layers: list[LayerCapture]):
        super().__init__(plan)
        self.layers = layers
        self.captured: dict[fx.Node, LayerCapture] = {}
        self.x_cache: dict[fx.Node, PackedMask] = {}
        self.activations: list[ActivationStats] = []
        self.vector_ops: list[VectorOp] = []

    def run_layer(self, site: LayerSite, x: torch.Tensor, needed: torch.Tensor | None, reason: str | None):
        y = super().run_layer(site, x, needed, reason)
        self._record_layer(site, x, y, needed, reason)
        return y

    def after_node(self, n: fx.Node, result) -> None:
        plan = self.plan
        info = plan.infos[n]
        vector_node = n not in plan.sites and n.op in ("call_module", "call_function", "call_method")
        if vector_node and isinstance(result, torch.Tensor):
            ins = [a for a in n.all_input_nodes if isinstance(self.env.get(a), torch.Tensor)]
            self.vector_ops.append(
                VectorOp(
                    n.name,
                    info.label,
                    info.kind.value,
                    result.numel(),
                    sum(self.env[a].numel() for a in ins),
                )
            )
        if info.band is not None and isinstance(result, torch.Tensor):
            state = self.states.get(n)
            live = (
                int(state.mask.count_nonzero())
                if state is not None
                else int(info.band(result.detach()).count_nonzero())
            )
            self.activations.append(
                ActivationStats(n.name, info.label, tuple(result.shape), result.numel() - live)
            )
        for layer_site in plan.act_sites.get(n, ()):
            capture = self.captured.get(layer_site.node)
            if capture is not None and info.band is not None:
                capture._act_inactive = pack(~info.band(result.detach()))

    # -- layers -------------------------------------------------------------------------------
    def _record_layer(
        self,
        site: LayerSite,
        x: torch.Tensor,
        y: torch.Tensor,
        needed: torch.Tensor | None,
        reason: str | None,
    ) -> None:
        module = site.module
        geometry = geometry_of(module, x, y, site.name)
        needs_bwd_data = bool(x.requires_grad)
        dx_needed = pack(needed) if needed is not None else None
        if site.input_node not in self.x_cache:
            self.x_cache[site.input_node] = pack(x.detach() != 0)
        weight = module.weight.detach()
        capture = LayerCapture(
            name=site.name,
            geometry=geometry,
            x_producer=site.x_producer,
            y_consumer=site.y_consumer,
            needs_bwd_data=needs_bwd_data,
            x_nonzero=self.x_cache[site.input_node],
            dx_needed=dx_needed,
            dx_reason=reason,
            w_nonzero=int(weight.count_nonzero()),
            w_numel=weight.numel(),
            x_acts=list(site.x_acts),
            y_act=site.act_node.name if site.act_node is not None else None,
        )
        self.layers.append(capture)
        self.captured[site.node] = capture
        _hook_dy(capture, y)


def _hook_dy(capture: LayerCapture, y: torch.Tensor) -> None:
    """Read dY at the backward node that produced Y: immune to later in-place ops on Y."""
    if y.grad_fn is None:
        return

    def prehook(grad_outputs):
        dy = grad_outputs[0]
        if dy is None:
            return None
        capture.dy_nonzero = pack(dy != 0)
        act = capture._act_inactive
        if act is not None and act.shape == tuple(dy.shape):
            # contingency of (activation zero, dY zero) from popcounts of the packed masks
            n, a, d = act.numel, act.count, capture.dy_nonzero.count
            both = popcount(act.bits & capture.dy_nonzero.bits)
            capture.correlation = {
                "act_zero_dy_zero": a - both,
                "act_zero_dy_nonzero": both,
                "act_nonzero_dy_zero": n - a - d + both,
                "act_nonzero_dy_nonzero": d - both,
            }
        capture._act_inactive = None
        return None

    y.grad_fn.register_prehook(prehook)


def _capture_with_hooks(
    model: nn.Module, images, reason: str, layers: list[LayerCapture], vector_ops: list[VectorOp]
):
    """For graphs torch.fx cannot trace: masks from module hooks, the needed-dX masks from the
    autograd graph of this very step (`autograd_masks`); the non-convolution work of leaf modules
    (functional ops are not seen)."""
    names = {m: name for name, m in model.named_modules()}
    calls = CallNames()

    def vector_hook(module, inputs, output):
        if isinstance(output, torch.Tensor):
            ins = sum(t.numel() for t in inputs if isinstance(t, torch.Tensor))
            vector_ops.append(VectorOp(names[module], type(module).__name__, "module", output.numel(), ins))

    def forward_hook(module, inputs, output):
        base = names[module]
        name = calls(base)
        x = inputs[0]
        weight = module.weight.detach()
        needs = bool(x.requires_grad)
        needed, why = needed_from_autograd(x)
        capture = LayerCapture(
            name=name,
            geometry=geometry_of(module, x, output, name),
            x_producer=describe_producer(x),
            y_consumer=f"unknown ({reason})",
            needs_bwd_data=needs,
            x_nonzero=pack(x.detach() != 0),
            dx_needed=pack(needed) if needed is not None else None,
            dx_reason=why,
            w_nonzero=int(weight.count_nonzero()),
            w_numel=weight.numel(),
        )
        layers.append(capture)
        _hook_dy(capture, output)

    handles = [m.register_forward_hook(forward_hook) for m in model.modules() if isinstance(m, LAYER_TYPES)]
    handles += [
        m.register_forward_hook(vector_hook)
        for m in model.modules()
        if not isinstance(m, LAYER_TYPES) and not list(m.children())
    ]
    try:
        return model(images)
    finally:
        for h in handles:
            h.remove()


def capture_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, seed: int) -> CaptureResult:
    """One instrumented training step; gradients land in `.grad` exactly as a plain step's would."""
    model.train()
    model.zero_grad(set_to_none=True)
    layers: list[LayerCapture] = []
    try:
        gm = trace(model)
    except Exception as exc:  # untraceable user models: data-dependent control flow and the like
        gm = None
        first = first_line(exc)
        graph = f"autograd (not traceable by torch.fx: {first})"
    plan = build_plan(gm) if gm is not None else None
    if plan is not None:
        graph = "torch.fx"
    activations: list[ActivationStats] = []
    vector_ops: list[VectorOp] = []
    vector_note = None
    unmodelled: list[UnmodelledLayer] = []
    with (
        step_rng(seed, images.device),
        watching_unmodelled(model, unmodelled),
        model_errors("the captured step", images, (ValueError, RuntimeError)),
    ):
        if plan is not None:
            recorder = _Recorder(plan, layers)
            output = recorder.run(images)
            activations = recorder.activations
            vector_ops = recorder.vector_ops
        else:
            output = _capture_with_hooks(model, images, "graph not traced by torch.fx", layers, vector_ops)
            vector_note = (
                "non-convolution work from leaf modules only (graph not traced: functional ops unseen)"
            )
        loss = loss_of(output, labels)
        loss.backward()
    require_finite_step(model, output, loss, "the captured step")
    for layer in layers:
        layer._act_inactive = None
    main, aux = split_outputs(output)
    logits_numel = int(main.numel()) + sum(int(a.numel()) for a in aux)
    skipped = [f"{u.name} ({u.kind})" for u in unmodelled]
    notes = [n for n in (unmodelled_note(unmodelled, sum(c.geometry.macs for c in layers)),) if n]
    if plan is None:
        notes.append(
            f"torch.fx could not trace the model ({first}): the needed-dX masks come from the autograd "
            "graph of the step; non-convolution work is counted from leaf modules only"
        )
    return CaptureResult(
        layers=layers,
        loss=float(loss.detach()),
        graph=graph,
        skipped=skipped,
        activations=activations,
        vector_ops=vector_ops,
        vector_note=vector_note,
        parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        logits_numel=logits_numel,
        notes=notes,
    )
