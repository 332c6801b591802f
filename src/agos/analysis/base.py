"""The base of every results model (its own module so that each section's module and `model.py`,
which gathers the sections into `Analysis`, can both import it without a cycle)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """Every results model: unknown fields refused, so a renamed field fails loudly."""

    model_config = ConfigDict(extra="forbid")
