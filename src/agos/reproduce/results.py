"""Gather the stage outputs of every model into `results.json`: the numbers the report shows, each
with its provenance (model, weights, data, batch, image size, density source, arch hashes, agos)."""

from __future__ import annotations

import json
from pathlib import Path

from agos import __version__
from agos.report.gpu import anchor_for, compare_per_image
from agos.report.provenance import provenance_label
from agos.reproduce.pipeline import ModelOutcome, Settings

SPANS = ("fwd", "bwd_data", "bwd_weight", "backprop", "iteration")

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


def _density_entry(analysis: dict) -> dict:
    archs = analysis["simulate"]["archs"]
    return {
        "density": analysis["density"],
        "density_label": analysis["density_label"],
        "label": analysis["simulate"]["label"],
        "sparsity": analysis["sparsity"],
        "ideal_bounds": analysis["bounds"]["speedups"],
        **{f"{span}_speedup": {n: a["speedup"][span] for n, a in archs.items()} for span in SPANS},
        # over the same design with its skipping off: the sparsity gain alone
        **{
            f"own_{span}_speedup": {n: a["sparsity_speedup"][span] for n, a in archs.items()}
            for span in SPANS
        },
        "utilisation": {n: a["totals"]["utilisation"]["iteration"] for n, a in archs.items()},
        "iteration_ms": {n: a["totals"]["iteration_ms"] for n, a in archs.items()},
        "energy_per_iteration_mj": {n: a["totals"]["energy_pj"] / 1e9 for n, a in archs.items()},
        "energy_breakdown_mj": {
            n: {k: v / 1e9 for k, v in a["totals"]["energy_breakdown_pj"].items()} for n, a in archs.items()
        },
        "energy_vs_dense": {n: a["energy_vs_baseline"] for n, a in archs.items()},
        "arch_sha256": {n: a["sha256"] for n, a in archs.items()},
        "dense_macs_per_iteration": sum(
            analysis["bounds"]["totals"][p]["dense"] for p in ("fwd", "bwd_data", "bwd_weight")
        ),
    }


def model_results(outcome: ModelOutcome) -> dict:
    analyses = {d: json.loads((path / "analysis.json").read_text()) for d, path in outcome.analyses.items()}
    real = _density_entry(analyses["real"])
    provenance = analyses["real"]["simulate"]["provenance"]
    batch = provenance["batch_size"]
    gpu = {}
    anchor = anchor_for(outcome.model, "fp32")
    if anchor is not None:
        for preset in ("dense", "agos", "ideal"):
            if preset in real["iteration_ms"]:
                gpu[preset] = compare_per_image(
                    real["iteration_ms"][preset], real["energy_per_iteration_mj"][preset] / 1e3, batch, anchor
                ).to_dict()
    return {
        "provenance": provenance,
        "label": provenance_label(provenance),
        "verify": outcome.verify,
        **{k: v for k, v in real.items() if k not in ("density", "density_label", "label")},
        "densities": {entry["density_label"]: entry for entry in map(_density_entry, analyses.values())},
        "gpu": gpu,
        "seconds": outcome.seconds,
        "compute_seconds": outcome.compute_seconds,
        "files": {d: str(path) for d, path in outcome.analyses.items()},
    }


def _span(values: list[float]) -> dict | None:
    return {"low": min(values), "high": max(values)} if values else None


def compare_with_seed(models: dict) -> dict:
    """Our ranges beside the seed's, over the models of this run: backprop over the dense design,
    iteration over the sparsity-agnostic twin of agos (the same machine, skipping off)."""

    def spans(pick) -> dict | None:
        values = [v for m in models.values() for v in pick(m) if v is not None]
        return _span(values)

    def converged(m, key):
        return [d[key].get("agos") for d in m["densities"].values() if d["density"].endswith(":last")]

    return {
        "seed": SEED_FIGURES,
        "ours": {
            "backprop_speedup_real": spans(lambda m: [m["backprop_speedup"].get("agos")]),
            "iteration_speedup_real": spans(lambda m: [m["own_iteration_speedup"].get("agos")]),
            "iteration_speedup_over_dense_real": spans(lambda m: [m["iteration_speedup"].get("agos")]),
            "backprop_speedup_converged_profile": spans(lambda m: converged(m, "backprop_speedup")),
            "iteration_speedup_converged_profile": spans(lambda m: converged(m, "own_iteration_speedup")),
            "energy_vs_gpu": spans(
                lambda m: [m["gpu"]["agos"]["energy_ratio"]] if "agos" in m.get("gpu", {}) else []
            ),
        },
    }


def gather(outcomes: list[ModelOutcome], settings: Settings, wall_seconds: float, created: str) -> dict:
    models = {o.model: model_results(o) for o in outcomes}
    return {
        "format": "agos-results",
        "agos_version": __version__,
        "created": created,
        "wall_seconds": wall_seconds,
        "compute_seconds": sum(o.compute_seconds for o in outcomes),
        "settings": settings.describe(),
        "models": models,
        "seed_comparison": compare_with_seed(models),
    }


def write_results(results: dict, path: Path) -> None:
    from agos.fileio import atomic_file

    with atomic_file(path) as f:
        json.dump(results, f, indent=1)
