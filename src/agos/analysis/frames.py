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
    """Where the figures came from, as columns: led by every row of a DataFrame and of every CSV
    agos writes (`report.csvfile`), so a row keeps its provenance when tables are concatenated."""
    p = analysis.provenance
    return {
        "model": p.model,
        "model_class": p.model_class,
        "model_code": p.model_code,
        "weights": p.weights.source,
        "weights_sha256": p.weights.sha256,
        "warm_up_steps": p.warm_up.steps,
        "data": p.data.source,
        "batch_size": p.batch_size,
        "image_size": p.image_size,
        "seed": p.seed,
        "density": analysis.density.label if analysis.density is not None else p.density_source,
        "trace": analysis.trace,
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


def layer_rows(analysis: Analysis) -> list[dict]:
    """One row per requested design × layer × pass: cycles and where they go (`cycles_<component>`),
    the pass's speedup over the design's twin, dense/effective/design MACs, mapping and MAC bounds,
    items, tiles and tiling, DRAM bytes per operand, energy and its breakdown, utilisation, what the
    bypass rule switched off. The rows of `layers_frame` and of `agos simulate --csv`."""
    sim = _simulation(analysis)
    rows = []
    for name in sim.requested:
        d = sim.designs[name]
        for index, layer in enumerate(d.layers or []):
            for pass_ in PASSES:
                f = getattr(layer, pass_)
                rows.append(
                    {
                        "design": name,
                        "organisation": d.organisation,
                        "preset": d.preset,
                        "twin": d.twin,
                        "design_sha256": d.sha256,
                        "layer_index": index,
                        "layer": layer.name,
                        "kind": layer.kind,
                        "pass": pass_,
                        "cycles": f.cycles,
                        "compute_cycles": f.compute_cycles,
                        **{f"cycles_{k}": v for k, v in f.components.items()},
                        "speedup_over_twin": getattr(layer.speedup_over_twin, pass_),
                        "dense_macs": f.dense_macs,
                        "effective_macs": f.effective_macs,
                        "design_macs": f.design_macs,
                        "mapping_bound_cycles": f.mapping_bound_cycles,
                        "mac_bound_cycles": f.mac_bound_cycles,
                        "items": f.items,
                        "tiles": f.tiles,
                        **_flat("tiling", f.tiling.model_dump(mode="json")),
                        **_flat("dram_bytes", f.dram_bytes.model_dump(mode="json")),
                        "energy_pj": f.energy_pj,
                        **_flat("energy_breakdown_pj", f.energy_breakdown_pj),
                        **_flat("actions", f.actions),
                        "utilisation": f.utilisation,
                        "bypassed": "; ".join(f.bypassed),
                        "decision_cycles": f.decision_cycles,
                    }
                )
    return rows


def layers_frame(analysis: Analysis) -> pd.DataFrame:
    """`layer_rows` with the provenance columns."""
    prov = provenance_columns(analysis)
    return _pandas().DataFrame([{**row, **prov} for row in layer_rows(analysis)])


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
