"""Energy tables: picojoules per action, priced apart from performance (Accelergy-style)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# The largest price a table may give one action: 1 µJ, 4000× a DRAM byte (horowitz45: 244 pJ). A
# larger one is a unit slip, and near 1e308 the totals overflow to inf.
MAX_PJ = 1e6
Price = Annotated[float, Field(ge=0, le=MAX_PJ)]


class EnergyTable(BaseModel):
    """Picojoules per action; every price finite, ≥ 0 and at most MAX_PJ."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    name: str
    mac: dict[str, Price] = Field(description="per MAC, keyed '<multiply>_<accumulate>', e.g. bf16_fp32")
    mac_gated: Price
    buffer_read_per_byte: Price
    buffer_write_per_byte: Price
    store_read_per_byte: Price
    store_write_per_byte: Price
    metadata_read_per_bit: Price
    crossbar_per_byte_mm: Price = Field(description="per byte moved one millimetre")
    dram_per_byte: Price
    vector_add: Price
    vector_multiply: Price

    def mac_pj(self, multiply: str, accumulate: str) -> float:
        key = f"{multiply}_{accumulate}"
        if key not in self.mac:
            raise KeyError(key)
        return self.mac[key]
