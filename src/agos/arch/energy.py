"""Energy tables: picojoules per action, priced apart from performance (Accelergy-style)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EnergyTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str
    mac: dict[str, float] = Field(description="per MAC, keyed '<multiply>_<accumulate>', e.g. bf16_fp32")
    mac_gated: float = Field(ge=0)
    buffer_read_per_byte: float = Field(ge=0)
    buffer_write_per_byte: float = Field(ge=0)
    store_read_per_byte: float = Field(ge=0)
    store_write_per_byte: float = Field(ge=0)
    metadata_read_per_bit: float = Field(ge=0)
    crossbar_per_byte_mm: float = Field(ge=0, description="per byte moved one millimetre")
    dram_per_byte: float = Field(ge=0)
    vector_add: float = Field(ge=0)
    vector_multiply: float = Field(ge=0)

    def model_post_init(self, _context) -> None:
        for key, value in self.mac.items():
            if not value >= 0:
                raise ValueError(f"mac.{key}: a price must be finite and ≥ 0")

    def mac_pj(self, multiply: str, accumulate: str) -> float:
        key = f"{multiply}_{accumulate}"
        if key not in self.mac:
            raise KeyError(key)
        return self.mac[key]
