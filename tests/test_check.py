"""`agos check` and `sparse_training`: the sparse engine trains like autograd on real models, and the
check fails when a mask is wrong."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from agos.cli import main
from agos.engine import sparse_training
from agos.engine import training as engine_training
from agos.engine.check import run_check
from agos.inputs.models import build_model, resolve_model
from agos.inputs.options import RunOptions
from agos.inputs.session import prepare
from agos.inputs.training import plain_step
from tests.models import REAL_NETWORK, TINY


def _options(model: str, size: int, batch: int = 2) -> RunOptions:
    return RunOptions(model=model, batch_size=batch, image_size=size, seed=0, device="cpu")


def _assert_passes(report, graph: str = "torch.fx") -> None:
    assert report.graph.startswith(graph), report.graph
    for step in report.steps:
        assert step.problem is None, step.problem
        # the forward is the model's own arithmetic on the same weights in all three runs
        assert step.loss_sparse == step.loss_autograd == step.loss_float64
        assert 0 <= step.ratio <= 1
    assert report.passed


@pytest.mark.parametrize(
    "name,size",
    [
        pytest.param("resnet18", 64, marks=REAL_NETWORK),  # mobilenet_v2 has BN+add
        pytest.param("mobilenet_v2", 64, marks=REAL_NETWORK),
        (TINY["mobilenet_v2"], 32),  # the default tier: its tiny twin (BN + add, ReLU6, depthwise)
        pytest.param("alexnet", 64, marks=pytest.mark.slow),  # its rules: test_capture_soundness (ci)
        pytest.param(
            "googlenet", 64, marks=[pytest.mark.slow, pytest.mark.ci]
        ),  # its concat rules: test_capture_soundness
        pytest.param("vgg16", 32, marks=pytest.mark.slow),  # ~30 s: four copies of 138M parameters
    ],
)
def test_check_passes_on_torchvision_models(name, size):
    report = run_check(prepare(_options(name, size)), steps=2)
    _assert_passes(report)
    first = report.steps[0]
    assert first.bwd_data_skipped > 0.2 and first.bwd_weight_skipped > 0.1
    assert first.loss_plain == first.loss_sparse  # both runs start from the same weights


def test_check_on_every_mask_rule_and_sparse_forward():
    report = run_check(prepare(_options("tests.models:mixed", 16, batch=4)), steps=3)
    _assert_passes(report)
    forward = run_check(prepare(_options("tests.models:mixed", 16, batch=4)), steps=1, sparse_forward=True)
    assert forward.passed, forward.steps[0].problem


def test_check_on_a_model_fx_cannot_trace():
    report = run_check(prepare(_options("tests.models:data_dependent", 16)), steps=2)
    _assert_passes(report, graph="autograd (not traceable")


def test_cli_check_prints_the_table_and_exits_zero(capsys):
    code = main(["check", "--model", "tests.models:mixed", "--image-size", "16", "--batch-size", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "agos check — tests.models:mixed" in out and "batch 2" in out and "PASS" in out
    assert "BWD-D skipped" in out and "loss plain run" in out and "bit-identical" in out


def _drop_one_needed(monkeypatch, layer: str) -> None:
    """Make the masks wrong: the first needed dX element of `layer` is declared not needed."""
    original = engine_training._SparseInterpreter.needed_mask

    def needed_mask(self, site, x):
        needed, reason = original(self, site, x)
        if site.name == layer and needed is not None:
            needed = needed.clone()
            flat = needed.view(-1)
            flat[flat.nonzero()[0]] = False
        return needed, reason

    monkeypatch.setattr(engine_training._SparseInterpreter, "needed_mask", needed_mask)


@pytest.mark.parametrize(
    ("model", "layer"),
    [
        (TINY["resnet18"], "fc"),
        (TINY["resnet18"], "layer4.1.conv1"),
        pytest.param("resnet18", "layer4.1.conv1", marks=REAL_NETWORK),
    ],
)
def test_a_wrong_mask_fails_the_check(monkeypatch, model, layer):
    _drop_one_needed(monkeypatch, layer)
    report = run_check(prepare(_options(model, 32)), steps=1)
    assert not report.passed
    worst = report.steps[0].worst
    assert report.steps[0].ratio > 100, worst
    assert worst.diff > 1e-3 * worst.scale  # far beyond any rounding


def test_cli_check_fails_with_one_line(monkeypatch, capsys):
    _drop_one_needed(monkeypatch, "fc")
    code = main(
        ["check", "--model", TINY["resnet18"], *("--image-size", "32", "--batch-size", "2", "--steps", "1")]
    )
    err = capsys.readouterr().err
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("agos: check failed: step 1: gradient of"), err


def test_bad_steps_is_one_line(capsys):
    code = main(["check", "--model", "tests.models:mixed", "--image-size", "16", "--steps", "0"])
    assert code != 0 and "--steps must be between 1 and" in capsys.readouterr().err


def test_sparse_training_context_leaves_the_model_as_it_was():
    model = build_model(resolve_model("tests.models:mixed"), seed=0)
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1])
    reference = copy.deepcopy(model)
    with sparse_training(model) as engine:
        plain_step(model, images, labels, seed=1)
        with pytest.raises(ValueError, match="already patched"), sparse_training(model):
            pass
        work = engine.take_layers()
        model.eval()
        with torch.no_grad():
            model(images)  # eval mode: the model's own forward, nothing recorded
        assert engine.take_layers() == []
    assert "forward" not in model.__dict__
    assert [w.name for w in work] == ["stem", "a", "b", "c", "d", "e", "f", "g", "h", "fc"]
    assert work[0].bwd_data_products is None and not work[0].needs_bwd_data  # first layer: no BWD-D
    assert work[4].dx_reason is None and work[5].dx_reason is not None  # cat of ReLUs vs BN after ReLU
    assert all(w.bwd_weight_products is not None for w in work)
    plain_step(reference, images, labels, seed=1)
    for (name, p), (_, q) in zip(reference.named_parameters(), model.named_parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-7, msg=name)


def _float64_by_autograd(layer: torch.nn.Module, x: torch.Tensor, dy: torch.Tensor) -> list[torch.Tensor]:
    """The float64 twin's first formulation: autograd through the layer's forward rerun in float64,
    the gradients rounded once to float32."""
    params = [layer.weight] + ([layer.bias] if layer.bias is not None else [])
    x64 = x.detach().double().requires_grad_()
    p64 = [p.detach().double().requires_grad_() for p in params]
    if isinstance(layer, torch.nn.Conv2d):
        y = layer._conv_forward(x64, p64[0], p64[1] if len(p64) > 1 else None)
    else:
        y = torch.nn.functional.linear(x64, *p64)
    return [g.float() for g in torch.autograd.grad(y, [x64, *p64], dy.double())]


@pytest.mark.parametrize(
    "layer,x_shape",
    [
        (nn.Conv2d(6, 9, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=3), (3, 6, 11, 9)),
        (torch.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False), (2, 8, 9, 9)),  # depthwise
        (torch.nn.Conv2d(5, 7, 1), (2, 5, 6, 6)),
        (torch.nn.Conv2d(4, 6, 3, padding="same", dilation=2), (2, 4, 7, 7)),  # autograd's way
        (torch.nn.Linear(13, 5), (4, 13)),
        (torch.nn.Linear(13, 5, bias=False), (2, 3, 13)),
    ],
)
def test_float64_twin_equals_float64_autograd_bit_for_bit(layer, x_shape):
    """The twin's direct `convolution_backward` gives the very bits autograd gives for the layer's
    forward rerun in float64 (a long sum of float32 values cancelling, so a different order or a
    float32 step would show)."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 1e3)
    x = torch.randn(x_shape, generator=gen).relu().requires_grad_()
    direct = isinstance(layer, torch.nn.Conv2d) and not isinstance(layer.padding, str)
    assert engine_training._direct_conv(layer, x) == direct  # no forward rerun for plain convs
    with engine_training.float64_backward(layer):
        y = layer(x)
    dy = torch.randn(y.shape, generator=gen)
    twin = torch.autograd.grad(y, [x, *layer.parameters()], dy)
    for got, expected in zip(twin, _float64_by_autograd(layer, x, dy), strict=True):
        assert got.dtype == torch.float32 and torch.equal(got, expected)
    # only the gradients asked for are formed
    with engine_training.float64_backward(layer):
        y = layer(x.detach())
    (dw,) = torch.autograd.grad(y, [layer.weight], dy)
    assert torch.equal(dw, _float64_by_autograd(layer, x, dy)[1])


class _Drifting(nn.Module):
    """A training forward that reads a buffer and changes it: every run of a judged step must start
    from the buffer as the model had it (as a fresh copy would)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)
        self.register_buffer("scale", torch.ones(()))

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x))) * self.scale.clone()
        self.scale.add_(1.0)
        return self.fc(x.mean(dim=(2, 3)))


@pytest.mark.parametrize("model", ["tests.models:mixed", "drifting"])
def test_check_batch_runs_on_the_model_and_leaves_it_as_it_was(model):
    """`check_batch` runs its three steps on the model itself, not on copies: each from the buffers
    as found, and the model's buffers, gradients and modes are put back afterwards."""
    from agos.engine.check import check_batch

    model = _Drifting() if model == "drifting" else build_model(resolve_model(model), seed=0)
    model.eval()
    model.get_submodule("conv" if isinstance(model, _Drifting) else "stem").train()
    some = next(model.parameters())
    some.grad = torch.full_like(some, 3.0)
    before = copy.deepcopy(model)
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1])
    step, graph = check_batch(model, images, labels, seed=1)
    assert step.problem is None and step.loss_sparse == step.loss_autograd == step.loss_float64
    assert graph == "torch.fx"
    for (name, a), b in zip(before.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(some.grad, torch.full_like(some, 3.0))
    assert all(p.grad is None for p in list(model.parameters())[1:])
    assert [m.training for m in model.modules()] == [m.training for m in before.modules()]
    assert "forward" not in model.__dict__ and not any("forward" in m.__dict__ for m in model.modules())
    again, _ = check_batch(model, images, labels, seed=1)
    assert (again.loss_sparse, again.worst) == (step.loss_sparse, step.worst)
