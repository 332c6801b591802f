"""Bit-packed boolean masks: 1 bit per element, numpy's packbits (big-endian bit order)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class PackedMask:
    shape: tuple[int, ...]
    bits: np.ndarray  # uint8, ceil(numel / 8) bytes
    count: int  # number of True elements

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def unpack(self) -> np.ndarray:
        return np.unpackbits(self.bits, count=self.numel).view(bool).reshape(self.shape)

    def tensor(self, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.from_numpy(self.unpack()).to(device)


def packed_nbytes(numel: int) -> int:
    return (numel + 7) // 8


def popcount(bits: np.ndarray) -> int:
    """Set bits in a packed array (padding bits are always zero)."""
    return int(np.bitwise_count(bits).sum(dtype=np.int64))


def count_true(mask: torch.Tensor) -> int:
    """True elements of a bool tensor; numpy's count is several times faster than torch's here."""
    return int(np.count_nonzero(mask.detach().cpu().numpy()))


def pack(mask: torch.Tensor) -> PackedMask:
    """Pack a bool tensor (any device). Counting the packed bits is far cheaper than a bool sum."""
    bits = np.packbits(mask.detach().reshape(-1).cpu().numpy())
    return PackedMask(shape=tuple(mask.shape), bits=bits, count=popcount(bits))
