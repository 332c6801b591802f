"""No half-written files: everything agos writes goes through a temporary sibling and a rename."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pydantic_core

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


def owned_target(path: Path | str) -> Path:
    """Where writing a file agos owns lands: `path` itself. A symlink planted there is replaced,
    never written through (it may point out of the output folder); a directory is refused."""
    path = Path(path)
    if not path.is_symlink() and path.exists() and not path.is_file():
        raise AgosError(f"cannot write {path}: something that is not a file is in the way; remove it")
    return path


@contextlib.contextmanager
def atomic_file(path: Path | str, mode: str = "w", owned: bool = False) -> Iterator[IO]:
    """Write a temporary sibling, then rename it over the target: a reader never sees half a file.
    A path the user named is written through a symlink to the file it names (`writable_target`);
    a file agos owns inside its output folder (`owned`, see `owned_file`) replaces whatever is
    there. An existing file keeps its permissions; a new one gets the umask's."""
    path = owned_target(path) if owned else writable_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:200]}.", dir=path.parent)
    except OSError as exc:
        raise AgosError(f"cannot write {path}: {exc.strerror or exc}") from None
    regular = path.is_file() and not path.is_symlink()
    permissions = path.stat().st_mode & 0o7777 if regular else 0o666 & ~_umask()
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


def owned_file(path: Path | str, mode: str = "w") -> contextlib.AbstractContextManager[IO]:
    """Write a file that agos owns inside an output folder it writes (results.csv, trajectory.json,
    index.html, a snapshot): atomically, and by replacing — a symlink planted in the folder is
    unlinked by the rename, so nothing outside the folder is ever written."""
    return atomic_file(path, mode, owned=True)


NAME_MAX = 255  # bytes in one file name (Linux, macOS)
PATH_MAX = 4095


def check_output_path(path: Path | str, what: str, folder: bool) -> Path:
    """An output path checked before any work: not empty, names not too long, not below a file, in
    a folder this user may write, and not something of the other kind (a folder where a file goes,
    or a file where a folder goes). Each problem is one AgosError line naming `what` (the option)."""
    text = str(path)
    if not text.strip():
        raise AgosError(f"{what} is empty: name a {'folder' if folder else 'file'}")
    path = Path(text).expanduser()
    long = next((p for p in path.parts if len(os.fsencode(p)) > NAME_MAX), None)
    if long is not None:
        size = len(os.fsencode(long))
        raise AgosError(f"{what}: the name '{long[:40]}…' is {size} bytes long; at most {NAME_MAX}")
    if len(os.fsencode(str(path.absolute()))) > PATH_MAX:
        raise AgosError(f"{what}: the path is longer than {PATH_MAX} bytes")
    existing = path
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    if existing == path:
        if folder and not path.is_dir():
            raise AgosError(f"{what} {path} exists and is not a folder")
        if not folder and path.is_dir():
            raise AgosError(f"{what} {path} is a folder; name a file")
        writable = path if folder else Path(os.path.realpath(path)).parent
    else:
        if not existing.is_dir():
            raise AgosError(f"{what} {path}: {existing} is a file, so nothing can be made below it")
        writable = existing
    if not os.access(writable, os.W_OK | os.X_OK):
        raise AgosError(f"{what} {path}: the folder {writable} is not writable")
    return path


@contextlib.contextmanager
def atomic_dir(path: Path | str, replace: bool = False, what: str = "") -> Iterator[Path]:
    """Build a directory in a temporary sibling (yielded), then rename it into place: a reader never
    sees half of one, and a failure leaves nothing behind. An existing directory at `path` is
    swapped out and removed with `replace` (should the swap fail, the old one is back in place and
    no `.old-*` folder is left); without it, one that appeared meanwhile (a concurrent build of the
    same content-addressed stage) is kept and the new one discarded. `what` names the directory in
    the one-line error (e.g. "the trace")."""
    path = Path(path)
    named = f"{what} {path}" if what else str(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    except OSError as exc:
        raise AgosError(f"cannot write {named}: {exc.strerror or exc}") from None
    try:
        yield tmp
        if replace or not path.exists():
            try:
                _swap_in(tmp, path)
            except OSError as exc:
                raise AgosError(f"cannot write {named}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when the swap succeeded


def _swap_in(new: Path, out: Path) -> None:
    """Put the directory `new` at `out`, replacing an old one there; on any failure the old one is
    back where it was and no `.old-*` folder is left."""
    if not out.exists():
        os.rename(new, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    try:
        os.rename(out, old / out.name)
    except BaseException:
        old.rmdir()
        raise
    try:
        os.rename(new, out)
    except BaseException:
        os.rename(old / out.name, out)  # should this fail too, `old` keeps the folder: never deleted
        old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)


def json_text(value) -> str:
    """Strict JSON (`allow_nan=False`: an undefined ratio is null, never a bare NaN or Infinity that
    other parsers reject), ASCII, one space per level. Serialised by pydantic-core: the standard
    library's encoder took ten times as long on an analysis (3 MB of nested figures)."""
    return pydantic_core.to_json(value, indent=1, ensure_ascii=True, inf_nan_mode="null").decode() + "\n"


def write_text(text: str, path: Path | str, owned: bool = False) -> None:
    """Text, atomically; `owned`: a file in agos's own output folder (`owned_file`)."""
    with atomic_file(path, owned=owned) as f:
        f.write(text)


def write_json(value, path: Path | str, owned: bool = False) -> None:
    """Strict JSON (`json_text`), atomically; `owned`: a file in agos's own output folder."""
    write_text(json_text(value), path, owned)


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
