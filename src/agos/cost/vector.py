"""The non-convolution work of a training step on the vector unit (docs/cost-model.md §8):
BatchNorm, ReLU-like ops, pooling, elementwise adds, the loss and the SGD-momentum update, the same
for every design. Each op streams its operands from DRAM and back (no fusion: the simple,
conservative schedule), so its time is max(⌈flops / lanes⌉, ⌈bytes / DRAM bytes per cycle⌉).

The per-element costs below count forward and backward together, from the textbook algorithms:
- BatchNorm (training): forward reads x twice (statistics, then normalise) and writes y; backward
  reads x̂ and dY twice (the two channel reductions, then the per-element update) and writes dX.
- ReLU-like: forward reads x, writes y; backward reads dY and a 1-bit mask, writes dX.
- max-pool: forward reads x, writes y and a 1-byte index; backward reads dY and the index, writes dX.
- avg-pool: forward reads x, writes y; backward reads dY, writes dX (one multiply each way).
- add: forward reads both operands, writes the sum; backward passes dY on unchanged (no work).
- dropout: a multiply by the mask each way.
- cat, view, flatten and the like move no data through the unit (a layout change).
- anything else elementwise (SiLU, GELU, mul, …): reads its inputs, writes its output; backward
  reads dY and the inputs, writes dX; 2 + 3 operations per element.
- loss (softmax cross-entropy) on the logits: a max and exp pass, a normalise pass, a gradient.
- SGD with momentum and weight decay on fp32 master weights: reads w, g, v, writes w, v.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from agos.arch.schema import Arch

PARAM_BYTES = 4  # fp32 master weights, gradients and momentum


@dataclass(frozen=True)
class OpWork:
    """Per op: elements read and written (activations), extra bytes, adds and multiplies."""

    reads: int
    writes: int
    extra_bytes: float
    adds: int
    mults: int


def _classify(op: str, kind: str) -> str:
    name = op.lower()
    if "batchnorm" in name or "groupnorm" in name or "layernorm" in name:
        return "norm"
    if kind == "band" or name in ("relu", "relu6", "hardtanh", "threshold"):
        return "relu"
    if kind == "maxpool" or "maxpool" in name:
        return "maxpool"
    if kind == "avgpool" or "avgpool" in name:
        return "avgpool"
    if kind in ("shape", "cat") or name in ("flatten", "identity", "view", "reshape", "cat", "getitem"):
        return "layout"
    if kind == "dropout" or "dropout" in name:
        return "dropout"
    if name in ("add", "iadd", "add_", "sub", "isub"):
        return "add"
    return "elementwise"


def op_work(op: str, kind: str, out_numel: int, in_numel: int) -> OpWork:
    c = _classify(op, kind)
    o, i = out_numel, in_numel or out_numel
    if c == "norm":
        return OpWork(reads=2 * i + 3 * i, writes=o + i, extra_bytes=0, adds=7 * i, mults=7 * i)
    if c == "relu":
        return OpWork(reads=i + o, writes=o + i, extra_bytes=i / 8, adds=i + i, mults=0)
    if c == "maxpool":
        return OpWork(reads=i + o, writes=o + i, extra_bytes=2 * o, adds=i, mults=0)
    if c == "avgpool":
        return OpWork(reads=i + o, writes=o + i, extra_bytes=0, adds=i, mults=o + i)
    if c == "add":
        return OpWork(reads=i, writes=o, extra_bytes=0, adds=o, mults=0)
    if c == "dropout":
        return OpWork(reads=i + o, writes=o + i, extra_bytes=i / 8, adds=0, mults=i + o)
    if c == "layout":
        return OpWork(0, 0, 0, 0, 0)
    return OpWork(reads=i + o + i, writes=o + i, extra_bytes=0, adds=2 * o + 3 * o, mults=2 * o + 3 * o)


@dataclass
class VectorCost:
    """The step's non-convolution work on one organisation."""

    cycles: int = 0
    flops: int = 0
    adds: int = 0
    mults: int = 0
    dram_bytes: float = 0.0
    by_class: dict[str, int] = field(default_factory=dict)  # cycles per op class
    note: str | None = None  # what was left out, when anything was

    def energy_pj(self, energy, static_mw: float, clock_ghz: float) -> dict[str, float]:
        return {
            "vector": self.adds * energy.vector_add + self.mults * energy.vector_multiply,
            "vector_memory": self.dram_bytes
            * (energy.dram_per_byte + energy.buffer_write_per_byte + energy.buffer_read_per_byte),
            "vector_static": static_mw * self.cycles / clock_ghz,
        }


def vector_cost(manifest, arch: Arch) -> VectorCost:
    """From a trace manifest's record of non-convolution ops, its parameter count and logits."""
    o = arch.organisation
    lanes, per_cycle = o.vector.lanes, o.dram_bytes_per_cycle
    vb = o.precision.value_bytes
    out = VectorCost(note=getattr(manifest, "vector_note", None))
    ops = getattr(manifest, "vector_ops", None)
    if ops is None:
        out.note = (
            "this trace records no non-convolution work (captured by an older agos): iteration excludes it"
        )
        return out

    def add(cls: str, work: OpWork, value_bytes: float) -> None:
        nbytes = (work.reads + work.writes) * value_bytes + work.extra_bytes
        flops = work.adds + work.mults
        cycles = max(math.ceil(flops / lanes), math.ceil(nbytes / per_cycle))
        out.cycles += cycles
        out.flops += flops
        out.adds += work.adds
        out.mults += work.mults
        out.dram_bytes += nbytes
        out.by_class[cls] = out.by_class.get(cls, 0) + cycles

    for v in ops:
        add(_classify(v.op, v.kind), op_work(v.op, v.kind, v.out_numel, v.in_numel), vb)
    logits = manifest.logits_numel or 0
    add("loss", OpWork(reads=3 * logits, writes=logits, extra_bytes=0, adds=3 * logits, mults=2 * logits), 4)
    params = manifest.parameters or 0
    add(
        "sgd",
        OpWork(reads=3 * params, writes=2 * params, extra_bytes=0, adds=3 * params, mults=3 * params),
        PARAM_BYTES,
    )
    return out
