"""The sweep's results: one typed row per point with its provenance (`records.SweepRow`), written as
Parquet (pyarrow) and CSV, and read back typed (`read_rows`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from agos import __version__
from agos.fileio import owned_file, write_json
from agos.sweep.plan import ORG_AXIS, Plan, Point
from agos.sweep.records import FORMAT, VERSION, PointResult, SweepRow


def row(plan: Plan, point: Point, record: PointResult | None) -> SweepRow:
    """The table's row of a point: its trace, design, axes, density and figures (none when it failed
    or was not run), with the design's source and the agos version."""
    trace = plan.traces[point.trace]
    figures = record.result.model_dump() if record is not None and record.result is not None else {}
    return SweepRow.model_validate(
        {
            "point": point.key,
            **trace.columns().model_dump(),
            "density": point.density,
            "density_seed": point.seed,
            "density_label": record.density_label if record is not None else None,
            "density_notes": plan.density_notes.get((point.trace, point.density)),
            "design": point.design,
            "preset": point.loaded.arch.preset,
            "organisation": point.organisation,
            "axes": {a: point.axes.get(a) for a in plan.axes if a != ORG_AXIS},
            **figures,
            "area_mm2": figures.get("area_mm2", point.area_mm2),  # known from the plan when it failed
            "arch_sha256": figures.get("arch_sha256", point.loaded.sha256),
            "design_source": point.loaded.source,
            "point_seconds": record.seconds if record is not None else None,
            "worker": record.worker if record is not None else None,
            "error": record.error if record is not None else "not run (interrupted)",
        }
    )


def _column_types(rows: list[dict]) -> dict[str, type]:
    """One type per column for Parquet: mixed int/float → float; anything with text → text."""
    kinds: dict[str, set[type]] = {}
    for r in rows:
        for k, v in r.items():
            if v is not None:
                kinds.setdefault(k, set()).add(type(v))
    out: dict[str, type] = {}
    for k in rows[0] if rows else []:
        types = kinds.get(k, set())
        if types <= {bool}:
            out[k] = bool
        elif types <= {int}:
            out[k] = int
        elif types <= {int, float}:
            out[k] = float
        else:
            out[k] = str
    return out


def normalised(rows: list[dict]) -> list[dict]:
    types = _column_types(rows)
    fixed = []
    for r in rows:
        fixed.append(
            {k: (None if v is None else (str(v) if types[k] is str else types[k](v))) for k, v in r.items()}
        )
    return fixed


def write_tables(records: list[SweepRow], out: Path) -> tuple[Path, Path]:
    """`results.parquet` and `results.csv` in OUT, atomically: the rows' dumps, axis values as
    columns; the Parquet metadata names the row format and version (`read_rows` checks them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = normalised([r.flat() for r in records])
    parquet, csv_path = out / "results.parquet", out / "results.csv"
    table = pa.Table.from_pylist(rows)
    table = table.replace_schema_metadata(
        {"agos": __version__, "format": FORMAT, "version": str(VERSION), "axes": json.dumps(_axes(records))}
    )
    with owned_file(parquet, "wb") as f:
        pq.write_table(table, f)
    with owned_file(csv_path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["point"])
        writer.writeheader()
        writer.writerows(rows)
    return parquet, csv_path


def _axes(records: list[SweepRow]) -> list[str]:
    return list(records[0].axes) if records else []


def read_rows(path: Path | str) -> list[SweepRow]:
    """The rows of a `results.parquet`, typed; a table of another format or version, or with a column
    no row has, is one line."""
    import pyarrow.parquet as pq

    from agos.errors import AgosError
    from agos.record import parse_record

    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise AgosError(f"cannot read the sweep table {path}: {exc}") from None
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    if meta.get("format") != FORMAT:
        raise AgosError(f"{path} is not an {FORMAT} table")
    if meta.get("version") != str(VERSION):
        raise AgosError(
            f"{path} is {FORMAT} version {meta.get('version')}; this agos reads version {VERSION}"
        )
    axes = json.loads(meta.get("axes", "[]"))
    out = []
    for i, flat in enumerate(table.to_pylist()):
        values = {k: v for k, v in flat.items() if k not in axes}
        values.update(format=FORMAT, version=VERSION, axes={a: flat.get(a) for a in axes})
        out.append(parse_record(SweepRow, values, f"{path} row {i}"))
    return out


def write_skipped(plan: Plan, out: Path) -> Path:
    path = out / "skipped.json"
    write_json({"count": len(plan.skipped), "points": plan.skipped}, path, owned=True)
    return path
