"""How much work a simulation is, counted before it runs: the PE-array folds of every design the
run simulates (the requested ones, their dense twins and equal-area candidates) over every layer
and pass — ⌈positions / rows⌉ · ⌈channels / columns⌉ each. The cost model's time grows with them
(about 1 µs a fold on one core, docs/limits.md), so a run that would take hours is refused in one
line naming the flag that lifts the limit, and one that takes minutes says so before it starts."""

from __future__ import annotations

import math
from dataclasses import dataclass

from agos.errors import AgosError
from agos.workload.passes import PASSES, mapping

MAX_FOLDS = 1_000_000_000  # about 17 minutes at SECONDS_PER_FOLD; `--max-folds` lifts it
SECONDS_PER_FOLD = 1e-6  # measured: resnet18 trace on 1×1 … 4×4 arrays, 0.8–2.3 µs (docs/limits.md)
ANNOUNCE_SECONDS = 30.0  # an estimate above this is printed before the work starts


@dataclass(frozen=True)
class Work:
    folds: int
    designs: int
    layers: int

    @property
    def seconds(self) -> float:
        return self.folds * SECONDS_PER_FOLD

    def text(self) -> str:
        return (
            f"{self.folds:,} PE-array folds ({self.designs} designs incl. twins and equal-area candidates "
            f"× {self.layers} layers × 3 passes), about {duration(self.seconds)}"
        )


def duration(seconds: float) -> str:
    """Seconds as a reader says them: 45 s, 12 min, 3.5 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def simulation_work(trace, designs) -> Work:
    """The folds of simulating `designs` (LoadedArch) on every layer of `trace`."""
    from agos.cost.network import plan_designs

    planned, _ = plan_designs(designs)
    folds = 0
    for d in planned:
        rows, cols = d.arch.pe_array.rows, d.arch.pe_array.cols
        for layer in trace.layers:
            for p in PASSES:
                m = mapping(p)
                folds += math.ceil(m.positions(layer.geometry) / rows) * math.ceil(
                    m.channels(layer.geometry) / cols
                )
    return Work(folds, len(planned), len(trace.layers))


def check_work(work: Work, max_folds: int, flag: str = "--max-folds") -> str | None:
    """Refuse work above the limit (one line, with the flag that lifts it); the line to print first
    when it is long but allowed; None when it is quick."""
    if work.folds > max_folds:
        raise AgosError(
            f"this simulation is {work.text()}: above the limit of {max_folds:,} folds; use larger "
            f"arrays, fewer designs or a smaller trace, or raise the limit with {flag} {work.folds}"
        )
    return f"simulate: {work.text()}" if work.seconds > ANNOUNCE_SECONDS else None
