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
    xnor2: CellUm2
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


def _log2(n: int) -> int:
    return math.ceil(math.log2(max(2, n)))


def _compresses(arch: Arch) -> bool:
    st = arch.storage
    return "compressed" in (st.activations, st.gradients)


def _compaction(arch: Arch, t: AreaTable) -> dict[str, float]:
    """µm² of compacted output skipping (docs/cost-model.md §9), by how the slots' channels reach
    the PEs (`lanes`) and how many operands a lane or store serves per cycle (`lane_ports`)."""
    o, s = arch.organisation, arch.skipping
    rows, cols = o.pe_array.rows, o.pe_array.cols
    vbits = 8 * o.precision.value_bytes
    ports = s.lane_ports or 1
    domain = max(cols, s.compaction_domain // cols * cols)  # the widest domain: whole column tiles
    out = {"compaction prefix sums": rows * cols * _log2(cols) * t.full_adder}
    if s.lanes == "full" and o.sync == "lockstep":
        # a Benes network per row from the domain's lanes to the PEs: 2·log₂N − 1 stages of N/2
        # 2×2 switches (two muxes per bit), a configuration bit per switch (double-buffered) and
        # a routing unit (N·log₂N adders) to set them
        n = 2 ** _log2(domain)
        switches = (2 * _log2(n) - 1) * n // 2
        per_switch = 2 * _mux(2, vbits, t) + 2 * t.register_bit
        out["compaction Benes networks"] = ports * rows * switches * per_switch
        # (q-ported lanes: q networks)
        out["compaction Benes routing"] = rows * n * _log2(n) * t.full_adder
    elif s.lanes != "full":
        # per row a C×C crossbar (C·q inputs with q-ported lanes or stores), each lane's pick of
        # its ⌈w/C⌉ channels, ranks over the whole domain and each slot matching the lanes'
        # destination ranks (synthesised in docs/rtl.md)
        per_lane = -(-domain // cols)
        out["compaction crossbars"] = rows * cols * _mux(cols * ports, vbits, t)
        out["compaction lane picks"] = rows * (
            cols * _mux(per_lane, vbits, t) + cols * cols * _log2(cols) * t.xnor2
        )
        out["compaction prefix sums"] = rows * domain * _log2(cols) * t.full_adder
        if s.bwd_data.stream and o.sync == "lockstep":
            # the slot's channel changes per item: every lane stages ⌈w/C⌉ channels' windows
            window = s.window if s.window is not None else cols
            out["compaction staged windows"] = rows * (
                (domain - cols) * window * vbits * (t.register_bit + t.mux2_bit)
                + cols * (_mux(per_lane * window, vbits, t) - _mux(window, vbits, t))
            )
    if s.lanes == "matched":  # per row: a counter per lane deals each needed channel to its slot
        out["compaction slot counters"] = rows * cols * _log2(-(-domain // cols) + 1) * t.full_adder
    return out


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
        ports = 1
        if s.bwd_data.outputs == "compacted" and s.lanes == "modulo" and not arch.ideal:
            ports = s.lane_ports or 1  # a store with q read ports is priced as q single-ported copies
        sram_bytes["pe operand stores"] = (2 * o.pe_store_entries * o.precision.value_bytes, pes * ports)
    window = s.window
    depth = window if window is not None else cols  # an unbounded window: priced as C entries
    entry = t.register_bit + t.mux2_bit  # a staged bit with its load enable (docs/rtl.md)
    if s.any_stream and not arch.ideal:
        # per row: the window's values and bits with enables, two encoders, the front's position
        # compare and advance (synthesised in docs/rtl.md: within 25 % of the RTL row)
        logic["stream-skip scanners"] = rows * (
            depth * (vbits + 1) * entry + 2 * _encoder(depth, t) + (depth + 1) * 16 * t.full_adder
        )
        if o.sync == "lockstep":  # the L staged column operands each PE picks from, with enables
            logic["stream-skip operand windows"] = pes * (depth * vbits * entry + _mux(depth, vbits, t))
    if s.bwd_weight.pe_operand and not arch.ideal:
        bw = s.broadcast_width
        if bw == 1:  # an L-bit window of the PE's own bits (docs/rtl.md)
            logic["two-sided joins"] = pes * (depth * entry + _mux(depth, 1, t) + t.and2)
        else:
            logic["two-sided joins"] = pes * (bw * t.register_bit + _encoder(bw, t) + _mux(bw, vbits, t))
            logic["wide broadcast"] = rows * (bw - 1) * vbits * t.register_bit * cols
    if s.bwd_data.outputs == "compacted" and not arch.ideal:
        logic.update(_compaction(arch, t))
    if s.bwd_data.outputs == "static" and not arch.ideal:
        logic["static output masks"] = rows * cols * (t.and2 + entry)  # the slot mask register
    if s.zero_gating and not arch.ideal:
        logic["zero gates"] = pes * (2 * vbits * t.and2 + t.clock_gate)
    if s.bypass == "rule" and (s.skips_work or _compresses(arch)) and not arch.ideal:
        # docs/cost-model.md §11: a 64-bit popcount tree, a 32-bit counter per mask (X, dY, needed
        # dX), a 32-bit comparator per feature and per layer a mode bit per feature and pass
        logic["bypass rule"] = (63 + 3 * 32 + 4 * 32) * t.full_adder + (3 * 32 + 64 * 12) * t.register_bit
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
