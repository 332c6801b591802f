"""Area and leakage of a design from one cited component table (arch/area/area45.yaml): the PE
array, the global buffer and vector unit every design has, and the hardware each skipping feature
and organisation adds (docs/cost-model.md §9)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agos.arch.schema import Arch

UM2_PER_MM2 = 1e6
# The largest figure a table may give: a cell of 1e9 µm² (1000 mm²), an SRAM of 2^40 bytes and
# 1e6 mm², 1e9 mW of leakage — anything larger is a unit slip, and totals near 1e308 overflow.
CellUm2 = Annotated[float, Field(gt=0, le=1e9)]


class AreaTable(BaseModel):
    """µm² per cell (finite, > 0, at most 1e9) and SRAM area and leakage by size."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    name: str
    node_nm: int = Field(gt=0, le=1000)
    mac: dict[str, CellUm2]
    fp32_add: CellUm2
    fp32_multiply: CellUm2
    register_bit: CellUm2
    mux2_bit: CellUm2
    and2: CellUm2
    full_adder: CellUm2
    clock_gate: CellUm2
    logic_leakage_mw_per_mm2: float = Field(ge=0, le=1e6)
    sram: dict[int, tuple[float, float]] = Field(description="bytes → (mm², leakage mW)")

    @field_validator("sram", mode="before")
    @classmethod
    def _pairs(cls, v):
        """YAML writes each pair as a list."""
        return {k: tuple(p) if isinstance(p, list) else p for k, p in v.items()} if isinstance(v, dict) else v

    @field_validator("sram")
    @classmethod
    def _sram(cls, v: dict[int, tuple[float, float]]) -> dict[int, tuple[float, float]]:
        if not v:
            raise ValueError("needs at least one SRAM size")
        for size, (mm2, mw) in v.items():
            if not 0 < size <= 2**40 or not 0 < mm2 <= 1e6 or not 0 <= mw <= 1e9:
                raise ValueError(
                    f"{size}: sizes (1 to 2^40 bytes), areas (> 0, ≤ 1e6 mm²) and leakage (0 to 1e9 mW) "
                    "must be in range"
                )
        return dict(sorted(v.items()))

    def mac_um2(self, multiply: str, accumulate: str) -> float:
        key = f"{multiply}_{accumulate}"
        if key not in self.mac:
            raise KeyError(key)
        return self.mac[key]

    def sram_of(self, nbytes: float) -> tuple[float, float]:
        """(mm², leakage mW) of one SRAM array: linear between the table's sizes, and scaled by
        bytes below the smallest and above the largest."""
        sizes = list(self.sram)
        if nbytes <= 0:
            return 0.0, 0.0
        if nbytes <= sizes[0]:
            mm2, mw = self.sram[sizes[0]]
            return mm2 * nbytes / sizes[0], mw * nbytes / sizes[0]
        if nbytes >= sizes[-1]:
            mm2, mw = self.sram[sizes[-1]]
            return mm2 * nbytes / sizes[-1], mw * nbytes / sizes[-1]
        hi = next(i for i, s in enumerate(sizes) if s >= nbytes)
        lo_s, hi_s = sizes[hi - 1], sizes[hi]
        f = (nbytes - lo_s) / (hi_s - lo_s)
        (a0, l0), (a1, l1) = self.sram[lo_s], self.sram[hi_s]
        return a0 + f * (a1 - a0), l0 + f * (l1 - l0)


@dataclass(frozen=True)
class AreaReport:
    """mm² by component, and the static power they leak."""

    components: dict[str, float]
    logic_mm2: float
    sram_mm2: float
    static_mw: float
    row_length_mm: float  # the span of one PE row: what a broadcast or crossbar wire crosses

    @property
    def total_mm2(self) -> float:
        return self.logic_mm2 + self.sram_mm2


def _mux(inputs: int, bits: int, t: AreaTable) -> float:
    return max(0, inputs - 1) * bits * t.mux2_bit


def _encoder(bits: int, t: AreaTable) -> float:
    """A priority encoder / bitmap scanner over `bits` bits: an AND and a MUX2 per bit per level."""
    levels = max(1, math.ceil(math.log2(max(2, bits))))
    return bits * (t.and2 + levels * t.mux2_bit)


def design_area(arch: Arch, t: AreaTable) -> AreaReport:
    """µm² of every component, converted to mm²; SRAM separately for its own leakage."""
    o, s = arch.organisation, arch.skipping
    rows, cols = o.pe_array.rows, o.pe_array.cols
    pes = rows * cols
    vbits, abits = 8 * o.precision.value_bytes, 8 * o.precision.accumulate_bytes
    mac = t.mac_um2(o.precision.multiply, o.precision.accumulate)
    pe = mac + (abits + 2 * vbits) * t.register_bit  # accumulator and two operand registers
    logic: dict[str, float] = {
        "pe array": pes * pe,
        "vector unit": o.vector.lanes * (t.fp32_add + t.fp32_multiply + 3 * 32 * t.register_bit),
    }
    sram_bytes: dict[str, tuple[float, int]] = {"global buffer": (o.memory.global_buffer_bytes, 1)}
    if o.sync == "independent":
        sram_bytes["pe operand stores"] = (2 * o.pe_store_entries * o.precision.value_bytes, pes)
    window = s.window
    if s.any_stream and not arch.ideal:
        depth = window if window is not None else cols  # an unbounded window: priced as C entries
        logic["stream-skip scanners"] = rows * (_encoder(depth, t) + depth * vbits * t.register_bit)
        if o.sync == "lockstep":  # the window of column operands each PE picks from
            logic["stream-skip operand windows"] = pes * (
                (depth - 1) * vbits * t.register_bit + _mux(depth, vbits, t)
            )
    if s.bwd_weight.pe_operand and not arch.ideal:
        bw = s.broadcast_width
        logic["two-sided joins"] = pes * (bw * t.register_bit + _encoder(bw, t) + _mux(bw, vbits, t))
        if bw > 1:
            logic["wide broadcast"] = rows * (bw - 1) * vbits * t.register_bit * cols
    if s.bwd_data.outputs == "compacted" and not arch.ideal:
        logic["compaction crossbars"] = rows * cols * _mux(cols, vbits, t)
        logic["compaction prefix sums"] = rows * cols * math.ceil(math.log2(max(2, cols))) * t.full_adder
    if s.bwd_data.outputs == "static" and not arch.ideal:
        logic["static output masks"] = rows * cols * t.and2
    if s.zero_gating and not arch.ideal:
        logic["zero gates"] = pes * (2 * vbits * t.and2 + t.clock_gate)
    components = {k: v / UM2_PER_MM2 for k, v in logic.items()}
    sram_mm2, sram_mw = 0.0, 0.0
    for name, (nbytes, count) in sram_bytes.items():
        mm2, mw = t.sram_of(nbytes)
        components[name] = mm2 * count
        sram_mm2 += mm2 * count
        sram_mw += mw * count
    logic_mm2 = sum(v / UM2_PER_MM2 for v in logic.values())
    row_length = cols * math.sqrt(pe / UM2_PER_MM2)
    return AreaReport(
        components=components,
        logic_mm2=logic_mm2,
        sram_mm2=sram_mm2,
        static_mw=logic_mm2 * t.logic_leakage_mw_per_mm2 + sram_mw,
        row_length_mm=row_length,
    )
