from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch

os.environ.setdefault("AGOS_PROGRESS", "0")
warnings.filterwarnings("ignore", category=UserWarning)
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def mixed_trace(tmp_path_factory) -> Path:
    """A small real trace of tests.models:mixed, captured once per test session."""
    from agos.api import trace as capture_trace
    from agos.inputs.options import RunOptions

    out = tmp_path_factory.mktemp("traces") / "mixed"
    capture_trace(
        RunOptions(model="tests.models:mixed", batch_size=4, image_size=16, seed=3, device="cpu"), out
    )
    return out


@pytest.fixture(scope="session")
def resnet18_trace(tmp_path_factory) -> Path:
    from agos.api import trace as capture_trace
    from agos.inputs.options import RunOptions

    out = tmp_path_factory.mktemp("traces") / "resnet18"
    capture_trace(RunOptions(model="resnet18", batch_size=2, image_size=64, seed=0, device="cpu"), out)
    return out
