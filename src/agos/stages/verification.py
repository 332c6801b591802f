"""The verification record of a captured step (`verification.json` of a proof stage): the lossless
proof of its masks (`capture.verify.Soundness`) and, when asked, the sparse engine's run on part of
the batch judged against float64 autograd (`engine.check`). Typed and versioned; its schema is
shipped (`verification.schema.json`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from agos.capture.verify import Soundness
from agos.record import Record

FORMAT = "agos-verification"
VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("verification.schema.json")


class WorstParameter(Record):
    """The parameter whose sparse-engine gradient is furthest from the float64 reference
    (`engine.check.ParamComparison`)."""

    name: str
    scale: float  # S: max|g_float64|
    diff: float  # D: max|g_sparse − g_float64|
    noise: float  # N: max|g_float32 − g_float64|
    diff_float32: float


class StepCheck(Record):
    """One training step on the sparse engine, judged as `agos check` judges it
    (`engine.check.StepResult`)."""

    loss_sparse: float
    loss_autograd: float
    loss_float64: float
    worst: WorstParameter | None
    ratio: float  # D / allowed of the worst parameter (≤ 1 passes)
    max_rel_float32: float
    unresolved: int
    bwd_data_products: int
    bwd_data_dense: int
    bwd_weight_products: int
    bwd_weight_dense: int
    bwd_data_skipped: float
    bwd_weight_skipped: float
    problem: str | None  # why the step fails, or None


class EngineCheck(Record):
    images: int  # of the captured batch
    graph: str
    seconds: float
    step: StepCheck

    @property
    def passed(self) -> bool:
        return self.step.problem is None


class Verification(Record):
    format: Literal["agos-verification"] = FORMAT
    version: Literal[1] = VERSION
    soundness: Soundness | None  # None: the proof was not asked for
    engine: EngineCheck | None = None  # None: the sparse engine was not run
    notes: list[str] = Field(default_factory=list)  # what the capture left out, one line each

    @property
    def lossless(self) -> bool | None:
        """Whether skipping was shown lossless (None: not checked)."""
        if self.soundness is None:
            return None
        return self.soundness.bit_identical and (self.engine is None or self.engine.passed)
