"""The schema of an accelerator description. Every choice DESIGN.md §4 leaves open is a field here,
so a user can set the choices a published design made."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PASSES = ("fwd", "bwd_data", "bwd_weight")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PEArray(_Strict):
    rows: int = Field(32, ge=1, le=4096, description="PE rows: one work item (output position) each")
    cols: int = Field(32, ge=1, le=4096, description="PE columns: one output channel each")


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
    global_buffer_bytes: int = Field(2 * 2**20, ge=64, description="on-chip global buffer")
    buffer_bandwidth_bytes_per_cycle: int = Field(
        256, ge=1, description="global buffer read bandwidth; a stall is charged when exceeded"
    )
    dram_bandwidth_gbps: float = Field(256.0, gt=0, description="DRAM bandwidth in GB/s")
    double_buffering: bool = Field(True, description="transfers of a tile overlap compute of the previous")


class Storage(_Strict):
    """How each tensor is kept in DRAM and the buffer: dense, or nonzero values plus a bitmap."""

    activations: Literal["dense", "compressed"] = "dense"  # X, read in FWD and BWD-W
    gradients: Literal["dense", "compressed"] = "dense"  # dY, read in BWD-D and BWD-W
    weights: Literal["dense", "compressed"] = "dense"
    data_gradients: Literal["dense", "compressed"] = "dense"  # dX written by BWD-D


class PassSkipping(_Strict):
    """Which ineffectual work one pass skips (DESIGN.md §4 timing rules)."""

    stream: bool = Field(False, description="walk only nonzero entries of the row's shared stream")
    pe_operand: bool = Field(
        False, description="each PE also skips its own zero operand (two-sided; BWD-W only: dY)"
    )
    outputs: Literal["none", "static", "compacted"] = Field(
        "none", description="remove masked dX outputs before dispatch (BWD-D only)"
    )


class Skipping(_Strict):
    fwd: PassSkipping = PassSkipping()
    bwd_data: PassSkipping = PassSkipping()
    bwd_weight: PassSkipping = PassSkipping()
    lookahead: int = Field(
        0,
        ge=0,
        description="window of one-sided skipping; a row needs ≥ ⌈stream/lookahead⌉ cycles (0 = unbounded)",
    )
    zero_gating: bool = Field(False, description="gate MACs with a zero operand (saves energy, not time)")

    @model_validator(mode="after")
    def _supported(self) -> Skipping:
        for name in ("fwd", "bwd_weight"):
            if getattr(self, name).outputs != "none":
                raise ValueError(f"{name}.outputs: only BWD-D has outputs that can be skipped")
        for name in ("fwd", "bwd_data"):
            if getattr(self, name).pe_operand:
                raise ValueError(
                    f"{name}.pe_operand: the PE operand there is a weight; training weights are dense"
                )
        if self.bwd_weight.pe_operand and not self.bwd_weight.stream:
            raise ValueError("bwd_weight.pe_operand needs bwd_weight.stream (two-sided skipping)")
        return self

    def of(self, pass_: str) -> PassSkipping:
        return getattr(self, pass_)

    @property
    def skips_work(self) -> bool:
        """Whether anything is skipped in time (zero gating saves energy only)."""
        return any(
            p.stream or p.pe_operand or p.outputs != "none"
            for p in (self.fwd, self.bwd_data, self.bwd_weight)
        )

    def effective_policy(self, pass_: str) -> str:
        """The work-count policy (agos.engine.counts) whose MACs this skipping leaves to do."""
        opts = self.of(pass_)
        if pass_ == "bwd_weight":
            return "input+output" if opts.pe_operand else ("input" if opts.stream else "dense")
        if opts.stream and opts.outputs != "none":
            return "input+output"
        return "input" if opts.stream else ("output" if opts.outputs != "none" else "dense")


class Scheduling(_Strict):
    """How work items (one position × one tile of up to `cols` channels) reach the PE rows."""

    sync_rows: int = Field(
        32,
        ge=1,
        description="rows that start a work group together and wait for its longest item "
        "(default: all rows, one lockstep unit)",
    )
    dispatch: Literal["static", "dynamic"] = Field(
        "static", description="static: groups dealt round-robin; dynamic: to the unit that frees first"
    )
    queue_depth: int = Field(
        1, ge=1, description="dynamic: work groups a unit may hold (incl. the running one)"
    )
    tile_barrier: bool = Field(True, description="all rows finish a buffer tile before the next starts")
    fill_drain_cycles: int = Field(0, ge=0, description="pipeline fill + drain per work group")
    item_overhead_cycles: int = Field(0, ge=0, description="fixed cycles added to every work item")


class Arch(_Strict):
    name: str
    description: str = ""
    ideal: bool = Field(
        False, description="the bound: effective MACs / PEs per pass, no memory, no imbalance"
    )
    pe_array: PEArray = PEArray()
    precision: Precision = Precision()
    clock_ghz: float = Field(1.0, gt=0)
    memory: Memory = Memory()
    storage: Storage = Storage()
    skipping: Skipping = Skipping()
    scheduling: Scheduling = Scheduling()
    energy: str | dict = Field("horowitz45", description="energy table: a shipped name, a file, or inline")

    @model_validator(mode="before")
    @classmethod
    def _default_sync_rows(cls, data):
        """Without a `scheduling.sync_rows`, the whole array is one lockstep unit."""
        if isinstance(data, dict):
            sched = data.get("scheduling")
            if sched is None or (isinstance(sched, dict) and "sync_rows" not in sched):
                pe = data.get("pe_array")
                rows = pe.get("rows", 32) if isinstance(pe, dict) else 32
                data = {**data, "scheduling": {**(sched or {}), "sync_rows": rows}}
        return data

    @model_validator(mode="after")
    def _rows_divide(self) -> Arch:
        if self.pe_array.rows % self.scheduling.sync_rows:
            raise ValueError(
                f"scheduling.sync_rows ({self.scheduling.sync_rows}) must divide pe_array.rows "
                f"({self.pe_array.rows})"
            )
        return self

    def without_skipping(self) -> Arch:
        """The same machine with every skip, gate and compression switched off: its sparsity-agnostic
        twin, against which the design's own sparsity gain is measured."""
        return self.model_copy(
            update={
                "name": f"{self.name} without skipping",
                "skipping": Skipping(lookahead=self.skipping.lookahead),
                "storage": Storage(),
            }
        )

    @property
    def pes(self) -> int:
        return self.pe_array.rows * self.pe_array.cols

    @property
    def units(self) -> int:
        """Independent scheduling units: groups of `sync_rows` rows."""
        return self.pe_array.rows // self.scheduling.sync_rows

    @property
    def dram_bytes_per_cycle(self) -> float:
        return self.memory.dram_bandwidth_gbps / self.clock_ghz
