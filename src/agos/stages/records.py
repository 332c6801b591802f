"""`trajectory.json`, typed: the settings of an `agos trajectory` run (one `RunOptions` embedded) and
one point per checkpoint, read from its stages' `Analysis` and `Verification` by `of()`. It lives
with the stages, below both commands, so that `agos reproduce` shows a finished trajectory without
importing `agos.trajectory`. Its schema is shipped (`trajectory.schema.json`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from agos.analysis.base import NonNegative, Ratio
from agos.analysis.bounds import SpanSpeedups
from agos.analysis.model import Analysis
from agos.analysis.realised import Realised
from agos.analysis.simulation import SpanRatios
from agos.errors import AgosError
from agos.inputs.options import TRAJECTORY_DESIGNS, RunOptions
from agos.record import Record, read_record

FORMAT = "agos-trajectory"
VERSION = 2  # 2: typed; settings embed the run options
SCHEMA_FILE = Path(__file__).with_name("trajectory.schema.json")
POINT_SECTIONS = ("realised", "bounds", "simulation")  # what a point shows


class TrajectorySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run: RunOptions = RunOptions.for_command("trajectory")  # warm_up: the SGD of agos's own training
    archs: str = TRAJECTORY_DESIGNS
    checkpoints: str | None = None  # a list or glob of the user's files
    train_steps: int = 0  # …or train this many steps here, with a snapshot every `every`
    every: int = 0
    check: bool = True  # prove every point lossless (a masked step, bit-identical gradients)

    @property
    def capture_batch(self) -> int:
        """The first batch no snapshot was trained on; batch 0 for the user's own checkpoints."""
        return self.train_steps if self.checkpoints is None else 0

    def options(self, weights: str | None = None) -> RunOptions:
        """The run options of one point (its weights), without warm-up: the SGD is the training's."""
        warm = self.run.warm_up.model_copy(update={"steps": 0})
        return self.run.model_copy(update={"weights": weights or self.run.weights, "warm_up": warm})


class PointDesign(Record):
    """A skipping design at one point (a subset of `analysis.simulation.DesignFigures`)."""

    twin: str | None
    speedup_over_twin: SpanRatios | None
    mac_bound_speedup: SpanRatios | None
    energy_vs_twin: Ratio
    speedup_over_best_dense_equal_area: Ratio


class TrajectoryPoint(Record):
    step: int
    step_source: str  # the checkpoint's own key, "file name", "order" or "snapshot"
    checkpoint: str
    sha256: str
    loss: NonNegative
    sparsity: Realised  # fractions in [0, 1]: a doctored file is refused when read
    mac_bounds: dict[str, SpanSpeedups]
    designs: dict[str, PointDesign]  # the skipping designs (dense twins are their reference)
    lossless: bool | None  # None: not checked
    notes: list[str]
    trace: str
    label: str
    compute_seconds: NonNegative

    @classmethod
    def of(
        cls, checkpoint, analysis: Analysis, lossless: bool | None, loss: float, trace: Path, seconds: float
    ) -> TrajectoryPoint:
        """`checkpoint`: a `trajectory.checkpoints.Checkpoint`."""
        sim = analysis.simulation
        return cls(
            step=checkpoint.step,
            step_source=checkpoint.step_source,
            checkpoint=str(checkpoint.path),
            sha256=checkpoint.sha256,
            loss=loss,
            sparsity=analysis.realised,
            mac_bounds=analysis.bounds.speedups,
            designs={
                name: PointDesign.model_validate(sim.designs[name], from_attributes=True)
                for name in sim.requested
                if sim.designs[name].preset != "dense"
            },
            lossless=lossless,
            notes=analysis.capture_notes,
            trace=str(trace),
            label=analysis.label,
            compute_seconds=seconds,
        )


class TrajectoryRecord(Record):
    format: Literal["agos-trajectory"] = FORMAT
    version: Literal[2] = VERSION
    agos_version: str
    created: str
    settings: TrajectorySettings
    capture_batch: int
    source: str  # "checkpoints" or "snapshots of agos's own training"
    wall_seconds: float
    compute_seconds: float
    points: list[TrajectoryPoint]
    plot: str | None = None  # where the trajectory's plot is (set when a finished folder is read)


def read_trajectory(folder: Path | str) -> TrajectoryRecord:
    """A finished trajectory folder (for the reproduce report); one line if it is not one."""
    path = Path(folder) / "trajectory.json"
    if not path.is_file():
        raise AgosError(f"--trajectory {folder}: no trajectory.json there (made by agos trajectory --out)")
    try:
        record = read_record(TrajectoryRecord, path)
    except AgosError as exc:
        raise AgosError(f"--trajectory {folder}: {exc}") from None
    if not record.points:
        raise AgosError(f"--trajectory {folder}: the trajectory has no points")
    return record.model_copy(update={"plot": str(Path(folder) / "trajectory.png")})
