"""Where a statistical mask's zeros lie: the `structure=` part of a uniform or profile spec.

Every structured mask has *exactly* round(S·n) zeros (S its zero fraction, n its elements), so two
structures at one S differ in where the zeros are, never in how many. The zeros are chosen in two
steps: first whole *units* — dead channels, dead per-image channel planes, all-zero positions or
square blobs — in a seeded random
order, as many as fit in the structured share F of the zeros; then the rest one by one, uniformly
among the elements still nonzero. F = 1 (the default) puts every zero it can in whole units; the
remainder is smaller than one unit. Units of a tensor [N, C, H, W] ([N, F] for a Linear input):

- `independent`: no units; exactly round(S·n) zeros at uniformly random elements;
- `channels[:F]`: a unit is one channel over the whole batch, C[:, c] (a dead unit: it never fires);
- `planes[:F]`: a unit is one image's channel, X[n, c] (a channel silent on that image only; what
  trained networks show in their deep layers);
- `positions[:F]`: a unit is one position's channel vector, X[n, :, h, w] (for [N, F]: a sample's
  whole vector);
- `blobs:B[:F]`: a unit is a B×B square of one channel of one image, on a grid laid with a random
  offset per (image, channel) so that no blob edge lines up with a hardware tile; edge squares are
  cut by the border. A tensor without two spatial dimensions (or of 1×1 pixels) has no blobs and
  no planes bigger than an element: its zeros are independent (the density mapping's rules say so
  per layer).

Without `structure=` the masks are today's Bernoulli draws (each element zero with probability S:
the count is binomial, not exact); `structure=independent` is the exact-count twin of it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

import torch

from agos.errors import AgosError

KINDS = ("independent", "channels", "planes", "positions", "blobs")
SYNTAX = (
    "independent, channels[:F], planes[:F], positions[:F] or blobs:B[:F] (B ≥ 1 pixels a side, 0 ≤ F ≤ 1)"
)
_SPLIT = re.compile(r"(?i):structure=")


@dataclass(frozen=True)
class Structure:
    kind: Literal["independent", "channels", "planes", "positions", "blobs"]
    block: int = 0  # blobs: side of a square blob in pixels
    share: float = 1.0  # F: the fraction of the zeros placed in whole units

    @property
    def text(self) -> str:
        if self.kind == "independent":
            return "independent"
        parts = [self.kind] + ([str(self.block)] if self.kind == "blobs" else [])
        if self.share != 1.0:
            parts.append(f"{self.share:g}")
        return ":".join(parts)

    def spatial(self, shape: tuple[int, ...]) -> bool:
        """Does this structure shape a tensor of this shape, or does it fall back to independent?"""
        return self.kind not in ("blobs", "planes") or (len(shape) == 4 and shape[2] * shape[3] > 1)

    def units(
        self, shape: tuple[int, ...], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(unit of each element, flattened; elements per unit), or None: no units."""
        if self.kind == "independent" or self.share == 0 or not self.spatial(shape):
            return None
        n, c, rest = shape[0], shape[1], math.prod(shape[2:])
        if self.kind == "channels":
            unit = torch.arange(c).view(1, c, 1).expand(n, c, rest)
            return unit.reshape(-1), torch.full((c,), n * rest, dtype=torch.long)
        if self.kind == "planes":
            plane = torch.arange(n * c).view(n, c, 1)
            return plane.expand(n, c, rest).reshape(-1), torch.full((n * c,), rest, dtype=torch.long)
        if self.kind == "positions":
            position = torch.arange(n * rest).view(n, 1, rest)
            return position.expand(n, c, rest).reshape(-1), torch.full((n * rest,), c, dtype=torch.long)
        h, w = shape[2], shape[3]
        b = self.block
        ny, nx = (h + b - 2) // b + 1, (w + b - 2) // b + 1  # cells a grid offset by 0..b-1 can touch
        offset = torch.randint(0, b, (2, n * c, 1, 1), generator=generator)
        cy = (torch.arange(h).view(1, h, 1) + offset[0]) // b
        cx = (torch.arange(w).view(1, 1, w) + offset[1]) // b
        plane = torch.arange(n * c).view(n * c, 1, 1)
        unit = ((plane * ny + cy) * nx + cx).reshape(-1)
        return unit, torch.bincount(unit, minlength=n * c * ny * nx)


def parse_structure(spec: str, text: str) -> Structure:
    """Parse the part after `structure=`; `spec` is the whole --density text, for the error line."""
    kind, *args = (text or "").strip().lower().split(":")
    if kind not in KINDS:
        raise AgosError(f"--density {spec}: structure '{text}' is not {SYNTAX}")
    if kind == "independent":
        if args:
            raise AgosError(f"--density {spec}: structure independent takes no parameters")
        return Structure("independent")
    block = 0
    if kind == "blobs":
        if not args:
            raise AgosError(f"--density {spec}: blobs need a size: structure=blobs:B[:F] (B pixels a side)")
        size = args.pop(0)
        if not size.isdigit() or int(size) < 1:
            raise AgosError(f"--density {spec}: blob size '{size}' is not an integer ≥ 1 (pixels a side)")
        block = int(size)
    if len(args) > 1:
        raise AgosError(f"--density {spec}: structure '{text}' has too many parts ({SYNTAX})")
    share = 1.0
    if args:
        try:
            share = float(args[0])
        except ValueError:
            raise AgosError(
                f"--density {spec}: '{args[0]}' is not a share of zeros in whole units (0 ≤ F ≤ 1)"
            ) from None
        if not (math.isfinite(share) and 0.0 <= share <= 1.0):
            raise AgosError(f"--density {spec}: share of zeros in whole units {args[0]} is outside [0, 1]")
    return Structure(kind, block, share)


def split_structure(spec: str, text: str) -> tuple[str, Structure | None]:
    """(the spec without its structure part, the parsed structure or None)."""
    parts = _SPLIT.split(text, maxsplit=1)
    if len(parts) == 1:
        return text, None
    return parts[0], parse_structure(spec, parts[1])


def structured_nonzero(
    shape: tuple[int, ...], zero_fraction: float, structure: Structure, generator: torch.Generator
) -> torch.Tensor:
    """A bool mask (True: nonzero) with exactly round(zero_fraction · n) zeros placed by `structure`."""
    numel = math.prod(shape)
    zeros = math.floor(zero_fraction * numel + 0.5)
    zero = torch.zeros(numel, dtype=torch.bool)
    units = structure.units(tuple(shape), generator)
    if units is not None and zeros > 0:
        unit, sizes = units
        order = torch.randperm(len(sizes), generator=generator)
        budget = math.floor(structure.share * zeros + 0.5)
        taken = int(torch.searchsorted(sizes[order].cumsum(0), budget, right=True))
        dead = torch.zeros(len(sizes), dtype=torch.bool)
        dead[order[:taken]] = True
        zero = dead[unit]
    rest = zeros - int(zero.sum())
    if rest > 0:
        free = (~zero).nonzero().squeeze(1)
        zero[free[torch.randperm(len(free), generator=generator)[:rest]]] = True
    return (~zero).reshape(shape)
