"""An fx Interpreter that knows, at every layer call, which elements of the layer's dX are needed.

It runs the model's own modules op for op and, beside the values, keeps the needed-mask state of
every value that feeds a layer input (DESIGN.md §2). Capture records these masks; the sparse engine
hands them to its masked backward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx

from agos.capture.graph import GraphPlan, LayerSite
from agos.capture.rules import Band, OpKind, tensor_inputs


@dataclass
class _State:
    """Needed-mask of one graph value: a bool tensor (or tuple of them), or None for all-needed."""

    mask: object | None
    band: Band | None = None
    reason: str | None = None


def _conservative(reason: str) -> _State:
    return _State(mask=None, reason=reason)


class MaskingInterpreter(fx.Interpreter):
    """Subclasses override `run_layer` (how a layer call executes) and `after_node` (what to read)."""

    def __init__(self, plan: GraphPlan):
        super().__init__(plan.gm, garbage_collect_values=True)
        self.plan = plan
        self.states: dict[fx.Node, _State] = {}

    def run_node(self, n: fx.Node):
        plan = self.plan
        site = plan.sites.get(n)
        if site is not None:
            x = self.env[site.input_node]
            needed, reason = self.needed_mask(site, x)
            result = self.run_layer(site, x, needed, reason)
        else:
            result = super().run_node(n)
        if n in plan.tracked:
            self.states[n] = self._state(n, result)
        self.after_node(n, result)
        here = plan.order[n]
        for node in [k for k in self.states if plan.last_use.get(k, -1) <= here]:
            del self.states[node]
        return result

    def run_layer(self, site: LayerSite, x: torch.Tensor, needed: torch.Tensor | None, reason: str | None):
        return super().run_node(site.node)

    def after_node(self, n: fx.Node, result) -> None:
        pass

    def needed_mask(self, site: LayerSite, x: torch.Tensor) -> tuple[torch.Tensor | None, str | None]:
        """The needed-dX mask of a layer call, or None and the reason every element is needed."""
        if not x.requires_grad:
            return None, "network input: no data gradient is computed"
        if site.mutated_by is not None:
            return None, f"input mutated in place by {site.mutated_by}"
        state = self.states[site.input_node]
        if state.mask is None:
            return None, state.reason
        return state.mask, None

    # -- mask rules ---------------------------------------------------------------------------
    def _apply(self, n: fx.Node, subs: dict[fx.Node, object]):
        """Re-run node `n`'s op with masks in place of some of its tensor inputs."""
        args = fx.node.map_arg(n.args, lambda a: subs[a] if a in subs else self.env[a])
        kwargs = fx.node.map_arg(n.kwargs, lambda a: subs[a] if a in subs else self.env[a])
        if n.op == "call_module":
            return self.fetch_attr(n.target)(*args, **kwargs)
        if n.op == "call_method":
            obj, *rest = args
            return getattr(obj, n.target)(*rest, **kwargs)
        return n.target(*args, **kwargs)

    def _state(self, n: fx.Node, value) -> _State:
        info = self.plan.infos[n]
        if info.kind == OpKind.INPUT:
            return _conservative("network input")
        if info.kind == OpKind.OTHER:
            return _conservative(f"input produced by {info.label}")
        if info.kind == OpKind.BAND:
            return _State(mask=info.band(value.detach()), band=info.band)
        inputs = tensor_inputs(n, info)
        states = [self.states[i] for i in inputs]
        if info.kind == OpKind.CAT:
            if all(s.mask is None for s in states):
                return _conservative(states[0].reason or "input produced by cat")
            parts = {
                i: s.mask if s.mask is not None else torch.ones_like(self.env[i], dtype=torch.bool)
                for i, s in zip(inputs, states, strict=True)
            }
            bands = {s.band for s in states}
            band = bands.pop() if len(bands) == 1 else None
            return _State(mask=self._apply(n, parts), band=band)
        (source,), (state,) = inputs, states
        if state.mask is None:
            return state
        if info.kind == OpKind.SHAPE:
            return _State(mask=self._apply(n, {source: state.mask}), band=state.band)
        if info.kind == OpKind.DROPOUT:
            if not info.dropout_active:
                return state
            if info.inplace:  # the input was overwritten: carry its mask as it was
                return _State(mask=state.mask)
            x = self.env[source].detach()
            dropped = (value.detach() == 0) & (x != 0)
            return _State(mask=state.mask & ~dropped)
        if info.kind == OpKind.MAXPOOL:
            if state.band is None:
                return _conservative(f"{info.label} of a tensor whose mask is not set by its values")
            return _State(mask=state.band(value.detach()), band=state.band)
        # AVGPOOL: an output needs its gradient if any element of its window does.
        pooled = self._apply(n, {source: state.mask.to(value.dtype)})
        return _State(mask=pooled > 0)
