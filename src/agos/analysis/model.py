"""`Analysis`: what agos found on one trace under one density source — provenance, the density
source, and one section per kind of figure (sparsity, density mapping, bounds, simulation, tiles).
A command fills the sections it computes and leaves the others out. Its JSON is `dump`'s output;
its schema is `analysis.schema.json` (regenerate with `make schema` after changing a model)."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Literal

from pydantic import Field

from agos import __version__
from agos.analysis.base import Count, Model
from agos.analysis.bounds import Bounds
from agos.analysis.density_mapping import DensityMapping
from agos.analysis.realised import Realised
from agos.analysis.simulation import Simulation
from agos.analysis.sparsity import Sparsity
from agos.analysis.structure import Structure
from agos.analysis.tiles import Tiles
from agos.fileio import write_text
from agos.inputs.provenance import Provenance
from agos.record import read_record, schema_of
from agos.record import schema_text as record_schema_text

FORMAT = "agos-analysis"
VERSION = 2  # 2: typed provenance (the model's class and code fingerprint)
SCHEMA_FILE = Path(__file__).with_name("analysis.schema.json")
SECTIONS = ("sparsity", "tiles", "density_mapping", "realised", "bounds", "simulation", "structure")
__all__ = ["Analysis", "DensityInfo", "Model"]


class DensityInfo(Model):
    """The density source the figures were computed on, as resolved once (`density.select`)."""

    spec: str  # the --density text: real, uniform:S, profile:FILE[:CHECKPOINT]
    kind: Literal["real", "uniform", "profile"]
    seed: Count
    label: str  # "real masks", "uniform:0.6 (seed 0)", …
    notes: list[str] = Field(default_factory=list)  # what the source leaves real or assumes

    @classmethod
    def of(cls, source) -> DensityInfo:  # a density.select.DensitySource
        return cls(
            spec=source.text, kind=source.kind, seed=source.seed, label=source.label, notes=list(source.notes)
        )


class Analysis(Model):
    format: Literal["agos-analysis"] = FORMAT
    version: Literal[2] = VERSION
    agos_version: str = __version__
    label: str  # provenance label of every figure: model, weights, data, batch, size, seed, masks
    provenance: Provenance
    trace: str | None = None
    density: DensityInfo | None = None
    capture_notes: list[str] = Field(default_factory=list)
    # sections (SECTIONS): each command fills the ones it computes; the rest stay None
    sparsity: Sparsity | None = None
    tiles: Tiles | None = None
    density_mapping: DensityMapping | None = None
    realised: Realised | None = None
    bounds: Bounds | None = None
    simulation: Simulation | None = None
    structure: Structure | None = None

    def layers_frame(self):
        """A pandas DataFrame, one row per layer × pass × design, with provenance columns."""
        from agos.analysis.frames import layers_frame

        return layers_frame(self)

    def designs_frame(self):
        """A pandas DataFrame, one row per design, with provenance columns."""
        from agos.analysis.frames import designs_frame

        return designs_frame(self)


def schema() -> dict:
    """The JSON Schema of the files agos writes (serialisation mode: every field is present)."""
    return schema_of(Analysis)


def schema_text() -> str:
    return record_schema_text(Analysis)


@functools.cache
def format_id() -> str:
    """What an analysis.json holds, for the keys of cached stages: the format, its version and a
    hash of its schema, so that a field added to the model is never served from an older cache."""
    return f"{FORMAT}/{VERSION}/{hashlib.sha256(schema_text().encode()).hexdigest()[:12]}"


def _absent(analysis: Analysis) -> set[str]:
    return {name for name in SECTIONS if getattr(analysis, name, None) is None}


def dump(analysis: Analysis) -> dict:
    """The JSON-ready dict of an analysis (sections not computed are left out; a ratio that is
    undefined is null)."""
    return analysis.model_dump(mode="json", exclude=_absent(analysis))


def json_text(analysis: Analysis) -> str:
    """`dump` as the text of analysis.json (`fileio.json_text`'s format), serialised by pydantic
    straight from the model rather than through the dict."""
    return analysis.model_dump_json(indent=1, exclude=_absent(analysis), ensure_ascii=True) + "\n"


def write(analysis: Analysis, path: Path | str) -> None:
    write_text(json_text(analysis), path)


def load(path: Path | str) -> Analysis:
    """An Analysis file read back strictly (`record.read_record`): its format and version this
    agos's, every field typed without coercion, every number finite and in range. A file that is
    not one is one AgosError line naming the file and the first field that is wrong."""
    return read_record(Analysis, path)
