"""`Analysis`: what agos found on one trace under one density source — provenance, the density
source, and one section per kind of figure (sparsity, density mapping, bounds, simulation, tiles).
A command fills the sections it computes and leaves the others out. Its JSON is `dump`'s output;
its schema is `analysis.schema.json` (regenerate with `make schema` after changing a model)."""

from __future__ import annotations

import functools
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from agos import __version__
from agos.analysis.base import Count, Model
from agos.analysis.bounds import Bounds
from agos.analysis.density_mapping import DensityMapping
from agos.analysis.realised import Realised
from agos.analysis.simulation import Simulation
from agos.analysis.sparsity import Sparsity
from agos.analysis.structure import Structure
from agos.analysis.tiles import Tiles
from agos.errors import AgosError, first_line
from agos.fileio import write_json

FORMAT = "agos-analysis"
VERSION = 1
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
    version: Literal[1] = VERSION
    agos_version: str = __version__
    label: str  # provenance label of every figure: model, weights, data, batch, size, seed, masks
    provenance: dict[str, Any]
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


def schema() -> dict:
    """The JSON Schema of the files agos writes (serialisation mode: every field is present)."""
    out = Analysis.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{FORMAT}/{VERSION}", **out}


def schema_text() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


@functools.cache
def format_id() -> str:
    """What an analysis.json holds, for the keys of cached stages: the format, its version and a
    hash of its schema, so that a field added to the model is never served from an older cache."""
    return f"{FORMAT}/{VERSION}/{hashlib.sha256(schema_text().encode()).hexdigest()[:12]}"


def dump(analysis: Analysis) -> dict:
    """The JSON-ready dict of an analysis (sections not computed are left out; a ratio that is
    undefined is null)."""
    absent = {name for name in SECTIONS if getattr(analysis, name, None) is None}
    return analysis.model_dump(mode="json", exclude=absent)


def write(analysis: Analysis, path: Path | str) -> None:
    write_json(dump(analysis), path)


def load(path: Path | str) -> Analysis:
    """An Analysis file read back strictly: its format and version present and this agos's, every
    field typed without coercion, every number finite and in range. A file that is not one is one
    AgosError line naming the file and the first field that is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AgosError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    return parse(text, str(path))


def parse(text: str, where: str) -> Analysis:
    head = read_head(text, where)
    if head.get("format") != FORMAT or head.get("version") != VERSION:
        raise AgosError(
            f"{where}: not an agos analysis of format {FORMAT} version {VERSION} "
            f"(format {head.get('format')!r}, version {head.get('version')!r})"
        )
    try:
        return Analysis.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise AgosError(f"{where}: {validation_line(exc)}") from None


def read_head(text: str, where: str) -> dict:
    """The top-level mapping of a JSON file, parsed as strict JSON (NaN, Infinity and numbers that
    overflow refused); any problem one line."""

    def refuse(token: str):
        raise ValueError(f"{token} is not a number JSON allows")

    def finite(token: str) -> float:
        value = float(token)
        if math.isinf(value):
            raise ValueError(f"{token[:20]} overflows a float")
        return value

    try:
        data = json.loads(text, parse_constant=refuse, parse_float=finite)
    except RecursionError:
        raise AgosError(f"{where}: nested too deeply to read") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, a number of more than 4300 digits
        raise AgosError(f"{where}: not valid JSON ({first_line(exc).split(';')[0]})") from None
    if not isinstance(data, dict):
        raise AgosError(f"{where}: expected a JSON object at the top level")
    return data


def validation_line(exc: ValidationError) -> str:
    """The first problem of a validation error as one line: the field's path, what is wrong."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(top level)"
    extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"field '{field}': {first['msg']}{extra}"
