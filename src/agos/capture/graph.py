"""Static analysis of a model's torch.fx graph: where the layers are, what produced each layer's
input (and so which mask rule applies), and what consumes each layer's output."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from torch import fx, nn

from agos.capture.rules import OpInfo, OpKind, classify, tensor_inputs
from agos.workload.layer import CallNames

LAYER_TYPES = (nn.Conv2d, nn.Linear)
_PASS_THROUGH = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)  # elementwise per channel
_ADD_LABELS = {"add", "iadd", "add_"}


@dataclass
class LayerSite:
    """One call of a Conv2d/Linear module in the graph."""

    node: fx.Node
    name: str
    module: nn.Module
    chain: list[fx.Node]  # nodes whose masks decide this layer's dX mask, input first
    mutated_by: str | None  # an in-place op outside the chain that changes X before the layer
    x_producer: str
    y_consumer: str
    act_node: fx.Node | None  # the ReLU-like op reached from Y through BN/add only
    x_acts: list[str]  # graph names of the ReLU-like ops whose outputs reach X through mask-carrying ops

    @property
    def input_node(self) -> fx.Node:
        return self.chain[0]


@dataclass
class GraphPlan:
    gm: fx.GraphModule
    infos: dict[fx.Node, OpInfo]
    order: dict[fx.Node, int]
    sites: dict[fx.Node, LayerSite] = field(default_factory=dict)
    tracked: set[fx.Node] = field(default_factory=set)  # nodes whose mask state is computed
    last_use: dict[fx.Node, int] = field(default_factory=dict)
    act_sites: dict[fx.Node, list[LayerSite]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # parametrised layers agos does not model
    activations: list[fx.Node] = field(default_factory=list)  # every ReLU-like op, in graph order


class _LayerTracer(fx.Tracer):
    """Subclasses of Conv2d/Linear (static "same" padding, …) stay single calls: traced through,
    they would become functional convolutions that no layer site sees."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, LAYER_TYPES) or super().is_leaf_module(m, module_qualified_name)


def trace(model: nn.Module) -> fx.GraphModule:
    """Symbolic trace in training mode (the graph is specialised to the mode it was traced in)."""
    model.train()
    tracer = _LayerTracer()
    graph = tracer.trace(model)
    name = model.__class__.__name__ if isinstance(model, nn.Module) else model.__name__
    return fx.GraphModule(tracer.root, graph, name)


def _describe(node: fx.Node, infos: dict[fx.Node, OpInfo], depth: int = 0) -> str:
    info = infos[node]
    if info.kind in (OpKind.BAND, OpKind.INPUT, OpKind.OTHER) or depth > 6:
        return info.label
    inputs = tensor_inputs(node, info)
    if info.kind == OpKind.CAT:
        parts = Counter(_describe(p, infos, depth + 1) for p in inputs)
        inner = ", ".join(f"{d}×{n}" if n > 1 else d for d, n in parts.items())
        return f"cat({inner})"
    if not inputs:
        return info.label
    below = _describe(inputs[0], infos, depth + 1)
    return below if info.kind == OpKind.SHAPE else f"{info.label} ← {below}"


def _follow_output(
    node: fx.Node, infos: dict[fx.Node, OpInfo], modules: dict[str, nn.Module]
) -> tuple[str, fx.Node | None]:
    """Describe what consumes a layer's output; find the activation reached via BN/add only."""
    steps: list[str] = []
    current = node
    for _ in range(6):
        users = list(current.users)
        if not users:
            steps.append("nothing")
            return " → ".join(steps), None
        if len(users) > 1:
            labels = sorted({("loss" if u.op == "output" else infos[u].label) for u in users})
            steps.append(f"{len(users)} consumers ({', '.join(labels)})")
            return " → ".join(steps), None
        user = users[0]
        if user.op == "output":
            steps.append("loss")
            return " → ".join(steps), None
        info = infos[user]
        steps.append(info.label)
        if info.kind == OpKind.BAND:
            return " → ".join(steps), user
        is_bn = user.op == "call_module" and isinstance(modules[user.target], _PASS_THROUGH)
        if not (is_bn or info.label in _ADD_LABELS):
            return " → ".join(steps), None
        current = user
    return " → ".join(steps), None


def build_plan(gm: fx.GraphModule) -> GraphPlan:
    modules = dict(gm.named_modules())
    nodes = list(gm.graph.nodes)
    infos = {n: classify(n, modules) for n in nodes}
    plan = GraphPlan(gm=gm, infos=infos, order={n: i for i, n in enumerate(nodes)})

    mutators: dict[fx.Node, list[fx.Node]] = {}
    for n in nodes:
        if infos[n].inplace and n.args and isinstance(n.args[0], fx.Node):
            mutators.setdefault(n.args[0], []).append(n)

    plan.activations = [n for n in nodes if infos[n].kind == OpKind.BAND]
    calls = CallNames()
    for n in nodes:
        if n.op != "call_module":
            continue
        module = modules[n.target]
        if not isinstance(module, LAYER_TYPES):
            if isinstance(module, nn.Conv1d | nn.Conv3d | nn.ConvTranspose2d):
                plan.skipped.append(f"{n.target} ({type(module).__name__})")
            continue
        name = calls(n.target)
        chain = _chain(n.args[0], infos)
        chain_set = set(chain)
        mutated_by = next(
            (
                infos[m].label
                for c in chain
                for m in mutators.get(c, [])
                if m not in chain_set and plan.order[c] < plan.order[m] < plan.order[n]
            ),
            None,
        )
        y_consumer, act = _follow_output(n, infos, modules)
        site = LayerSite(
            node=n,
            name=name,
            module=module,
            chain=chain,
            mutated_by=mutated_by,
            x_producer=_describe(n.args[0], infos),
            y_consumer=y_consumer,
            act_node=act,
            x_acts=[c.name for c in reversed(chain) if infos[c].kind == OpKind.BAND],
        )
        plan.sites[n] = site
        if act is not None:
            plan.act_sites.setdefault(act, []).append(site)
        for c in chain:
            plan.tracked.add(c)
        plan.last_use[site.input_node] = max(plan.last_use.get(site.input_node, -1), plan.order[n])
        for c in chain:
            for below in tensor_inputs(c, infos[c]):
                plan.last_use[below] = max(plan.last_use.get(below, -1), plan.order[c])
    return plan


def _chain(start: fx.Node, infos: dict[fx.Node, OpInfo]) -> list[fx.Node]:
    """The input node and every node whose mask state it is computed from (depth-first)."""
    seen: dict[fx.Node, None] = {}
    stack = [start]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen[node] = None
        stack.extend(tensor_inputs(node, infos[node]))
    return list(seen)
