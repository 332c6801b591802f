"""Which weights a trajectory visits: a user's checkpoint files (a list or a glob), or snapshots
agos takes itself while training a model for N steps. Every point knows its training step, so the
table and the plot are ordered by training progress, not by file name."""

from __future__ import annotations

import glob
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from agos.errors import AgosError
from agos.fileio import owned_file
from agos.inputs.session import MAX_STEPS, PreparedRun, train_steps
from agos.stages.resolve import file_sha256

STEP_KEYS = ("step", "global_step", "iteration", "epoch")


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int
    step_source: str  # the checkpoint's own key, "file name" or "order"
    sha256: str


def _expand(text: str) -> list[Path]:
    paths: list[Path] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if glob.has_magic(item):
            found = sorted(Path(p) for p in glob.glob(str(Path(item).expanduser())))
            if not found:
                raise AgosError(f"--checkpoints: no file matches {item}")
            paths += [p for p in found if p.is_file()]
        else:
            path = Path(item).expanduser()
            if not path.is_file():
                raise AgosError(f"--checkpoints: {item} does not exist or is not a file")
            paths.append(path)
    unique = list(dict.fromkeys(p.resolve() for p in paths))
    if not unique:
        raise AgosError("--checkpoints names no file")
    return unique


def _step_of(path: Path) -> tuple[int | None, str]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # unreadable files are reported by the weights loader, with its own line
        obj = None
    if isinstance(obj, dict):
        for key in STEP_KEYS:
            value = obj.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value, f"checkpoint key '{key}'"
    numbers = re.findall(r"\d+", path.stem)
    if numbers:
        return int(numbers[-1]), "file name"
    return None, "order"


def resolve_checkpoints(text: str) -> list[Checkpoint]:
    """The files, with their training step: the checkpoint's `step` (or global_step, iteration,
    epoch) key, else the last number in the file name, else their order; sorted by step."""
    found = []
    for i, path in enumerate(_expand(text)):
        step, source = _step_of(path)
        if step is not None and not 0 <= step <= MAX_STEPS:
            raise AgosError(
                f"--checkpoints: {path} is at step {step} (its {source}); a training step is between 0 "
                f"and {MAX_STEPS:,}"
            )
        found.append(Checkpoint(path, i if step is None else step, source, file_sha256(path)))
    if any(c.step_source == "order" for c in found) and len({c.step_source for c in found}) > 1:
        raise AgosError("--checkpoints: some files carry a step and some do not; name them all alike")
    steps = [c.step for c in found]
    if len(set(steps)) != len(steps):
        twice = sorted({s for s in steps if steps.count(s) > 1})
        raise AgosError(f"--checkpoints: two files are at the same step ({', '.join(map(str, twice))})")
    return sorted(found, key=lambda c: c.step)


def snapshot_steps(steps: int, every: int) -> list[int]:
    if not 1 <= steps <= MAX_STEPS:
        raise AgosError(f"--train-steps must be between 1 and {MAX_STEPS:,} for a trajectory (got {steps})")
    if not 1 <= every <= steps:
        raise AgosError(f"--every must be between 1 and --train-steps ({steps}) (got {every})")
    return sorted({*range(0, steps + 1, every), steps})


def _snapshot_path(folder: Path, step: int) -> Path:
    return folder / f"step-{step:06d}.pt"


def train_with_snapshots(
    run: PreparedRun, steps: int, every: int, folder: Path, identity: dict
) -> list[Checkpoint]:
    """Train `steps` SGD steps on batches 0…steps−1, saving weights and optimizer state at step 0
    and every `every` steps. A run that was stopped continues from its last snapshot: the batches
    and the per-step random state depend on the step number only, so the result is the same."""
    cfg = run.options.warm_up
    wanted = snapshot_steps(steps, every)
    folder.mkdir(parents=True, exist_ok=True)
    identity_file = folder / "training.json"
    ident_text = json.dumps(identity, sort_keys=True, indent=1) + "\n"
    if identity_file.is_file() and identity_file.read_text() != ident_text:
        raise AgosError(
            f"{folder} holds the snapshots of another training run (model, data, seed or SGD settings "
            "differ): use another --out"
        )
    with owned_file(identity_file) as f:
        f.write(ident_text)
    optimizer = torch.optim.SGD(
        run.model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    done = [s for s in wanted if _snapshot_path(folder, s).is_file()]
    start = 0
    if done:  # continue from the last snapshot that exists
        start = done[-1]
        saved = torch.load(_snapshot_path(folder, start), map_location=run.device, weights_only=True)
        run.model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
    for target in (s for s in wanted if s >= start):
        if target > start:
            train_steps(run, optimizer, start, target, f"train {run.spec.name}")
            start = target
        path = _snapshot_path(folder, target)
        if not path.is_file():
            state = {k: v.detach().cpu() for k, v in run.model.state_dict().items()}
            with owned_file(path, "wb") as f:
                torch.save({"model": state, "optimizer": optimizer.state_dict(), "step": target}, f)
    return [
        Checkpoint(_snapshot_path(folder, s), s, "snapshot", file_sha256(_snapshot_path(folder, s)))
        for s in wanted
    ]
