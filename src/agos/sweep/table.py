"""The sweep's results: one row per point with its provenance, written as Parquet (pyarrow) and CSV,
and the per-point cache the rows are made from (`DIR/points/<hash>.json`, written atomically, so an
interrupted sweep resumes from the points it finished)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from agos import __version__
from agos.fileio import owned_file, write_json
from agos.sweep.plan import ORG_AXIS, Plan, Point

FIGURES = (
    "cycles_fwd",
    "cycles_bwd_data",
    "cycles_bwd_weight",
    "cycles_backprop",
    "cycles_iteration",
    "twin",
    "twin_cycles_iteration",
    "speedup_backprop",
    "speedup_iteration",
    "mac_bound_backprop",
    "best_dense_equal_area",
    "speedup_over_best_dense_equal_area",
    "energy_j",
    "twin_energy_j",
    "energy_vs_twin",
    "area_mm2",
    "time_s",
    "dram_bytes",
    "arch_sha256",
    "flags",
)


class PointCache:
    """One JSON file per point, named by the hash of its inputs. A point whose record holds an
    error is run again on resume (the failure may have been the machine's)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            record = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # absent, or unreadable: computed again
        return record if isinstance(record, dict) and record.get("key") == key else None

    def done(self, key: str) -> bool:
        record = self.get(key)
        return record is not None and record.get("error") is None and record.get("result") is not None

    def put(self, record: dict) -> None:
        write_json(record, self.path(record["key"]), owned=True)


def row(plan: Plan, point: Point, record: dict | None) -> dict:
    trace = plan.traces[point.trace]
    result = (record or {}).get("result") or {}
    out = {
        "point": point.key,
        **trace.columns(),
        "density": point.density,
        "density_seed": point.seed,
        "density_label": (record or {}).get("density_label"),
        "density_notes": plan.density_notes.get((point.trace, point.density)),
        "design": point.design,
        "preset": point.loaded.arch.preset,
        "organisation": point.organisation,
    }
    for axis in plan.axes:
        if axis != ORG_AXIS:
            out[axis] = point.axes.get(axis)
    for name in FIGURES:
        out[name] = result.get(name)
    if out["area_mm2"] is None:
        out["area_mm2"] = point.area_mm2  # known from the plan even when the point failed
    if out["arch_sha256"] is None:
        out["arch_sha256"] = point.loaded.sha256
    out["design_source"] = point.loaded.source
    out["agos_version"] = __version__
    out["point_seconds"] = (record or {}).get("seconds")
    out["worker"] = (record or {}).get("worker")
    out["error"] = (record or {}).get("error") if record is not None else "not run (interrupted)"
    return out


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


def write_tables(rows: list[dict], out: Path) -> tuple[Path, Path]:
    """`results.parquet` and `results.csv` in OUT, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = normalised(rows)
    parquet, csv_path = out / "results.parquet", out / "results.csv"
    table = pa.Table.from_pylist(rows)
    table = table.replace_schema_metadata({"agos": __version__, "format": "agos-sweep"})
    with owned_file(parquet, "wb") as f:
        pq.write_table(table, f)
    with owned_file(csv_path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["point"])
        writer.writeheader()
        writer.writerows(rows)
    return parquet, csv_path


def write_skipped(plan: Plan, out: Path) -> Path:
    path = out / "skipped.json"
    write_json({"count": len(plan.skipped), "points": plan.skipped}, path, owned=True)
    return path
