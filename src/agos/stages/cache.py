"""The one content-addressed cache of agos: `reproduce`, `trajectory` and `sweep` keep their traces,
proofs, analyses and sweep points in it, so that an interrupted run restarts where it stopped and a
repeated one is instant.

A stage's key is the SHA-256 of its name, the agos version and its inputs; inputs are fingerprints
of bytes (the model's code, the weights file, the images read, the design and its tables) and the
keys of the stages it reads, never option text: a retrained weights file or an edited model is a
new key, so a stale result cannot be served. An entry is a directory, built aside and renamed into
place when complete (`fileio.atomic_dir`): a key that exists is a finished stage."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from agos import __version__
from agos.fileio import atomic_dir, json_text, write_json
from agos.record import read_record

R = TypeVar("R", bound=BaseModel)
INPUTS, META = "inputs.json", "stage.json"


def stage_key(stage: str, inputs: dict) -> str:
    text = json.dumps({"stage": stage, "agos": __version__, "inputs": inputs}, sort_keys=True, default=str)
    return f"{stage}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"


class Cache:
    def __init__(self, root: Path | str):
        self.root = Path(root)  # made when the first stage is written

    key = staticmethod(stage_key)

    def path(self, key: str) -> Path:
        return self.root / key

    def done(self, key: str) -> bool:
        return (self.root / key / META).is_file()

    def build(self, key: str, inputs: dict, make: Callable[[Path], None]) -> Path:
        """Run `make(folder)` unless the stage is done; return the stage's folder."""
        final = self.root / key
        if self.done(key):
            return final
        with atomic_dir(final, replace=True) as tmp:
            (tmp / INPUTS).write_text(json_text(json.loads(json.dumps(inputs, default=str))))
            start = time.perf_counter()
            make(tmp)
            (tmp / META).write_text(json.dumps({"seconds": time.perf_counter() - start}))
        return final

    def put(self, key: str, inputs: dict, name: str, record: BaseModel, seconds: float = 0.0) -> Path:
        """Store a record computed elsewhere (a sweep point from a worker) as a finished stage."""
        final = self.root / key
        with atomic_dir(final, replace=True) as tmp:
            (tmp / INPUTS).write_text(json_text(json.loads(json.dumps(inputs, default=str))))
            write_json(record.model_dump(mode="json"), tmp / name)
            (tmp / META).write_text(json.dumps({"seconds": seconds}))
        return final

    def read(self, key: str, name: str, cls: type[R]) -> R:
        """A record a finished stage holds (typed; a file of another format is one line)."""
        return read_record(cls, self.root / key / name)

    def seconds(self, key: str) -> float:
        """How long the stage took when it was computed (0 for one not built yet)."""
        meta = self.root / key / META
        return json.loads(meta.read_text())["seconds"] if meta.is_file() else 0.0

    def sweep(self) -> None:
        """Remove the half-built directories an interrupted run left behind."""
        for leftover in self.root.glob(".*"):
            shutil.rmtree(leftover, ignore_errors=True)


def announcer(console, label: str) -> Callable[[str, bool], None]:
    """`say(what, cached)` for the stages of one model or point: one line each on the console."""

    def say(what: str, cached: bool) -> None:
        if console is not None:
            console.print(f"[bold]{label}[/bold] · {what}" + (" [dim](cached)[/dim]" if cached else " …"))

    return say
