"""Gather the stage outputs of every model into `results.json`: the numbers the report shows, each
with its provenance (model, weights, data, batch, image size, density source, design hashes).

Every speedup is over the design's dense twin (the same organisation, skipping off) or over the
best dense design of equal area, never over a design on another organisation."""

from __future__ import annotations

import json
from pathlib import Path

from agos import __version__
from agos.analysis.model import Analysis
from agos.errors import AgosError
from agos.gpu.anchors import anchor_for, compare_per_image, mac_scale
from agos.inputs.provenance import provenance_label
from agos.reproduce.pipeline import ModelOutcome, Settings, read_analysis

DESIGN_FIELDS = (
    "organisation",
    "preset",
    "twin",
    "area_mm2",
    "speedup_over_twin",
    "mac_bound_speedup",
    "speedup_over_best_dense_equal_area",
    "best_dense_equal_area",
    "speedup_per_area_over_twin",
    "energy_j",
    "energy_vs_twin",
    "energy_breakdown_j",
    "time_ms",
    "cycles",
    "utilisation",
    "flags",
    "sha256",
    "precision",
)
GPU_PRECISION = {"bf16": "bf16-autocast", "fp16": "bf16-autocast", "fp32": "fp32"}

# The seed's headline figures (DESIGN.md §5, from the paper's abstract).
SEED_FIGURES = {
    "backprop_speedup": {
        "low": 1.69,
        "high": 5.43,
        "text": "1.69×–5.43× faster backpropagation than a dense design, five ImageNet CNNs",
    },
    "iteration_speedup": {
        "low": 1.68,
        "high": 3.30,
        "text": "1.68×–3.30× faster training iterations than a sparsity-agnostic design",
    },
    "energy_vs_gpu": {
        "value": 10.0,
        "text": "about an order of magnitude better energy efficiency than GPU execution",
    },
}


TILE_TOTALS_SHOWN = ("tiles", "empty_tiles", "empty_fraction", "work_skipped_fraction")


def _density_entry(analysis: Analysis) -> dict:
    """The figures of one density the report shows, read from its typed analysis."""
    sim = analysis.simulation
    designs = {}
    for name in sim.requested:
        d = sim.designs[name]
        entry = d.model_dump(mode="json", include=set(DESIGN_FIELDS))
        if d.best_dense_equal_area is not None:
            b = sim.designs[d.best_dense_equal_area]
            entry["best_dense_equal_area_detail"] = {
                "area_mm2": b.area_mm2,
                "pe_array": list(b.pe_array),
                "global_buffer_bytes": b.global_buffer_bytes,
                "iteration_ms": b.time_ms.iteration,
                "backprop_ms": b.time_ms.backprop,  # the report's first figure: backprop over it too
            }
        designs[name] = entry
    tiles = analysis.tiles
    return {
        "density": analysis.density.spec,
        "density_label": analysis.density.label,
        "label": analysis.label,
        "sparsity": analysis.realised.model_dump(mode="json", exclude={"weighting"}),
        "ideal_bounds": {k: v.model_dump(mode="json") for k, v in analysis.bounds.speedups.items()},
        "designs": designs,
        "vector_note": sim.vector_note,
        "density_notes": analysis.density.notes,
        "tiles": None
        if tiles is None
        else {
            "element_skip_fraction": tiles.element_skip_fraction,
            "statistical": tiles.statistical,
            "shapes": {
                name: {k: getattr(t, k) for k in TILE_TOTALS_SHOWN} for name, t in tiles.totals.items()
            },
        },
        "dense_macs_per_iteration": analysis.bounds.totals.span("iteration")["dense"],
    }


def _gpu(model: str, entry: dict, provenance: dict, precisions: dict[str, str]) -> tuple[dict, str | None]:
    """Each design against the GPU row of its own precision, with its dense twin's ratio beside, per
    image at the GPU's image size (the trace's per-image work scaled by dense MACs); (comparisons,
    None), or ({}, the one line saying why there is none) when the sizes cannot be bridged."""
    out = {}
    batch, size = provenance["batch_size"], provenance["image_size"]
    scales: dict[int, float] = {}
    for name, d in entry["designs"].items():
        precision = GPU_PRECISION.get(precisions.get(name, "bf16"), "fp32")
        anchor = anchor_for(model, precision)
        if anchor is None:
            continue
        try:
            if anchor.px not in scales:
                per_image = entry["dense_macs_per_iteration"] / batch
                scales[anchor.px] = mac_scale(provenance["model"], size, per_image, anchor.px)
            cmp = compare_per_image(
                d["time_ms"]["iteration"], d["energy_j"], batch, size, anchor, scales[anchor.px]
            )
        except AgosError as exc:
            return {}, f"{model}: no GPU comparison: {exc}"
        out[name] = cmp.to_dict()
    for name, cmp in out.items():
        twin = entry["designs"][name].get("twin")
        cmp["twin_energy_ratio"] = out.get(twin, {}).get("energy_ratio") if twin else cmp["energy_ratio"]
        cmp["twin_speedup"] = out.get(twin, {}).get("speedup") if twin else cmp["speedup"]
    return out, None


def model_results(outcome: ModelOutcome) -> dict:
    analyses = {d: read_analysis(path) for d, path in outcome.analyses.items()}
    real = _density_entry(analyses["real"])
    provenance = analyses["real"].provenance
    precisions = {n: d["precision"] for n, d in real["designs"].items()}
    gpu, gpu_note = _gpu(outcome.model, real, provenance, precisions)
    return {
        "provenance": provenance,
        "label": provenance_label(provenance),
        "verify": outcome.verify,
        "capture_notes": json.loads((outcome.trace_dir / "manifest.json").read_text()).get("notes", []),
        **{k: v for k, v in real.items() if k not in ("density", "density_label", "label")},
        "densities": {entry["density_label"]: entry for entry in map(_density_entry, analyses.values())},
        "gpu": gpu,
        "gpu_note": gpu_note,
        "seconds": outcome.seconds,
        "compute_seconds": outcome.compute_seconds,
        "files": {d: str(path) for d, path in outcome.analyses.items()},
    }


def _span(values: list[float]) -> dict | None:
    values = [v for v in values if v is not None]
    return {"low": min(values), "high": max(values)} if values else None


def _design_of(entry: dict, preset: str, organisation: str) -> dict | None:
    return next(
        (d for d in entry["designs"].values() if d["preset"] == preset and d["organisation"] == organisation),
        None,
    )


def compare_with_seed(models: dict) -> dict:
    """Our ranges beside the seed's, over the models of this run, per organisation: agos over its
    dense twin (backprop and iteration: the seed's two baselines are both sparsity-agnostic
    designs, here the same one), over the best dense design of equal area, and input-skip's on the
    same footing (what one-sided skipping alone gives)."""
    organisations = sorted(
        {d["organisation"] for m in models.values() for d in m["designs"].values() if d["preset"] == "agos"}
    )

    def pick(preset: str, org: str, key: str, span: str | None, converged: bool) -> list[float]:
        out = []
        for m in models.values():
            entries = (
                [m]
                if not converged
                else [d for d in m["densities"].values() if d["density"].endswith(":last")]
            )
            for entry in entries:
                d = _design_of(entry, preset, org)
                if d is not None:
                    value = d.get(key)
                    out.append(value.get(span) if span and isinstance(value, dict) else value)
        return out

    ours = {}
    for org in organisations:
        ours[org] = {
            f"{preset}_{name}": _span(pick(preset, org, key, span, conv))
            for preset in ("agos", "input-skip")
            for name, key, span, conv in (
                ("backprop_real", "speedup_over_twin", "backprop", False),
                ("iteration_real", "speedup_over_twin", "iteration", False),
                ("equal_area_real", "speedup_over_best_dense_equal_area", None, False),
                ("backprop_converged", "speedup_over_twin", "backprop", True),
                ("iteration_converged", "speedup_over_twin", "iteration", True),
                ("equal_area_converged", "speedup_over_best_dense_equal_area", None, True),
            )
        }
        gpu = [
            (g["energy_ratio"], g.get("twin_energy_ratio"))
            for m in models.values()
            for name, g in m.get("gpu", {}).items()
            if (d := m["designs"].get(name)) is not None
            and d["preset"] == "agos"
            and d["organisation"] == org
        ]
        ours[org]["agos_energy_vs_gpu"] = _span([a for a, _ in gpu])
        ours[org]["dense_energy_vs_gpu"] = _span([b for _, b in gpu])
    return {"seed": SEED_FIGURES, "ours": ours}


def validation_record() -> dict | None:
    """The cost model's recorded validation (benchmarks/validation.py writes it), or None."""
    from importlib import resources

    path = resources.files("agos.report").joinpath("data", "validation.json")
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def gather(
    outcomes: list[ModelOutcome],
    settings: Settings,
    wall_seconds: float,
    created: str,
    trained: list[ModelOutcome] | None = None,
) -> dict:
    models = {o.model: model_results(o) for o in outcomes}
    trained = trained or []
    return {
        "format": "agos-results",
        "version": 2,
        "agos_version": __version__,
        "created": created,
        "wall_seconds": wall_seconds,
        "compute_seconds": sum(o.compute_seconds for o in [*outcomes, *trained]),
        "settings": settings.describe(),
        "models": models,
        "trained": {o.model: model_results(o) for o in trained},
        "seed_comparison": compare_with_seed(models),
        "validation": validation_record(),
    }


def write_results(results: dict, path: Path) -> None:
    from agos.fileio import write_json

    write_json(results, path, owned=True)
