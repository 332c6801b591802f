"""Every file agos writes for a program to read, with its typed record and the JSON Schema shipped
beside it: `agos schema NAME` prints one, `make schema` regenerates them all, and
`tests/test_schemas.py` fails when one is stale."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel


def registry() -> dict[str, tuple[type[BaseModel], Path]]:
    """name → (record, shipped schema file)."""
    from agos.analysis import model as analysis
    from agos.reproduce import records as results
    from agos.search import front as search
    from agos.search import phase
    from agos.stages import records as trajectory
    from agos.stages import verification
    from agos.sweep import records as sweep

    return {
        "analysis": (analysis.Analysis, analysis.SCHEMA_FILE),  # every --json, analysis.json
        "verification": (verification.Verification, verification.SCHEMA_FILE),  # a proof stage
        "results": (results.Results, results.SCHEMA_FILE),  # agos reproduce: results.json
        "trajectory": (trajectory.TrajectoryRecord, trajectory.SCHEMA_FILE),  # trajectory.json
        "sweep-row": (sweep.SweepRow, sweep.SCHEMA_FILE),  # a row of results.parquet / .csv
        "search": (search.SearchResult, search.SCHEMA_FILE),  # agos search: search.json
        "phase": (phase.PhaseResult, phase.SCHEMA_FILE),  # agos phase: phase.json
    }


NAMES = ("analysis", "verification", "results", "trajectory", "sweep-row", "search", "phase")


def write_all() -> list[Path]:
    """Regenerate every shipped schema (`make schema`)."""
    from agos.fileio import atomic_file
    from agos.record import schema_text

    written = []
    for cls, path in registry().values():
        with atomic_file(path) as f:
            f.write(schema_text(cls))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all():
        print(f"wrote {path}")
