"""The base of every results model (its own module so that model.py can import the sections, and the
sections this base, without an import cycle)."""

from __future__ import annotations

from agos.record import Record


class Model(Record):
    """Every results model: unknown fields refused, so a renamed field fails loudly."""
