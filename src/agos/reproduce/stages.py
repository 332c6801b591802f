"""Content-addressed stage outputs, so an interrupted run restarts where it stopped.

A stage's key is the SHA-256 of its name and inputs (which include the keys of the stages it reads
and the agos version). Its output is a directory under `cache/`, built in a temporary sibling and
renamed into place only when complete: a key that exists is a finished stage.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from agos import __version__


class StageCache:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(stage: str, inputs: dict) -> str:
        text = json.dumps(
            {"stage": stage, "agos": __version__, "inputs": inputs}, sort_keys=True, default=str
        )
        return f"{stage}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"

    def path(self, key: str) -> Path:
        return self.root / key

    def done(self, key: str) -> bool:
        return (self.root / key).is_dir()

    def build(self, key: str, inputs: dict, make: Callable[[Path], None]) -> Path:
        """Run `make(tmp_dir)` unless the stage is already done; return the stage directory."""
        final = self.root / key
        if final.is_dir():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
        try:
            (tmp / "inputs.json").write_text(json.dumps(inputs, indent=1, sort_keys=True, default=str))
            start = time.perf_counter()
            make(tmp)
            (tmp / "stage.json").write_text(json.dumps({"seconds": time.perf_counter() - start}))
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def seconds(self, key: str) -> float:
        """How long the stage took when it was computed (0 for one not built yet)."""
        meta = self.root / key / "stage.json"
        return json.loads(meta.read_text())["seconds"] if meta.is_file() else 0.0

    def sweep(self) -> None:
        """Remove the half-built directories an interrupted run left behind."""
        for leftover in self.root.glob(".*"):
            shutil.rmtree(leftover, ignore_errors=True)
