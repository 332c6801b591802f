"""Gather the stage outputs of every model into `results.json` (`records.Results`): the numbers the
report shows, each with its provenance (model, weights, data, batch, image size, density source,
design hashes) and the verification of its capture.

Every speedup is over the design's dense twin (the same organisation, skipping off) or over the
best dense design of equal area, never over a design on another organisation."""

from __future__ import annotations

import json

from agos import __version__
from agos.errors import AgosError
from agos.fileio import write_json
from agos.gpu.anchors import anchor_for, compare_per_image, mac_scale
from agos.inputs.provenance import Provenance, provenance_label
from agos.reproduce.pipeline import ModelOutcome
from agos.reproduce.records import (
    DensityEntry,
    Figures,
    GpuEntry,
    ModelResults,
    Results,
    SeedComparison,
    Span,
)
from agos.reproduce.settings import Settings
from agos.stages.analyse import read_analysis

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


def _gpu(model: str, real: Figures, provenance: Provenance) -> tuple[dict[str, GpuEntry], str | None]:
    """Each design against the GPU row of its own precision, with its dense twin's ratio beside, per
    image at the GPU's image size (the trace's per-image work scaled by dense MACs); (comparisons,
    None), or ({}, the one line saying why there is none) when the sizes cannot be bridged."""
    out: dict[str, GpuEntry] = {}
    batch, size = provenance.batch_size, provenance.image_size
    scales: dict[int, float] = {}
    for name, d in real.designs.items():
        precision = GPU_PRECISION.get(d.precision, "fp32")
        anchor = anchor_for(model, precision)
        if anchor is None:
            continue
        try:
            if anchor.px not in scales:
                per_image = real.dense_macs_per_iteration / batch
                scales[anchor.px] = mac_scale(provenance.model, size, per_image, anchor.px)
            cmp = compare_per_image(d.time_ms.iteration, d.energy_j, batch, size, anchor, scales[anchor.px])
        except AgosError as exc:
            return {}, f"{model}: no GPU comparison: {exc}"
        out[name] = GpuEntry.model_validate(cmp.to_dict())
    for name, cmp in out.items():
        twin = real.designs[name].twin
        twin_cmp = out.get(twin) if twin else cmp
        cmp.twin_energy_ratio = twin_cmp.energy_ratio if twin_cmp is not None else None
        cmp.twin_speedup = twin_cmp.speedup if twin_cmp is not None else None
    return out, None


def model_results(outcome: ModelOutcome) -> ModelResults:
    analyses = {d: read_analysis(path) for d, path in outcome.analyses.items()}
    real = analyses["real"]
    figures = Figures.fields_of(real)
    provenance = real.provenance
    gpu, gpu_note = _gpu(outcome.model, Figures(**figures), provenance)
    return ModelResults(
        **figures,
        provenance=provenance,
        label=provenance_label(provenance),
        verify=outcome.verify,
        capture_notes=real.capture_notes,
        densities={entry.density_label: entry for entry in map(DensityEntry.of, analyses.values())},
        gpu=gpu,
        gpu_note=gpu_note,
        seconds=outcome.seconds,
        compute_seconds=outcome.compute_seconds,
        files={d: str(path) for d, path in outcome.analyses.items()},
    )


def _span(values: list[float | None]) -> Span | None:
    values = [v for v in values if v is not None]
    return Span(low=min(values), high=max(values)) if values else None


def compare_with_seed(models: dict[str, ModelResults]) -> SeedComparison:
    """Our ranges beside the seed's, over the models of this run, per organisation: agos over its
    dense twin (backprop and iteration: the seed's two baselines are both sparsity-agnostic
    designs, here the same one), over the best dense design of equal area, and input-skip's on the
    same footing (what one-sided skipping alone gives)."""
    organisations = sorted(
        {d.organisation for m in models.values() for d in m.designs.values() if d.preset == "agos"}
    )

    def pick(preset: str, org: str, key: str, span: str | None, converged: bool) -> list[float | None]:
        out = []
        for m in models.values():
            entries: list[Figures] = (
                [m] if not converged else [d for d in m.densities.values() if d.density.endswith(":last")]
            )
            for entry in entries:
                for d in entry.designs.values():
                    if d.preset == preset and d.organisation == org:
                        value = getattr(d, key)
                        out.append(getattr(value, span) if span and value is not None else value)
                        break
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
            (g.energy_ratio, g.twin_energy_ratio)
            for m in models.values()
            for name, g in m.gpu.items()
            if (d := m.designs.get(name)) is not None and d.preset == "agos" and d.organisation == org
        ]
        ours[org]["agos_energy_vs_gpu"] = _span([a for a, _ in gpu])
        ours[org]["dense_energy_vs_gpu"] = _span([b for _, b in gpu])
    return SeedComparison.model_validate({"seed": SEED_FIGURES, "ours": ours})


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
) -> Results:
    models = {o.model: model_results(o) for o in outcomes}
    trained = trained or []
    return Results(
        agos_version=__version__,
        created=created,
        wall_seconds=wall_seconds,
        compute_seconds=sum(o.compute_seconds for o in [*outcomes, *trained]),
        settings=settings,
        models=models,
        trained={o.model: model_results(o) for o in trained},
        seed_comparison=compare_with_seed(models),
        validation=validation_record(),
    )


def write_results(results: Results, path) -> None:
    write_json(results.model_dump(mode="json"), path, owned=True)
