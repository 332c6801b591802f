"""Layers with MACs that agos does not model (Conv1d/3d, transposed convolutions, recurrent and
attention layers): found during the captured step, sized, and reported — never dropped silently."""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from agos.capture.graph import LAYER_TYPES
from agos.workload.layer import CallNames

_CONVS = (nn.Conv1d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_RECURRENT = {nn.RNN: 1, nn.GRU: 3, nn.LSTM: 4}
KINDS = (*_CONVS, *_TRANSPOSED, *_RECURRENT, nn.MultiheadAttention, nn.Bilinear)


@dataclass(frozen=True)
class UnmodelledLayer:
    name: str
    kind: str
    macs: int  # of one forward call (its two backward passes cost about twice that again)


def _first_tensor(value) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, tuple | list):
        return next((t for t in map(_first_tensor, value) if t is not None), None)
    return None


def forward_macs(module: nn.Module, inputs, output) -> int:
    """Multiply-accumulates of one forward call, from the shapes it saw."""
    x, y = _first_tensor(inputs), _first_tensor(output)
    if x is None or y is None:
        return 0
    if isinstance(module, _CONVS):
        per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        return y.numel() * per_output
    if isinstance(module, _TRANSPOSED):
        per_input = module.out_channels // module.groups * math.prod(module.kernel_size)
        return x.numel() * per_input
    for kind, gates in _RECURRENT.items():
        if isinstance(module, kind):
            steps = x.numel() // x.shape[-1]  # sequence × batch (or sequence, unbatched)
            directions = 2 if module.bidirectional else 1
            h, first = module.hidden_size, module.input_size
            later = h * directions
            widths = [first] + [later] * (module.num_layers - 1)
            per_step = sum(gates * h * (width + h) for width in widths)
            return steps * directions * per_step
    if isinstance(module, nn.MultiheadAttention):
        q = x
        tokens = q.numel() // q.shape[-1]
        e = module.embed_dim
        length = q.shape[0] if not module.batch_first else q.shape[-2]
        return tokens * (4 * e * e + 2 * length * e)  # projections + QK^T and AV
    if isinstance(module, nn.Bilinear):
        return y.numel() * module.in1_features * module.in2_features
    return 0


@contextlib.contextmanager
def watching_unmodelled(model: nn.Module, found: list[UnmodelledLayer]) -> Iterator[None]:
    """Within the block, every call of an unmodelled layer kind is appended to `found`."""
    names = {m: n for n, m in model.named_modules()}
    calls = CallNames()

    def hook(module, inputs, output):
        base = names[module]
        name = calls(base)
        found.append(UnmodelledLayer(name, type(module).__name__, forward_macs(module, inputs, output)))

    watched = [m for m in model.modules() if isinstance(m, KINDS) and not isinstance(m, LAYER_TYPES)]
    handles = [m.register_forward_hook(hook) for m in watched]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def unmodelled_note(found: list[UnmodelledLayer], modelled_macs: int) -> str | None:
    """One line naming the unmodelled layers and their share of the step's MACs, or None."""
    if not found:
        return None
    kinds = Counter(layer.kind for layer in found)
    left = sum(layer.macs for layer in found)
    share = left / (left + modelled_macs) if left + modelled_macs else 0.0
    listed = ", ".join(f"{k} ×{n}" if n > 1 else k for k, n in sorted(kinds.items()))
    names = ", ".join(layer.name for layer in found[:4])
    names += f" and {len(found) - 4} more" if len(found) > 4 else ""
    return (
        f"{len(found)} layer call(s) of kinds agos does not model ({listed}: {names}) hold "
        f"{100 * share:.1f}% of the step's MACs and are left out of every count, bound and simulation"
    )
