"""An export's folder: its files staged out of sight, moved into place together, provenance last.

Every file of one export is written into a hidden staging folder inside `--out`; only when all are
written are they renamed into place (each rename atomic), and `provenance.json` — which names the
trace, the density source and every file of the export — is written last. A failed export leaves
the folder as it was. Files that an earlier export into the same folder wrote (its provenance lists
them) and this one does not write again are removed, so no stale workload outlives a re-export;
files agos did not write are never touched. `provenance.json` is a typed record (`ExportRecord`,
`agos schema export`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from agos import __version__
from agos.capture.trace import Trace
from agos.errors import AgosError
from agos.fileio import json_text, owned_file
from agos.inputs.provenance import Provenance, provenance_label
from agos.record import Record

PROVENANCE = "provenance.json"
FORMAT, VERSION = "agos-export", 1
SCHEMA_FILE = Path(__file__).with_name("export.schema.json")
Target = Literal["scalesim", "timeloop", "npz"]


class ScaleSimDetails(Record):
    scalesim: str  # the SCALE-Sim version the files are written for
    config: dict  # the design's organisation as SCALE-Sim's config holds it
    topology_rows: int = Field(ge=1)
    gemm_macs: int = Field(ge=0)  # the GEMMs' MACs, padding taps and stride holes included
    run: str  # SCALE-Sim's own command line for these files


class TimeloopDetails(Record):
    problems: int = Field(ge=1)  # one Timeloop problem (and AccelForge workload) per layer pass
    timeloop_problem_version: float  # the `version` key of each problem (Timeloop v0.4)


class NpzDetails(Record):
    layers: int = Field(ge=0)
    masks_file: str
    bit_order: str


class ExportRecord(Record):
    """`provenance.json`: where an export came from — the trace (path and checksum) and its full
    provenance (model, weights, data, batch, image size, seed), the density source of its masks —
    what the target holds (the one of `scalesim`, `timeloop`, `npz` that `target` names), what was
    left out or made conservative (notes) and every file."""

    format: Literal["agos-export"] = FORMAT
    version: Literal[1] = VERSION
    target: Target
    agos_version: str = __version__
    label: str  # the provenance line every figure carries
    trace: str
    trace_manifest_sha256: str
    provenance: Provenance
    density: str
    scalesim: ScaleSimDetails | None = None
    timeloop: TimeloopDetails | None = None
    npz: NpzDetails | None = None
    notes: list[str]
    files: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _details_of_the_target(self) -> ExportRecord:
        given = [t for t in ("scalesim", "timeloop", "npz") if getattr(self, t) is not None]
        if given != [self.target]:
            raise ValueError(f"an export to {self.target} holds its details under '{self.target}' only")
        return self


def export_record(trace: Trace, target: str, density: str, details: dict, notes: list[str]) -> ExportRecord:
    """The record of an export of `trace` to `target` (its files are filled in by the commit)."""
    kind = {"scalesim": ScaleSimDetails, "timeloop": TimeloopDetails, "npz": NpzDetails}[target]
    return ExportRecord(
        target=target,
        label=provenance_label(trace.provenance, density),
        trace=str(trace.path.resolve()),
        trace_manifest_sha256=trace.manifest.manifest_sha256,
        provenance=trace.provenance,
        density=density,
        **{target: kind(**details)},
        notes=notes,
    )


class StagedFolder:
    """Write an export's files (`path(name)` gives where), then `commit(provenance)`."""

    def __init__(self, out: Path) -> None:
        self.out = out
        try:
            out.mkdir(parents=True, exist_ok=True)
            self.stage = Path(tempfile.mkdtemp(prefix=".agos-export-", dir=out))
        except OSError as exc:
            raise AgosError(f"cannot write to {out}: {exc.strerror or exc}") from None

    def path(self, name: str) -> Path:
        """Where to write the export's file `name` (a relative path) before the commit."""
        target = self.stage / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def write_text(self, name: str, text: str) -> None:
        self.path(name).write_text(text, encoding="utf-8")

    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.stage)) for p in self.stage.rglob("*") if p.is_file())

    def _previous_files(self) -> list[str]:
        try:
            record = json.loads((self.out / PROVENANCE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            return []
        files = record.get("files")
        return [f for f in files if isinstance(f, str)] if isinstance(files, list) else []

    def commit(self, record: ExportRecord) -> list[str]:
        """Move the staged files into place, remove the previous export's files this one does
        not replace, and write the provenance (with the list of files) last."""
        files = self.files()
        out_root = self.out.resolve()
        for name in files:  # every target checked before any is replaced
            target = self.out / name
            if target.is_dir() and not target.is_symlink():
                raise AgosError(f"cannot write {target}: a folder is in the way; remove it")
            parent = target.parent
            while not parent.exists() and parent != self.out:
                parent = parent.parent
            if not Path(os.path.realpath(parent)).is_relative_to(out_root):
                raise AgosError(f"cannot write {target}: {parent} leads out of {self.out}; remove it")
        for name in files:
            target = self.out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.stage / name, target)  # a symlink there is replaced, never followed
        for name in set(self._previous_files()) - set(files) - {PROVENANCE}:
            stale = self.out / name
            inside = Path(os.path.realpath(stale.parent)).is_relative_to(out_root)
            if inside and (stale.is_symlink() or stale.is_file()):
                stale.unlink()
                parent = stale.parent
                while parent != self.out and parent.is_dir() and not any(parent.iterdir()):
                    parent.rmdir()  # a subfolder the earlier export made and nothing else uses
                    parent = parent.parent
        with owned_file(self.out / PROVENANCE) as f:
            f.write(json_text(record.model_copy(update={"files": files}).model_dump(mode="json")))
        self.discard()
        return files

    def discard(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)


@contextlib.contextmanager
def staged(out: Path) -> Iterator[StagedFolder]:
    """A `StagedFolder` whose staging is removed whatever happens (committed or not)."""
    folder = StagedFolder(out)
    try:
        yield folder
    finally:
        folder.discard()
