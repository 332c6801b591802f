"""The "structure" section: where each layer's zeros lie — dead channels, dead per-image channel
planes, dead positions, and co-zero lifts along positions, planes, channels and spatial neighbours —
for X, the skippable dX (not needed) and dY, per layer and pooled over the network
(`agos sparsity --structure`; the measures are defined in `agos.density.clustering`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agos.analysis.base import Count, Fraction, Model, Ratio

if TYPE_CHECKING:
    from agos.capture.trace import Trace
    from agos.density.clustering import ZeroStructure
    from agos.density.select import DensitySource

MASKS = ("x", "dx", "dy")
WHAT = {
    "x": "zeros of X (the activation feeding the layer)",
    "dx": "skippable dX (positions whose gradient is not needed)",
    "dy": "zeros of dY",
}


class CoZero(Model):
    """P(another element of the group is zero | a zero), and its lift over independent zeros."""

    probability: Fraction | None  # None: the group has one element (no partner)
    lift: Ratio  # probability / s; 1 for independent zeros; None without zeros


class MaskStructure(Model):
    elements: Count
    zeros: Count
    zero_fraction: Fraction
    dead_channels: Fraction  # channels zero over the whole batch, over all channels
    dead_planes: Fraction | None  # (image, channel) planes all zero, over all planes; None if H·W = 1
    dead_positions: Fraction  # (image, h, w) positions zero in every channel, over all positions
    independent_dead_channels: Fraction  # what independent zeros at this density would give: s^(N·H·W)
    independent_dead_planes: Fraction | None  # s^(H·W)
    independent_dead_positions: Fraction  # s^C
    zeros_in_dead_channels: Fraction | None  # share of the zeros in dead channels (F of channels:F)
    zeros_in_dead_planes: Fraction | None  # … in dead planes (F of planes:F); None if H·W = 1
    zeros_in_dead_positions: Fraction | None  # … in dead positions (F of positions:F); None: no zeros
    same_position: CoZero  # another channel at this position
    same_plane: CoZero  # another pixel of this image's channel
    same_channel: CoZero  # another element of this channel (any image, any pixel)
    neighbour: CoZero  # a 4-neighbour in this image's channel; None without spatial extent
    spatial: Ratio  # neighbour pairs over those of each plane's zeros placed at random in it
    aligned: Ratio  # same-position pairs over those of the planes' zeros placed independently


class LayerStructure(Model):
    name: str
    shape: list[Count]  # X's [N, C, H, W]; dY's is [N, K, P, Q]
    x: MaskStructure
    dx: MaskStructure | None  # None: no BWD-D, or all of dX needed (no output mask)
    dy: MaskStructure


class StructureTotals(Model):
    """One mask kind pooled over the layers with feature maps (H·W > 1; each layer call counts, so a
    shared X counts per reader): dead units over all units, co-zero pairs over slots, lifts over the
    pairs independent zeros at each layer's own density would give. Linear inputs and 1×1 maps are
    left out (per layer only): their channels are features over a few rows, dead by chance at s^N,
    and would swamp the pooled channel figures."""

    layers: Count
    left_out: list[str]  # layers of this mask kind with H·W = 1, not pooled
    elements: Count
    zero_fraction: Fraction
    dead_channels: Fraction
    dead_planes: Fraction
    dead_positions: Fraction
    zeros_in_dead_channels: Fraction | None
    zeros_in_dead_planes: Fraction | None
    zeros_in_dead_positions: Fraction | None
    same_position: CoZero
    same_plane: CoZero
    same_channel: CoZero
    neighbour: CoZero
    spatial: Ratio
    aligned: Ratio


class Structure(Model):
    density_source: str
    masks: dict[str, str]  # x, dx, dy: what each mask's zeros are
    layers: list[LayerStructure]  # in trace order
    totals: dict[str, StructureTotals]  # by mask: x, dx, dy (those with a layer of H·W > 1)


def _co(pairs) -> CoZero:
    return CoZero(probability=pairs.probability, lift=pairs.lift)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def mask_structure(z: ZeroStructure) -> MaskStructure:
    h, w = z.shape[2:]
    units = z.units
    indep = z.independent_dead()
    flat = h * w == 1
    return MaskStructure(
        elements=z.numel,
        zeros=z.zeros,
        zero_fraction=z.zero_fraction,
        dead_channels=z.dead_channels / units["channels"],
        dead_planes=None if flat else z.dead_planes / units["planes"],
        dead_positions=z.dead_positions / units["positions"],
        independent_dead_channels=indep["channels"],
        independent_dead_planes=None if flat else indep["planes"],
        independent_dead_positions=indep["positions"],
        zeros_in_dead_channels=_share(z.zeros_in_dead["channels"], z.zeros),
        zeros_in_dead_planes=None if flat else _share(z.zeros_in_dead["planes"], z.zeros),
        zeros_in_dead_positions=_share(z.zeros_in_dead["positions"], z.zeros),
        same_position=_co(z.same_position),
        same_plane=_co(z.same_plane),
        same_channel=_co(z.same_channel),
        neighbour=_co(z.neighbour),
        spatial=z.spatial.lift,
        aligned=z.aligned.lift,
    )


def _pooled(found: list[ZeroStructure], left_out: list[str]) -> StructureTotals:
    from agos.density.clustering import Pairs

    def pooled(attr: str) -> CoZero:
        pairs = [getattr(z, attr) for z in found]
        return _co(
            Pairs(sum(p.pairs for p in pairs), sum(p.slots for p in pairs), sum(p.expected for p in pairs))
        )

    def lift(attr: str) -> float | None:
        return pooled(attr).lift

    def dead(attr: str, unit: str) -> float:
        return sum(getattr(z, attr) for z in found) / sum(z.units[unit] for z in found)

    def in_dead(unit: str) -> float | None:
        return _share(sum(z.zeros_in_dead[unit] for z in found), sum(z.zeros for z in found))

    elements = sum(z.numel for z in found)
    return StructureTotals(
        layers=len(found),
        left_out=left_out,
        elements=elements,
        zero_fraction=sum(z.zeros for z in found) / elements,
        dead_channels=dead("dead_channels", "channels"),
        dead_planes=dead("dead_planes", "planes"),
        dead_positions=dead("dead_positions", "positions"),
        zeros_in_dead_channels=in_dead("channels"),
        zeros_in_dead_planes=in_dead("planes"),
        zeros_in_dead_positions=in_dead("positions"),
        same_position=pooled("same_position"),
        same_plane=pooled("same_plane"),
        same_channel=pooled("same_channel"),
        neighbour=pooled("neighbour"),
        spatial=lift("spatial"),
        aligned=lift("aligned"),
    )


def compute_structure(trace: Trace, source: DensitySource) -> Structure:
    """Per-layer and pooled structure of the masks `source` gives this trace."""
    from agos.density.clustering import zero_structure

    layers: list[LayerStructure] = []
    found: dict[str, list[ZeroStructure]] = {m: [] for m in MASKS}
    left_out: dict[str, list[str]] = {m: [] for m in MASKS}
    for masks in source.masks(trace):
        x = zero_structure(~masks.x_nonzero)
        dy = zero_structure(~masks.dy_nonzero)
        dx = None
        if masks.needs_bwd_data and not masks.dx_all_needed:
            dx = zero_structure(~masks.dx_needed)
        for kind, z in (("x", x), ("dx", dx), ("dy", dy)):
            if z is not None:
                pooled = z.shape[2] * z.shape[3] > 1
                (found[kind] if pooled else left_out[kind]).append(z if pooled else masks.name)
        layers.append(
            LayerStructure(
                name=masks.name,
                shape=list(x.shape),
                x=mask_structure(x),
                dx=mask_structure(dx) if dx is not None else None,
                dy=mask_structure(dy),
            )
        )
    return Structure(
        density_source=source.label,
        masks=dict(WHAT),
        layers=layers,
        totals={m: _pooled(found[m], left_out[m]) for m in MASKS if found[m]},
    )
