"""An export's folder: its files staged out of sight, moved into place together, provenance last.

Every file of one export is written into a hidden staging folder inside `--out`; only when all are
written are they renamed into place (each rename atomic), and `provenance.json` — which names the
trace, the density source and every file of the export — is written last. A failed export leaves
the folder as it was. Files that an earlier export into the same folder wrote (its provenance lists
them) and this one does not write again are removed, so no stale workload outlives a re-export;
files agos did not write are never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from agos import __version__
from agos.capture.trace import Trace
from agos.errors import AgosError
from agos.fileio import json_text, owned_file
from agos.inputs.provenance import provenance_label

PROVENANCE = "provenance.json"
FORMAT = "agos-export"
FORMAT_VERSION = 1


def provenance(trace: Trace, target: str, density: str, **extra) -> dict:
    """Where an export came from: the trace (path and checksum), what it was captured from
    (model, weights, data, batch, image size, seed) and the density source of its masks."""
    prov = trace.provenance
    weights = prov.get("weights") or {}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "target": target,
        "agos": __version__,
        "label": provenance_label(prov, density),
        "trace": str(trace.path.resolve()),
        "trace_manifest_sha256": trace.manifest.manifest_sha256,
        "model": prov.get("model"),
        "weights": {"source": weights.get("source"), "sha256": weights.get("sha256")},
        "data": (prov.get("data") or {}).get("source"),
        "batch_size": prov.get("batch_size"),
        "image_size": prov.get("image_size"),
        "seed": prov.get("seed"),
        "density": density,
        **extra,
    }


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

    def commit(self, record: dict) -> list[str]:
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
            f.write(json_text({**record, "files": files}))
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
