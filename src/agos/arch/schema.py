"""The schema of an accelerator description (docs/cost-model.md §1).

A design is skipping features placed on an organisation. The organisation — array, row
synchronisation, dispatch, fill/drain, operand stores, memory, vector unit — is shared by every
design placed on it, so no design gets hardware the others lack; what a feature needs is derived
from the features and charged (docs/cost-model.md §9).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agos.workload.passes import MAPPINGS, mapping

# The default lookahead window of every stream-skipping design (docs/cost-model.md §1): TensorDash
# (Mahmoud et al., MICRO 2020) stages each operand stream three deep — the current entry and two of
# lookahead — so a row advances at most 3 entries per cycle. See arch/presets/README.md.
DEFAULT_LOOKAHEAD = 3


class _Strict(BaseModel):
    """Unknown fields refused, and no coercion: YAML `true` is not 1 PE row, "32" is not 32."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


class PEArray(_Strict):
    rows: int = Field(32, ge=1, le=4096, description="PE rows: one work item (a position) each")
    cols: int = Field(32, ge=1, le=4096, description="PE columns: one channel each")


class Precision(_Strict):
    multiply: Literal["fp32", "bf16", "fp16", "int8"] = "bf16"
    accumulate: Literal["fp32", "bf16", "fp16", "int32"] = "fp32"

    @property
    def value_bytes(self) -> int:
        return {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}[self.multiply]

    @property
    def accumulate_bytes(self) -> int:
        return {"fp32": 4, "bf16": 2, "fp16": 2, "int32": 4}[self.accumulate]


class Memory(_Strict):
    global_buffer_bytes: int = Field(2 * 2**20, ge=64, le=2**40, description="on-chip global buffer")
    buffer_banks: int = Field(32, ge=1, le=65536, description="independently addressed buffer banks")
    bank_width_bytes: int = Field(8, ge=1, le=4096, description="bytes a bank reads or writes per cycle")
    dram_gbps: float = Field(256.0, ge=0.01, le=1e6, description="DRAM bandwidth, GB/s (10 MB/s to 1 PB/s)")
    double_buffering: bool = Field(True, description="a tile's transfers overlap the previous tile's compute")

    @property
    def bandwidth_bytes_per_cycle(self) -> int:
        return self.buffer_banks * self.bank_width_bytes


class VectorUnit(_Strict):
    """Runs the step's non-convolution work (BN, ReLU, pooling, adds, loss, SGD), alike for all."""

    lanes: int = Field(32, ge=1, le=65536, description="fp32 lanes, one operation each per cycle")


class Organisation(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    pe_array: PEArray = PEArray()
    precision: Precision = Precision()
    clock_ghz: float = Field(1.0, ge=0.01, le=100, description="clock, GHz (10 MHz to 100 GHz)")
    memory: Memory = Memory()
    vector: VectorUnit = VectorUnit()
    sync: Literal["lockstep", "independent"] = Field(
        description="lockstep: R rows advance together (systolic); independent: each row runs its own items"
    )
    dispatch: Literal["static", "greedy"] = Field(
        "greedy", description="independent rows: item i to row i mod R, or to the row that frees first"
    )
    fill_drain: Literal["per_fold", "overlapped"] = Field(
        "per_fold", description="lockstep: fill/drain per fold (SCALE-Sim) or once per buffer tile"
    )
    fill_drain_cycles: int | None = Field(
        None, ge=0, le=1_000_000, description="default: R + C − 2 (lockstep), C (independent)"
    )
    pe_store_entries: int = Field(
        128, ge=1, le=1 << 24, description="independent rows: operand entries per PE store (double-buffered)"
    )

    @property
    def fd(self) -> int:
        if self.fill_drain_cycles is not None:
            return self.fill_drain_cycles
        r, c = self.pe_array.rows, self.pe_array.cols
        return r + c - 2 if self.sync == "lockstep" else c

    @property
    def pes(self) -> int:
        return self.pe_array.rows * self.pe_array.cols

    @property
    def dram_bytes_per_cycle(self) -> float:
        return self.memory.dram_gbps / self.clock_ghz


class PassSkipping(_Strict):
    stream: bool = Field(False, description="walk only the nonzero entries of the row's shared stream")
    pe_operand: bool = Field(False, description="two-sided (BWD-W): each PE also skips its own zero dY")
    outputs: Literal["none", "static", "compacted"] = Field(
        "none", description="remove masked dX outputs before dispatch (BWD-D only)"
    )


class Skipping(_Strict):
    fwd: PassSkipping = PassSkipping()
    bwd_data: PassSkipping = PassSkipping()
    bwd_weight: PassSkipping = PassSkipping()
    lookahead: int | Literal["inf"] = Field(
        DEFAULT_LOOKAHEAD, description="stream-skip window: a row needs ≥ ⌈stream / L⌉ cycles ('inf': none)"
    )
    broadcast_width: int = Field(
        1, ge=1, le=64, description="stream entries a row broadcasts per cycle (bounds two-sided joins)"
    )
    zero_gating: bool = Field(False, description="gate MACs with a zero operand (saves energy, not time)")
    compaction_domain: int = Field(
        64,
        ge=1,
        le=1 << 20,
        description="compacted outputs: channels one domain may span (whole column tiles, at least one)",
    )
    lanes: Literal["modulo", "matched", "full"] = Field(
        "modulo",
        description=(
            "compacted outputs: how a slot's channels reach the PEs — modulo: channel c on lane (systolic) "
            "or store (rows) c mod C, two channels of a slot on one lane serialise; matched: lanes as "
            "modulo, slots formed with at most one channel per lane (store); full: a lane per domain "
            "channel through a Benes network (systolic), every store holding the whole domain (rows)"
        ),
    )
    lane_ports: int | None = Field(
        None,
        ge=1,
        le=64,
        description=(
            "compacted outputs: operands a lane (systolic) or a PE store (rows) serves per cycle "
            "(priced as that many crossbars or store copies); default 1 (a stream window does not widen it)"
        ),
    )
    bypass: Literal["rule", "never"] = Field(
        "rule",
        description=(
            "rule: each skipping feature and compressed format is switched on per layer and pass only "
            "when the popcounts known before the pass predict a gain (docs/cost-model.md §11); "
            "never: every feature always on"
        ),
    )
    bypass_margin: float = Field(
        0.02, ge=0, lt=1, description="the predicted gain a feature must show to be switched on"
    )

    @field_validator("lookahead")
    @classmethod
    def _window(cls, v):
        if isinstance(v, int) and not 1 <= v <= 1 << 20:
            raise ValueError("lookahead must be an integer ≥ 1 or 'inf'")
        return v

    @model_validator(mode="after")
    def _supported(self) -> Skipping:
        for name, m in MAPPINGS.items():
            if not m.output_skip and getattr(self, name).outputs != "none":
                raise ValueError(f"{name}.outputs: only BWD-D has outputs that can be skipped")
        for name, m in MAPPINGS.items():
            if not m.two_sided and getattr(self, name).pe_operand:
                raise ValueError(
                    f"{name}.pe_operand: the PE operand there is a weight; training weights are dense"
                )
        if self.bwd_weight.pe_operand and not self.bwd_weight.stream:
            raise ValueError("bwd_weight.pe_operand needs bwd_weight.stream (two-sided skipping)")
        return self

    def of(self, pass_: str) -> PassSkipping:
        return getattr(self, pass_)

    @property
    def window(self) -> int | None:
        """The lookahead L, or None when unbounded."""
        return None if self.lookahead == "inf" else int(self.lookahead)

    @property
    def skips_work(self) -> bool:
        return any(
            p.stream or p.pe_operand or p.outputs != "none"
            for p in (self.fwd, self.bwd_data, self.bwd_weight)
        )

    @property
    def any_stream(self) -> bool:
        return any(p.stream for p in (self.fwd, self.bwd_data, self.bwd_weight))

    def effective_policy(self, pass_: str) -> str:
        """The work-count policy (agos.workload.counts) whose MACs this skipping leaves to do."""
        opts = self.of(pass_)
        if mapping(pass_).two_sided:
            return "input+output" if opts.pe_operand else ("input" if opts.stream else "dense")
        if opts.stream and opts.outputs != "none":
            return "input+output"
        return "input" if opts.stream else ("output" if opts.outputs != "none" else "dense")


class Storage(_Strict):
    """How each tensor is kept in DRAM and the buffer: dense, or nonzero values plus a bitmap."""

    activations: Literal["dense", "compressed"] = "dense"  # X, read in FWD and BWD-W
    gradients: Literal["dense", "compressed"] = "dense"  # dY, read in BWD-D and BWD-W
    data_gradients: Literal["dense", "compressed"] = "dense"  # dX written by BWD-D


class Arch(_Strict):
    """One design: features on an organisation."""

    name: str = Field(min_length=1)
    description: str = ""
    preset: str | None = Field(None, description="the feature preset it came from, if any")
    ideal: bool = Field(False, description="the bound: the mapping bound per pass, no memory")
    organisation: Organisation
    skipping: Skipping = Skipping()
    storage: Storage = Storage()
    energy: str | dict = Field("horowitz45", description="energy table: a shipped name, a file, or inline")
    area: str | dict = Field("area45", description="area table: a shipped name, a file, or inline")

    @model_validator(mode="after")
    def _finite(self) -> Arch:
        o = self.organisation
        if not math.isfinite(o.dram_bytes_per_cycle) or o.dram_bytes_per_cycle <= 0:
            raise ValueError("organisation: DRAM bytes per cycle must be finite and positive")
        return self

    # convenient views
    @property
    def pe_array(self) -> PEArray:
        return self.organisation.pe_array

    @property
    def precision(self) -> Precision:
        return self.organisation.precision

    @property
    def memory(self) -> Memory:
        return self.organisation.memory

    @property
    def pes(self) -> int:
        return self.organisation.pes

    @property
    def clock_ghz(self) -> float:
        return self.organisation.clock_ghz

    @property
    def lockstep(self) -> bool:
        return self.organisation.sync == "lockstep"

    def twin(self) -> Arch:
        """The dense twin: the same organisation, every skip, gate and compression off."""
        return Arch(
            name=f"dense@{self.organisation.name}",
            description=f"the dense twin of {self.name}: {self.organisation.name}, skipping off",
            preset="dense",
            organisation=self.organisation,
            energy=self.energy,
            area=self.area,
        )

    @property
    def is_dense(self) -> bool:
        return not self.ideal and not self.skipping.skips_work and not self.skipping.zero_gating
