"""Plain CSV that any reader takes as it is (`pandas.read_csv(path)`): one header line, one row per
record, no comment lines. Where the numbers came from travels in every row as leading columns
(`analysis.frames.provenance_columns`: model, its class and code, weights, data, batch, image size,
seed, density source, trace), so a row keeps its provenance when tables are concatenated."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from agos.analysis.frames import provenance_columns
from agos.analysis.model import Analysis
from agos.fileio import atomic_file


def write_csv(analysis: Analysis, rows: list[dict], path: Path | str) -> None:
    """The rows, each led by the analysis's provenance columns; columns in first-seen order (a
    column some rows lack is empty there)."""
    lead = provenance_columns(analysis)
    full = [{**lead, **r} for r in rows]
    names = list(dict.fromkeys(k for r in full for k in r)) or list(lead)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(full)
    with atomic_file(path, "w") as f:
        f.write(buffer.getvalue())
