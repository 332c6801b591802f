"""`agos reproduce` on its cache: keyed on content (an edited model or a replaced image is computed
again), one run per output folder, and an interrupted check resumed without a new capture."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agos.cli import main
from agos.fileio import output_lock

MODEL = """
import torch
from torch import nn
import torch.nn.functional as F


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, WIDTH, 3, padding=1)
        self.b = nn.Conv2d(WIDTH, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.a(x)), 2)
        return self.fc(F.relu(self.b(x)).mean(dim=(2, 3)))


def make():
    return Small()
"""


def _args(out: Path, model: str, *extra: str) -> list[str]:
    return [
        "reproduce",
        "--out",
        str(out),
        "--models",
        model,
        "--batch-size",
        "2",
        "--image-size",
        "16",
        "--check-images",
        "2",
        "--arch",
        "dense,agos@rows",
        "--trained",
        "none",
        *extra,
    ]


def _stages(out: Path, kind: str) -> list[str]:
    return sorted(p.name for p in (out / "cache").iterdir() if p.name.startswith(kind))


@pytest.fixture
def user_model(tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    package.mkdir()
    module = package / "cache_model.py"
    module.write_text(MODEL.replace("WIDTH", "6"))
    monkeypatch.syspath_prepend(str(package))
    return module


@pytest.mark.slow  # 5 s; CI runs it
@pytest.mark.ci
def test_an_edited_model_is_traced_again(tmp_path, user_model, capsys):
    import importlib
    import sys

    out = tmp_path / "r"
    assert main(_args(out, "cache_model:make")) == 0
    first = _stages(out, "trace")
    assert main(_args(out, "cache_model:make")) == 0
    assert _stages(out, "trace") == first  # unchanged: served from the cache
    user_model.write_text(MODEL.replace("WIDTH", "5"))
    sys.modules.pop("cache_model", None)
    importlib.invalidate_caches()
    assert main(_args(out, "cache_model:make")) == 0
    assert len(_stages(out, "trace")) == 2
    layers = json.loads((out / "results.json").read_text())["models"]["cache_model:make"]
    assert layers["verify"]["soundness"]["bit_identical"]
    capsys.readouterr()


@pytest.mark.slow  # 6 s; CI runs it
@pytest.mark.ci
def test_replaced_images_are_read_again(tmp_path, capsys):
    folder = tmp_path / "images"
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(folder / cls / f"{i}.png")
    out = tmp_path / "r"
    args = _args(out, "tests.models:mixed", "--data", f"imagefolder:{folder}")
    assert main(args) == 0
    assert main(args) == 0
    assert len(_stages(out, "trace")) == 1
    target = folder / "b" / "1.png"
    Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(target)
    assert main(args) == 0
    assert len(_stages(out, "trace")) == 2
    capsys.readouterr()


@pytest.mark.slow  # 3 s; CI runs it
@pytest.mark.ci
def test_an_interrupted_check_is_resumed_without_a_new_capture(tmp_path, capsys):
    out = tmp_path / "r"
    args = _args(out, "tests.models:mixed")
    assert main(args) == 0
    (trace,) = _stages(out, "trace")
    (verify,) = _stages(out, "verify")
    masks = out / "cache" / trace / "trace" / "masks.bin"
    stamp = masks.stat().st_mtime_ns
    shutil.rmtree(out / "cache" / verify)
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert (
        "training step: capture and verify (cached)" in err and "losslessness on the captured batch …" in err
    )
    assert masks.stat().st_mtime_ns == stamp and _stages(out, "trace") == [trace]
    record = json.loads((out / "cache" / verify / "verification.json").read_text())
    assert (
        record["soundness"]["bit_identical"] and record["soundness"]["reference"] == "a plain autograd step"
    )
    assert record["engine"]["step"]["problem"] is None


def test_one_run_per_output_folder(tmp_path, capsys):
    out = tmp_path / "r"
    with output_lock(out, "reproduce"):
        code = main(_args(out, "tests.models:mixed"))
    err = capsys.readouterr().err
    assert code != 0 and "is in use by another agos reproduce (pid" in err
    assert not (out / "cache").exists()
