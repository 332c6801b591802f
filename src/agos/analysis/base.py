"""The base of every results model (its own module so that model.py can import the sections, and the
sections this base, without an import cycle)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """Every results model: unknown fields refused, so a renamed field fails loudly."""

    model_config = ConfigDict(extra="forbid")
