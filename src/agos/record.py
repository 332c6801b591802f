"""The base of every typed record agos writes for a program to read (`Analysis`, provenance,
verification, results.json, trajectory.json, sweep rows): unknown fields are refused, a versioned
record carries its format and version, and reading one is a single line on failure — never a
traceback, never a silently accepted field."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from agos.errors import AgosError, first_line

R = TypeVar("R", bound=BaseModel)


class Record(BaseModel):
    """A typed record: a field it does not declare is refused, so a renamed field fails loudly."""

    model_config = ConfigDict(extra="forbid")


def problem(exc: ValidationError) -> str:
    """The first problem pydantic found, as one line: "field 'FIELD.PATH': message"."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(top level)"
    extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"field '{field}': {first['msg']}{extra}"


def parse_json(text: str, where: str) -> dict:
    """The top-level mapping of a JSON file, parsed as strict JSON (NaN, Infinity and numbers that
    overflow a float refused, so a doctored or corrupt number never reaches a report); any problem
    is one AgosError line naming `where`."""

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
        raise AgosError(f"{where} is not valid JSON (truncated or corrupt): {first_line(exc)}") from None
    if not isinstance(data, dict):
        raise AgosError(f"{where}: expected a JSON object at the top level")
    return data


def read_record(cls: type[R], path: Path | str, what: str | None = None) -> R:
    """Load a record agos wrote, strictly: strict JSON, its format and version this agos's, every
    field typed without coercion (a count of 1.5 or true is refused) and every constrained number
    in range. Any problem is one AgosError line naming the file."""
    path = Path(path)
    what = what or path.name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AgosError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise AgosError(f"{path} is not valid JSON (truncated or corrupt): {exc}") from None
    return parse_record_text(cls, text, str(path))


def parse_record_text(cls: type[R], text: str, where: str) -> R:
    """`read_record` of a file's text."""
    check_head(cls, parse_json(text, where), where)
    try:
        return cls.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise AgosError(f"{where}: {problem(exc)}") from None


def check_head(cls: type[BaseModel], raw: object, where: str) -> None:
    """A versioned record's format and version, checked first, so that a file of another version is
    named as such rather than by its first differing field."""
    fields = cls.model_fields
    if "format" in fields and "version" in fields:
        fmt, version = fields["format"].default, fields["version"].default
        if not isinstance(raw, dict) or raw.get("format") != fmt:
            raise AgosError(f"{where} is not an {fmt} file")
        if raw.get("version") != version:
            raise AgosError(
                f"{where} is {fmt} version {raw.get('version')}; this agos reads version {version}"
            )


def parse_record(cls: type[R], raw: object, where: str) -> R:
    """Validate a value already read (a row of a Parquet table) as `cls`, its format and version
    first."""
    check_head(cls, raw, where)
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise AgosError(f"{where}: {problem(exc)}") from None


def schema_of(cls: type[BaseModel]) -> dict:
    """The JSON Schema of a record as agos writes it (serialisation mode: every field present)."""
    out = cls.model_json_schema(mode="serialization")
    ident = cls.model_fields.get("format")
    version = cls.model_fields.get("version")
    head = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    if ident is not None and version is not None:
        head["$id"] = f"{ident.default}/{version.default}"
    return {**head, **out}


def schema_text(cls: type[BaseModel]) -> str:
    return json.dumps(schema_of(cls), indent=2, sort_keys=True) + "\n"
