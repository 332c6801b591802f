"""Where output skipping pays: the phase diagram. On one trace's geometry, statistical masks of
controlled structure at equal density (docs/density.md: independent, dead channels, silent planes,
all-zero positions, blobs) at each zero fraction; per output-skip realization, its backprop time
over that of the best input-only design grown to the same area (more PE rows and columns, or more
buffer, as far as its area allows). Above 1: output sparsity is worth its hardware there."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field

from agos.arch.area import design_area
from agos.arch.load import LoadedArch, load_arch
from agos.progress import progress_bar
from agos.record import Record

STRUCTURES = ("independent", "channels", "planes", "positions", "blobs:2", "blobs:4")
ZEROS = (0.3, 0.5, 0.7, 0.9)


SCHEMA_FILE = Path(__file__).with_name("phase.schema.json")


class _Record(Record):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class PhasePoint(_Record):
    structure: str
    zeros: float = Field(ge=0, le=1)  # zero fraction of every ReLU activation
    organisation: str
    realization: str
    area_mm2: float = Field(gt=0)
    backprop_cycles: int = Field(ge=0)
    baseline: str  # the fastest input-only design grown to at most the realization's area
    baseline_backprop_cycles: int = Field(ge=0)
    speedup: float | None = Field(ge=0)  # baseline / realization


class PhaseResult(_Record):
    format: Literal["agos-phase"] = "agos-phase"
    version: Literal[1] = 1
    trace: str
    label: str
    seed: int
    structures: list[str]
    zeros: list[float]
    points: list[PhasePoint]


def realizations(org: str) -> list[LoadedArch]:
    """Output skipping at its strongest realizations on `org` (agos: every input feature too)."""
    out = []
    for preset in ("agos", "output-skip"):
        base = load_arch(f"{preset}@{org}")
        for lanes, ports in (("modulo", None), ("matched", 2), ("full", None)):
            sk = base.arch.skipping.model_copy(update={"lanes": lanes, "lane_ports": ports})
            name = f"{preset}@{org}~{lanes}" + (f"~q{ports}" if ports else "")
            out.append(base.with_arch(base.arch.model_copy(update={"name": name, "skipping": sk})))
    return out


def input_only(org: str) -> list[LoadedArch]:
    """The rivals: input skipping in every pass, with and without the two-sided join (agos with
    its outputs off)."""
    skip = load_arch(f"input-skip@{org}")
    agos = load_arch(f"agos@{org}")
    sk = agos.arch.skipping
    no_outputs = sk.model_copy(update={"bwd_data": sk.bwd_data.model_copy(update={"outputs": "none"})})
    joined = agos.with_arch(
        agos.arch.model_copy(update={"name": f"agos-inputs@{org}", "skipping": no_outputs})
    )
    return [skip, joined]


def grown(loaded: LoadedArch, target: float) -> list[LoadedArch]:
    """The design with more PEs or more buffer, each as far as `target` mm² allows (the growth of
    the equal-area dense candidates, `cost.network.grown_organisations`, applied to a skipping
    design); itself when no step fits, nothing when even it is larger."""
    from agos.cost.network import grown_organisations

    out = {}
    for org, tag in grown_organisations(loaded.arch, loaded.area, target):
        name = loaded.name if tag == "twin" else f"{loaded.name}[{tag}]"
        out[org] = loaded.with_arch(loaded.arch.model_copy(update={"name": name, "organisation": org}))
    return list(out.values())


def phase(
    trace_dir: str,
    organisations: list[str],
    structures: tuple[str, ...] | list[str] = STRUCTURES,
    zeros: tuple[float, ...] | list[float] = ZEROS,
    seed: int = 0,
) -> PhaseResult:
    from agos.capture.trace import load_trace
    from agos.cost.network import MaskSource, count_layers, simulate_counted
    from agos.inputs.provenance import provenance_label

    trace = load_trace(trace_dir)
    points = []
    total = len(structures) * len(zeros)
    with progress_bar("phase diagram", total=total) as advance:
        for structure in structures:
            for z in zeros:
                spec = f"uniform:{z:g}:structure={structure}"
                contexts = count_layers(MaskSource(str(trace.path), spec, seed))

                def backprop(design: LoadedArch, contexts=contexts) -> int:
                    net = simulate_counted(contexts, [design], trace.manifest, equal_area=False)
                    return net.designs[net.requested[0]].cycles("backprop")

                for org in organisations:
                    rivals = input_only(org)
                    for real in realizations(org):
                        area = design_area(real.arch, real.area).total_mm2
                        cycles = backprop(real)
                        best = None
                        for rival in rivals:
                            for cand in grown(rival, area):
                                c = backprop(cand)
                                if best is None or c < best[1]:
                                    best = (cand.name, c)
                        if best is None:
                            continue
                        points.append(
                            PhasePoint(
                                structure=structure,
                                zeros=z,
                                organisation=org,
                                realization=real.name,
                                area_mm2=area,
                                backprop_cycles=cycles,
                                baseline=best[0],
                                baseline_backprop_cycles=best[1],
                                speedup=best[1] / cycles if cycles else None,
                            )
                        )
                advance(1, spec)
    return PhaseResult(
        trace=str(trace.path),
        label=provenance_label(trace.provenance, "uniform:S:structure=… (statistical masks)"),
        seed=seed,
        structures=list(structures),
        zeros=list(zeros),
        points=points,
    )
