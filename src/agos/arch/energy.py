"""Energy tables: picojoules per action, priced apart from performance (Accelergy-style)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EnergyTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    mac: dict[str, float] = Field(description="per MAC, keyed '<multiply>_<accumulate>', e.g. bf16_fp32")
    mac_gated: float = Field(ge=0)
    local_read_per_byte: float = Field(ge=0)
    global_read_per_byte: float = Field(ge=0)
    global_write_per_byte: float = Field(ge=0)
    metadata_read_per_bit: float = Field(ge=0)
    dram_per_byte: float = Field(ge=0)

    def mac_pj(self, multiply: str, accumulate: str) -> float:
        key = f"{multiply}_{accumulate}"
        if key not in self.mac:
            raise KeyError(key)
        return self.mac[key]
