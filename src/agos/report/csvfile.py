"""Plain CSV that any reader takes as it is (`pandas.read_csv(path)`): one header line, one row per
record, no comment lines. Where the numbers came from travels in every row as leading columns
(model, weights, data, batch, image size, seed, density source), so a row keeps its provenance
when tables are concatenated."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from agos.analysis.model import Analysis
from agos.fileio import atomic_file

PROVENANCE_COLUMNS = (
    "model",
    "weights",
    "weights_sha256",
    "warm_up_steps",
    "data",
    "batch_size",
    "image_size",
    "seed",
    "density",
    "trace",
)


def provenance_columns(analysis: Analysis) -> dict:
    prov = analysis.provenance
    weights = prov.get("weights") or {}
    return {
        "model": prov.get("model"),
        "weights": weights.get("source"),
        "weights_sha256": weights.get("sha256"),
        "warm_up_steps": (prov.get("warm_up") or {}).get("steps", 0),
        "data": (prov.get("data") or {}).get("source"),
        "batch_size": prov.get("batch_size"),
        "image_size": prov.get("image_size"),
        "seed": prov.get("seed"),
        "density": analysis.density.label if analysis.density is not None else prov.get("density_source"),
        "trace": analysis.trace,
    }


def write_csv(analysis: Analysis, rows: list[dict], path: Path | str) -> None:
    """The rows, each led by the analysis's provenance columns; columns in first-seen order (a
    column some rows lack is empty there)."""
    lead = provenance_columns(analysis)
    full = [{**lead, **r} for r in rows]
    names = list(dict.fromkeys(k for r in full for k in r)) or list(PROVENANCE_COLUMNS)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(full)
    with atomic_file(path, "w") as f:
        f.write(buffer.getvalue())
