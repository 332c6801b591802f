"""`--model timm:NAME`: timm CNNs of several families trace, keep their masks sound and simulate."""

from __future__ import annotations

import copy

import pytest
import torch

from agos.capture.recorder import capture_step
from agos.capture.verify import compare_gradients, masked_step_gradients
from agos.inputs.models import build_model, model_fingerprint, resolve_model
from agos.inputs.training import plain_step
from tests.cli_helpers import one_error_line, run_cli
from tests.models import REAL_NETWORK

pytest.importorskip("timm")


@pytest.mark.parametrize(
    "name,skips",
    [
        # timm's own tiny test networks in the default tier; the real families in CI
        ("timm:test_resnet", True),  # ResNet: BN → ReLU
        ("timm:test_byobnet", True),  # BYOB: bottleneck and basic blocks, residual adds
        ("timm:test_efficientnet", False),  # SiLU (no output sparsity), depthwise, squeeze-excite
        pytest.param("timm:resnet18", True, marks=REAL_NETWORK),
        pytest.param("timm:regnetx_002", True, marks=REAL_NETWORK),  # grouped convs
        pytest.param("timm:mobilenetv2_050", True, marks=REAL_NETWORK),  # ReLU6
        pytest.param("timm:efficientnet_b0", False, marks=REAL_NETWORK),
    ],
)
def test_timm_families_capture_soundly(name, skips):
    model = build_model(resolve_model(name), seed=0)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([1, 2])
    plain = copy.deepcopy(model)
    plain_step(plain, images, labels, seed=1)
    result = capture_step(copy.deepcopy(model), images, labels, seed=1)
    assert len(result.layers) > 10
    reference = {n: p.grad for n, p in plain.named_parameters() if p.grad is not None}
    grads, zeroed = masked_step_gradients(copy.deepcopy(model), images, labels, 1, result)
    same, worst, differing = compare_gradients(reference, grads)
    assert same, f"{name}: {differing[:3]} differ ({worst})"
    assert (zeroed > 0.05) == skips, zeroed


def test_timm_names_are_checked_and_fingerprinted(capsys, tmp_path):
    code, _, err = run_cli(capsys, "trace", "--out", str(tmp_path / "t"), "--model", "timm:resnet181")
    line = one_error_line(err)
    assert code != 0 and "unknown timm model 'resnet181'" in line and "timm:resnet18" in line
    assert model_fingerprint("timm:resnet18").startswith("timm 1.")
    code, _, err = run_cli(
        capsys, "trace", "--out", str(tmp_path / "t"), "--model", "timm:resnet18", "--weights", "imagenet"
    )
    assert code != 0 and "agos never downloads" in one_error_line(err)
