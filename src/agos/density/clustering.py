"""How one mask's zeros cluster, in counts: whole dead units (channels, per-image channel planes,
positions) and co-zero pairs along each axis, each beside what independent zeros at the same
density would give. Every figure is an exact count, so layers pool by summing and a brute-force
recount checks it (tests/test_structure.py).

For a zero mask z of shape [N, C, H, W] (a Linear input is [N, C, 1, 1]) with Z zeros in n elements,
s = Z / n:

- dead channels: c with z[:, c] all zero (over the batch); independent: s^(N·H·W) each;
- dead planes: (n, c) with z[n, c] all zero (one image's channel); independent: s^(H·W);
- dead positions: (n, h, w) with z[n, :, h, w] all zero (every channel); independent: s^C;
- co-zero pairs along an axis group: ordered pairs of distinct zeros in the same group — same
  position (other channel), same plane (other pixel of that image's channel), same channel (any
  other element of it), and 4-neighbours in a plane — over the pairs a zero has there ("slots").
  Their ratio is P(the partner is zero | a zero); independent zeros give s, so `expected` = slots · s
  and the lift pairs / expected is 1 for independent zeros.

Uneven densities alone (a channel, or one image's channel, sparser than another) raise every lift
above 1. Two measures hold them fixed and ask only where the zeros lie:

- spatial: the 4-neighbour pairs over those expected were each plane's z zeros placed uniformly at
  random in its m = H·W pixels: A · z(z−1) / (m(m−1)) per plane, A = 2(H(W−1) + W(H−1)) the ordered
  adjacent pixel pairs. Above 1: zeros come in blobs;
- aligned: the same-position pairs over those expected were each plane's zeros placed independently
  of the other planes': Σ_n ((Σ_c z_nc)² − Σ_c z_nc²) / m. Above 1: channels go zero at the same
  pixels (what all-zero positions need).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Pairs:
    pairs: int  # ordered pairs of distinct zeros in one group
    slots: int  # ordered pairs (zero, other element of its group)
    expected: float  # slots · s: the pairs independent zeros at this density give

    @property
    def probability(self) -> float | None:
        return self.pairs / self.slots if self.slots else None

    @property
    def lift(self) -> float | None:
        return self.pairs / self.expected if self.expected else None


@dataclass(frozen=True)
class ZeroStructure:
    shape: tuple[int, int, int, int]
    zeros: int
    dead_channels: int
    dead_planes: int
    dead_positions: int
    same_position: Pairs
    same_plane: Pairs
    same_channel: Pairs
    neighbour: Pairs
    spatial: Pairs  # the neighbour pairs against each plane's zeros placed at random in it
    aligned: Pairs  # the same-position pairs against each plane's zeros placed independently

    @property
    def numel(self) -> int:
        n, c, h, w = self.shape
        return n * c * h * w

    @property
    def zero_fraction(self) -> float:
        return self.zeros / self.numel if self.numel else 0.0

    @property
    def units(self) -> dict[str, int]:
        """How many channels, planes and positions the mask has."""
        n, c, h, w = self.shape
        return {"channels": c, "planes": n * c, "positions": n * h * w}

    @property
    def zeros_in_dead(self) -> dict[str, int]:
        """How many of the zeros lie in dead channels, dead planes and dead positions (the share F
        of `structure=channels:F`, `planes:F`, `positions:F` is this over the zeros)."""
        n, c, h, w = self.shape
        return {
            "channels": self.dead_channels * n * h * w,
            "planes": self.dead_planes * h * w,
            "positions": self.dead_positions * c,
        }

    def independent_dead(self) -> dict[str, float]:
        """The expected dead fraction of each unit were the zeros independent at this density."""
        n, c, h, w = self.shape
        s = self.zero_fraction
        return {"channels": s ** (n * h * w), "planes": s ** (h * w), "positions": s**c}


def _pairs(counts: torch.Tensor, group: int, zeros: int, s: float) -> Pairs:
    counts = counts.to(torch.int64)
    slots = zeros * (group - 1)
    return Pairs(int((counts * (counts - 1)).sum()), slots, slots * s)


def zero_structure(zero: torch.Tensor) -> ZeroStructure:
    """The structure of a bool zero mask [N, C, H, W] (True: zero, i.e. skippable)."""
    if zero.dim() != 4:
        raise ValueError(f"expected a [N, C, H, W] mask, got shape {tuple(zero.shape)}")
    n, c, h, w = zero.shape
    per_plane = zero.sum(dim=(2, 3), dtype=torch.int64)  # [N, C]
    per_channel = per_plane.sum(dim=0)  # [C]
    per_position = zero.sum(dim=1, dtype=torch.int64)  # [N, H, W]
    zeros = int(per_channel.sum())
    numel = n * c * h * w
    s = zeros / numel if numel else 0.0
    # 4-neighbours inside one plane: each adjacent zero pair counts twice (both orders)
    across = int((zero[..., :, 1:] & zero[..., :, :-1]).sum())
    down = int((zero[..., 1:, :] & zero[..., :-1, :]).sum())
    degree = torch.zeros(h, w, dtype=torch.int64)
    degree[:, 1:] += 1
    degree[:, :-1] += 1
    degree[1:, :] += 1
    degree[:-1, :] += 1
    neighbour_slots = int((zero.sum(dim=(0, 1), dtype=torch.int64) * degree).sum())
    m = h * w
    adjacent = 2 * (h * (w - 1) + w * (h - 1))
    in_plane = int((per_plane * (per_plane - 1)).sum())
    spatial = adjacent * in_plane / (m * (m - 1)) if m > 1 else 0.0
    per_image = per_plane.sum(dim=1)  # [N]
    aligned = int((per_image * per_image).sum() - (per_plane * per_plane).sum()) / m
    return ZeroStructure(
        shape=(n, c, h, w),
        zeros=zeros,
        dead_channels=int((per_channel == n * h * w).sum()),
        dead_planes=int((per_plane == h * w).sum()),
        dead_positions=int((per_position == c).sum()),
        same_position=_pairs(per_position, c, zeros, s),
        same_plane=_pairs(per_plane, h * w, zeros, s),
        same_channel=_pairs(per_channel, n * h * w, zeros, s),
        neighbour=Pairs(2 * (across + down), neighbour_slots, neighbour_slots * s),
        spatial=Pairs(2 * (across + down), neighbour_slots, spatial),
        aligned=Pairs(int((per_position * (per_position - 1)).sum()), zeros * (c - 1), aligned),
    )
