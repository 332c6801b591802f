"""The base of every typed record agos writes for a program to read (`Analysis`, provenance,
verification, results.json, trajectory.json, sweep rows): unknown fields are refused, a versioned
record carries its format and version, and reading one is a single line on failure — never a
traceback, never a silently accepted field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from agos.errors import AgosError

R = TypeVar("R", bound=BaseModel)


class Record(BaseModel):
    """A typed record: a field it does not declare is refused, so a renamed field fails loudly."""

    model_config = ConfigDict(extra="forbid")


def problem(exc: ValidationError) -> str:
    """The first problem pydantic found, as 'at FIELD.PATH: message'."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"at {where}: {first['msg']}{extra}"


def read_record(cls: type[R], path: Path | str, what: str | None = None) -> R:
    """Load a record written by `write_record`; a file of another format or version, an unknown
    field or a wrong value is one AgosError line naming the file."""
    path = Path(path)
    what = what or path.name
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AgosError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise AgosError(f"{path} is not valid JSON (truncated or corrupt): {exc}") from None
    return parse_record(cls, raw, str(path))


def parse_record(cls: type[R], raw: object, where: str) -> R:
    """Validate a JSON value as `cls`; the format and version are checked first, so that a file of
    another version is named as such rather than by its first differing field."""
    fields = cls.model_fields
    if "format" in fields and "version" in fields:
        fmt, version = fields["format"].default, fields["version"].default
        if not isinstance(raw, dict) or raw.get("format") != fmt:
            raise AgosError(f"{where} is not an {fmt} file")
        if raw.get("version") != version:
            raise AgosError(
                f"{where} is {fmt} version {raw.get('version')}; this agos reads version {version}"
            )
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise AgosError(f"{where} is invalid {problem(exc)}") from None


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
