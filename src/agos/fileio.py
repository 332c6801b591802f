"""No half-written files: everything agos writes goes through a temporary sibling and a rename."""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shutil
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


@contextlib.contextmanager
def atomic_dir(path: Path | str, replace: bool = False, what: str = "") -> Iterator[Path]:
    """Build a directory in a temporary sibling (yielded), then rename it into place: a reader never
    sees half of one, and a failure leaves nothing behind. An existing directory at `path` is
    swapped out and removed with `replace`; without it, one that appeared meanwhile (a concurrent
    build of the same content-addressed stage) is kept and the new one discarded. `what` names the
    directory in the one-line error (e.g. "the trace")."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    except OSError as exc:
        named = f"{what} {path}" if what else str(path)
        raise AgosError(f"cannot write {named}: {exc.strerror or exc}") from None
    try:
        yield tmp
        if path.exists() and replace:
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.rename(path, old / path.name)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        elif path.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
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
