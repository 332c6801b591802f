"""Exports of a trace to the tools architecture researchers already use (docs/export.md).

- `scalesim`: every pass of every layer as SCALE-Sim 3.0.0 GEMMs, with a config of a design's
  organisation (`export.scalesim`);
- `timeloop`: one Timeloop/Sparseloop problem per layer and pass, with per-tensor densities from
  the masks (`export.timeloop`), and the same pass as an AccelForge Einsum (`export.accelforge`);
- `npz`: the masks themselves, bit-packed, with a tiny reader (`export.npz.load_masks`).

Each writes its files into one folder, staged and moved into place together, with a provenance
JSON written last (`export.folder`). `export_trace` is what `agos.api.export` and `agos export` run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agos.capture.trace import Trace
from agos.density.select import DensitySource, parse_density
from agos.errors import AgosError
from agos.export.folder import ExportRecord, export_record, staged
from agos.inputs.provenance import provenance_label

TARGETS = ("scalesim", "timeloop", "npz")


@dataclass(frozen=True)
class ExportResult:
    target: str
    out: Path
    files: list[str]
    notes: list[str]
    record: ExportRecord  # what provenance.json holds


def check_options(to: str, arch: str | None, density: str, seed: int = 0) -> str:
    """The target, once the options are known to fit it; each misfit is one AgosError line."""
    target = to.strip().lower()
    if target not in TARGETS:
        raise AgosError(f"--to '{to}' is not one of {', '.join(TARGETS)}")
    if arch is not None and target != "scalesim":
        raise AgosError(f"--arch applies to --to scalesim only (its config); --to {target} has no design")
    real = parse_density(density).kind == "real"
    if seed != 0 and real:
        raise AgosError(
            f"--seed {seed} seeds statistical masks only (--density uniform:S | profile:…); "
            "the trace's real masks have no seed"
        )
    if target == "scalesim" and not real:
        raise AgosError(
            "--density does not apply to --to scalesim: SCALE-Sim's topology is the dense GEMMs (it models "
            "no activation sparsity); export the masks with --to timeloop or --to npz"
        )
    return target


def export_trace(
    trace: Trace, target: str, out: Path, source: DensitySource, arch: str | None = None
) -> ExportResult:
    """Write `target`'s export of `trace` (masks from `source`) into `out`."""
    from agos.export import npz, scalesim, timeloop

    with staged(out) as folder:
        if target == "scalesim":
            fields, notes = scalesim.export(trace, folder, arch)
        elif target == "timeloop":
            label = provenance_label(trace.provenance, source.label)
            fields, notes = timeloop.export(trace, source.masks(trace), folder, label)
        elif target == "npz":
            fields, notes = npz.export(trace, source.masks(trace), folder)
        else:
            raise AgosError(f"--to '{target}' is not one of {', '.join(TARGETS)}")
        notes = [*source.notes, *trace.manifest.notes, *notes]
        record = export_record(trace, target, source.label, fields, notes)
        files = folder.commit(record)
    return ExportResult(target, out, files, notes, record.model_copy(update={"files": files}))
