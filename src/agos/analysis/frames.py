"""An `Analysis` as tidy pandas DataFrames, for notebooks: `layers_frame` has one row per layer ×
pass × design, `designs_frame` one row per design; both carry the provenance of their figures in
columns (model, its class, weights and their SHA-256, data, batch, image size, seed, density), so a
frame that is saved, concatenated or filtered still says where every number came from."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agos.errors import AgosError
from agos.workload.passes import PASSES, SPANS

if TYPE_CHECKING:
    import pandas as pd

    from agos.analysis.model import Analysis


def _pandas():
    try:
        import pandas as pd
    except ImportError:  # a dependency of agos; only a broken install lacks it
        raise AgosError("DataFrames need pandas: pip install pandas") from None
    return pd


def provenance_columns(analysis: Analysis) -> dict:
    p = analysis.provenance
    return {
        "model": p.model,
        "model_class": p.model_class,
        "model_code": p.model_code,
        "weights": p.weights.source,
        "weights_sha256": p.weights.sha256,
        "data": p.data.source,
        "batch_size": p.batch_size,
        "image_size": p.image_size,
        "seed": p.seed,
        "density": analysis.density.label if analysis.density is not None else p.density_source,
    }


def _flat(prefix: str, value: dict) -> dict:
    out = {}
    for key, v in value.items():
        name = f"{prefix}_{key}" if prefix else key
        out.update(_flat(name, v) if isinstance(v, dict) else {name: v})
    return out


def _simulation(analysis: Analysis):
    if analysis.simulation is None:
        raise AgosError("this analysis has no simulation section: analyse it with designs (agos.api.analyse)")
    return analysis.simulation


def layers_frame(analysis: Analysis) -> pd.DataFrame:
    """One row per layer × pass × design (the designs asked for), with that pass's cycles, MACs
    (dense, effective, the design's), DRAM bytes, energy and the layer's speedup over the twin."""
    sim = _simulation(analysis)
    prov = provenance_columns(analysis)
    rows = []
    for name in sim.requested:
        d = sim.designs[name]
        for layer in d.layers or []:
            for pass_ in PASSES:
                figures = getattr(layer, pass_).model_dump(mode="json")
                rows.append(
                    {
                        "design": name,
                        "organisation": d.organisation,
                        "preset": d.preset,
                        "layer": layer.name,
                        "kind": layer.kind,
                        "pass": pass_,
                        **_flat("", figures),
                        "speedup_over_twin": getattr(layer.speedup_over_twin, pass_),
                        **prov,
                    }
                )
    return _pandas().DataFrame(rows)


def designs_frame(analysis: Analysis) -> pd.DataFrame:
    """One row per design asked for: area, cycles and time per span, energy, and every speedup
    (over the dense twin per span, the MAC bound, over the best dense design of equal area)."""
    sim = _simulation(analysis)
    prov = provenance_columns(analysis)
    rows = []
    for name in sim.requested:
        d = sim.designs[name]
        row = {
            "design": name,
            "organisation": d.organisation,
            "preset": d.preset,
            "pe_rows": d.pe_array[0],
            "pe_cols": d.pe_array[1],
            "area_mm2": d.area_mm2,
            "energy_j": d.energy_j,
            "energy_vs_twin": d.energy_vs_twin,
            "dram_bytes": d.dram_bytes,
            "utilisation": d.utilisation,
            "twin": d.twin,
            "best_dense_equal_area": d.best_dense_equal_area,
            "speedup_over_best_dense_equal_area": d.speedup_over_best_dense_equal_area,
            "flags": "; ".join(d.flags or []),
            "sha256": d.sha256,
        }
        for span in (*SPANS, "vector"):
            row[f"cycles_{span}"] = getattr(d.cycles, span)
            row[f"time_ms_{span}"] = getattr(d.time_ms, span)
        for span in SPANS:
            row[f"speedup_{span}"] = getattr(d.speedup_over_twin, span) if d.speedup_over_twin else None
            row[f"mac_bound_{span}"] = getattr(d.mac_bound_speedup, span) if d.mac_bound_speedup else None
        rows.append({**row, **prov})
    return _pandas().DataFrame(rows)
