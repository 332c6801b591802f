"""The base of every results model and the kinds of number it holds (its own module so that model.py
can import the sections, and the sections this base, without an import cycle).

A figure agos writes is finite and in its range: a count is a whole number ≥ 0, a fraction lies in
[0, 1], a cycle count, an energy or an area is ≥ 0, a ratio is ≥ 0 or null (undefined). The same
constraints refuse a doctored or corrupt file when it is read back (`analysis.model.load`) and
catch a computation gone wrong (an overflow to inf) before it is written; they are in the shipped
JSON Schema too."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from agos.record import Record

Count = Annotated[int, Field(ge=0)]  # MACs, cycles, bytes, tiles, items
Fraction = Annotated[float, Field(ge=0, le=1)]  # a share of elements or of work
NonNegative = Annotated[float, Field(ge=0)]  # energy, area, time, power, a loss
Ratio = Annotated[float, Field(ge=0)] | None  # a speedup or ratio; None where undefined (0 / 0)


class Model(Record):
    """Every results model: a typed record (unknown fields refused, so a renamed field fails
    loudly), with NaN and ±inf refused, so a number that overflowed is never written."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
