"""Simulate every layer of a trace on a set of designs, sharing the work counts between them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from agos.arch.load import LoadedArch, agnostic_twin
from agos.arch.schema import PASSES
from agos.cost.model import PassCost, simulate_layer
from agos.density.masks import LayerMasks
from agos.engine.counts import LayerWork, layer_work
from agos.progress import progress_bar


@dataclass
class LayerResult:
    name: str
    kind: str
    passes: dict[str, PassCost]


@dataclass
class DesignResult:
    loaded: LoadedArch
    layers: list[LayerResult] = field(default_factory=list)
    twin: DesignResult | None = None  # the same design with skipping off (None: it skips nothing)

    def total(self, attr: str, passes: Iterable[str] = PASSES) -> float:
        return sum(getattr(layer.passes[p], attr) for layer in self.layers for p in passes)

    def energy_breakdown(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for layer in self.layers:
            for cost in layer.passes.values():
                for key, value in cost.energy_breakdown.items():
                    out[key] = out.get(key, 0.0) + value
        return out


def simulate_network(
    layers: Iterable[LayerMasks],
    designs: list[LoadedArch],
    count: int | None = None,
    on_layer: Callable[[LayerMasks, LayerWork], None] | None = None,
) -> list[DesignResult]:
    """One pass over the layers: masks → exact work counts → every design. `on_layer` sees each
    layer's masks and counts too, so other reports need not count again."""
    results = [DesignResult(d) for d in designs]
    for result in results:
        if result.loaded.arch.skipping.skips_work:
            result.twin = DesignResult(agnostic_twin(result.loaded))
    everything = [r for result in results for r in (result, result.twin) if r is not None]
    with progress_bar("simulate", total=count or 0) as advance:
        for masks in layers:
            work = layer_work(masks)
            if on_layer is not None:
                on_layer(masks, work)
            for result in everything:
                passes = simulate_layer(masks, work, result.loaded)
                result.layers.append(LayerResult(masks.name, masks.geometry.kind, passes))
            advance(1, masks.name)
    return results
