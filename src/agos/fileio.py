"""No half-written files: everything agos writes goes through a temporary sibling and a rename."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from agos.errors import AgosError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def writable_target(path: Path | str) -> Path:
    """Where writing `path` lands: through a symlink to the file it names; refused (AgosError) when
    that is a directory, a device, a FIFO or a socket, which a rename would silently replace."""
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    if path.exists() and not path.is_file():
        what = "a directory" if path.is_dir() else "not a regular file (a device, FIFO or socket)"
        raise AgosError(f"cannot write {path}: it is {what}; name a regular file")
    return path


@contextlib.contextmanager
def atomic_file(path: Path | str, mode: str = "w") -> Iterator[IO]:
    """Write a temporary sibling, then rename it over the target: a reader never sees half a file.
    An existing file keeps its permissions; a new one gets the umask's."""
    path = writable_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise AgosError(f"cannot write {path}: {exc.strerror or exc}") from None
    permissions = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask()
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, permissions)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def finite_json(value):
    """The value with every NaN/inf float as null: agos's JSON is strict JSON (`allow_nan=False`),
    and an undefined ratio is null, never a bare NaN that other parsers reject."""
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(value) -> str:
    return json.dumps(finite_json(value), indent=1, allow_nan=False) + "\n"


def write_json(value, path: Path | str) -> None:
    with atomic_file(path) as f:
        f.write(json_text(value))


@contextlib.contextmanager
def output_lock(out: Path, command: str) -> Iterator[None]:
    """One run per output folder: a second one is refused instead of sweeping the first one's
    half-built stages. The lock is the kernel's (flock), so a killed run leaves none behind."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(out / ".agos-lock", "a+")  # noqa: SIM115 — held for the whole run
    except OSError as exc:
        raise AgosError(f"cannot write to {out}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise AgosError(
                f"{out} is in use by another agos {command} ({holder}); wait for it or use another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


OUTPUT_MARKER = ".agos-output"  # written by agos into every folder a command makes
_OURS = {OUTPUT_MARKER, ".agos-lock"}


def _run_id(run: dict) -> str:
    return hashlib.sha256(json.dumps(run, sort_keys=True, default=str).encode()).hexdigest()


class OutputClaim:
    """A command's right to write its folder, checked by `claim_output`. Used as a context: the
    folder is made and marked on entry (unless `make` is off: a trace folder is swapped into
    place whole, so the trace marks it after the swap). When the run fails, a folder it made that
    holds nothing but the marker is removed again (no half-made output), and a folder it found
    gets its previous marker back (a failed forced run does not take over another run's folder)."""

    def __init__(self, out: Path, command: str, run: dict, label: str, make: bool) -> None:
        self.out, self.command, self.run, self.label, self.make = out, command, run, label, make
        self.created = not out.exists()
        marker = out / OUTPUT_MARKER
        self.previous = marker.read_bytes() if marker.is_file() else None

    def mark(self) -> None:
        record = {"command": self.command, "run": _run_id(self.run), "label": self.label}
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AgosError(f"cannot write to {self.out}: {exc.strerror or exc}") from None
        write_json(record, self.out / OUTPUT_MARKER)

    def __enter__(self) -> OutputClaim:
        if self.make:
            self.mark()
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None or not self.out.is_dir():
            return
        if not self.created:
            with contextlib.suppress(OSError):
                if self.previous is None:
                    (self.out / OUTPUT_MARKER).unlink(missing_ok=True)
                else:
                    with atomic_file(self.out / OUTPUT_MARKER, "wb") as f:
                        f.write(self.previous)
            return
        with contextlib.suppress(OSError):
            if {p.name for p in self.out.iterdir()} <= _OURS:
                for name in _OURS:
                    with contextlib.suppress(FileNotFoundError):
                        (self.out / name).unlink()
                self.out.rmdir()


def claim_output(
    out: Path | str, command: str, run: dict, label: str, force: bool, make: bool = True
) -> OutputClaim:
    """The one rule for every command that writes a folder (`--out DIR`): DIR may be missing or
    empty, or hold this same run of this command (the same settings: it is continued or redone);
    a folder agos did not make, or one holding another run, is refused in one line unless `force`.
    `run`: what identifies the run (its settings); `label`: how the refusal names it. Use the
    result as a context around the command's work (`OutputClaim`)."""
    out = Path(out)
    claim = OutputClaim(out, command, run, label, make)
    if out.exists() and not out.is_dir():
        raise AgosError(f"--out {out} exists and is not a folder; name a folder")
    try:
        entries = {p.name for p in out.iterdir()} if out.is_dir() else set()
    except OSError as exc:
        raise AgosError(f"cannot read --out {out}: {exc.strerror or exc}") from None
    if entries - _OURS and not force:
        marker = out / OUTPUT_MARKER
        try:
            record = json.loads(marker.read_text())
        except (OSError, ValueError):
            record = None
        other = record.get("command") if isinstance(record, dict) else None
        if other != command:
            held = f" (it holds an agos {other} output)" if other else ""
            raise AgosError(
                f"--out {out} is not empty and was not made by agos {command}{held}; choose another "
                "--out, or add --force to write into it"
            )
        if record.get("run") != _run_id(run):
            raise AgosError(
                f"--out {out} holds another agos {command} run ({record.get('label') or 'other settings'}), "
                f"not this one ({label}); choose another --out, or add --force to replace it"
            )
    return claim
