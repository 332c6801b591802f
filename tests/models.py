"""Small models for tests, also importable as `--model tests.models:NAME`."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn


class Mixed(nn.Module):
    """Every mask rule in one graph: ReLU, ReLU6, max/avg pool, cat, dropout, flatten, residual
    add + ReLU, BN after ReLU, SiLU, GELU, grouped and depthwise convs, a Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a = nn.Conv2d(8, 8, 3, padding=1, bias=False)  # X: MaxPool ← ReLU
        self.bn_a = nn.BatchNorm2d(8)
        self.b = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2)  # X: ReLU(bn + residual)
        self.c = nn.Conv2d(8, 8, 3, padding=1, groups=8)  # depthwise; X: ReLU6
        self.d = nn.Conv2d(16, 12, 1)  # X: cat(ReLU, ReLU6)
        self.bn_after = nn.BatchNorm2d(12)
        self.e = nn.Conv2d(12, 6, 3, padding=2, dilation=2)  # X: BN ← ReLU (conservative)
        self.f = nn.Conv2d(6, 6, 1)  # X: SiLU (conservative)
        self.g = nn.Conv2d(6, 6, 1)  # X: AvgPool ← ReLU
        self.h = nn.Conv2d(6, 4, 1)  # X: GELU (conservative)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(4 * 4 * 4, 5)  # X: Dropout ← flatten ← ReLU
        with torch.no_grad():  # keep the tail alive at init so every mask is non-trivial
            self.h.bias.fill_(0.05)
            self.g.bias.fill_(0.05)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = F.max_pool2d(x, 2)
        y = self.bn_a(self.a(x))
        x = F.relu(y + x)
        x = F.relu(self.b(x))
        z = F.relu6(self.c(x))
        x = self.d(torch.cat([x, z], dim=1))
        x = self.bn_after(F.relu(x))
        x = F.silu(self.e(x))
        x = F.relu(self.f(x))
        x = F.avg_pool2d(x, 2, stride=1, padding=1)
        x = F.gelu(self.g(x))
        x = F.relu(self.h(x))
        x = F.adaptive_max_pool2d(x, 4)
        return self.fc(self.drop(torch.flatten(x, 1)))


class DataDependent(nn.Module):
    """Control flow on tensor values: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = torch.relu(self.a(x))
        if x.sum() > 0:
            x = torch.relu(self.b(x))
        return self.fc(x.mean(dim=(2, 3)))


class MutatedInput(nn.Module):
    """A ReLU output changed in place after its mask would have been taken."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = F.max_pool2d(torch.relu(self.a(x)), 2)
        x.add_(1.0)  # max-pool saves its input, not its output: autograd allows this
        x = self.b(x)
        return self.fc(x.mean(dim=(2, 3)))


def mixed() -> nn.Module:
    return Mixed()


def data_dependent() -> nn.Module:
    return DataDependent()


def mutated_input() -> nn.Module:
    return MutatedInput()


class NaNLogits(nn.Module):
    """Finite weights, NaN logits: a log of a negative number in the head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = F.relu(self.conv(x)).mean(dim=(2, 3))
        return self.fc(torch.log(-1.0 - x))


def nan_logits() -> nn.Module:
    return NaNLogits()


class ShapeDependent(nn.Module):
    """What breaks torch.fx in user code: Python branching on a shape, a tensor built in
    forward from a shape, a dropout, a split and a cat. `traceable=True` is the same computation
    written so that fx can trace it (for comparing masks)."""

    def __init__(self, traceable: bool = False) -> None:
        super().__init__()
        self.traceable = traceable
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 8, 1)
        self.d = nn.Conv2d(4, 6, 3, padding=1, groups=2)
        self.fc = nn.Linear(6 * 4 * 4, 3)
        self.drop = nn.Dropout(0.25)

    def forward(self, x):
        x = F.relu(self.a(x))
        if self.traceable or x.shape[-1] % 2 == 0:  # Python branching on a shape
            x = F.max_pool2d(x, 2)
        x = self.b(x)
        x = F.relu6(x)
        if self.traceable:
            x = self.c(x)
        else:
            gate = torch.ones(x.shape[1], device=x.device)  # built in forward from a shape
            x = self.c(x * gate.view(1, -1, 1, 1))
        low, high = torch.split(F.relu(x), [4, 4], dim=1)
        x = self.d(torch.cat([high, low], dim=1)[:, :4])
        x = F.avg_pool2d(F.relu(x), 2)
        return self.fc(self.drop(torch.flatten(x, 1)))


def shape_dependent() -> nn.Module:
    return ShapeDependent()


class Unmodelled(nn.Module):
    """Layers agos does not model, beside ones it does: a transposed conv, a Conv1d and an LSTM."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
        self.line = nn.Conv1d(4, 4, 3, padding=1)
        self.lstm = nn.LSTM(4, 5, batch_first=True)
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        x = F.relu(self.up(F.relu(self.conv(x))))
        s = F.relu(self.line(x.flatten(2)))
        out, _ = self.lstm(s.transpose(1, 2))
        return self.fc(out.mean(dim=1))


def unmodelled() -> nn.Module:
    return Unmodelled()


def slow_factory() -> nn.Module:
    """Builds slowly, after leaving a marker: a test interrupts agos while it waits here."""
    import os
    import time
    from pathlib import Path

    marker = os.environ.get("AGOS_TEST_MARKER")
    if marker:
        Path(marker).write_text("building")
    time.sleep(60)
    return Mixed()


class FxOnlyFailure(nn.Module):
    """Runs as plain PyTorch; the graph torch.fx traces holds an op that fails on real tensors (a
    user model that misbehaves only inside agos's capture or sparse engine)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        y = F.relu(self.conv(x))
        if isinstance(x, torch.fx.Proxy):
            y = torch.cat([y, x], dim=1)[:, :4]
        return self.fc(y.mean((2, 3)))


def fx_only_failure() -> nn.Module:
    return FxOnlyFailure()


# -- tiny twins of real networks: torchvision's own classes, narrow --------------------------------
# The same modules, names, ReLUs and graph as vgg16, resnet34 and resnet50 (so a published profile
# maps onto them row for row), with 1/16 of the channels: a capture at 32 px takes a fraction of a
# second instead of the seconds that building the full networks costs. The real networks are kept
# for the tests marked `ci`.


def tiny_vgg16(classes: int = 10) -> nn.Module:
    from torchvision.models.vgg import VGG, cfgs, make_layers

    class TinyVGG16(VGG):
        def __init__(self) -> None:
            nn.Module.__init__(self)
            self.features = make_layers([v if v == "M" else v // 16 for v in cfgs["D"]])
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(32 * 7 * 7, 64), nn.ReLU(True), nn.Dropout(),
                nn.Linear(64, 64), nn.ReLU(True), nn.Dropout(),
                nn.Linear(64, classes),
            )  # fmt: skip

    return TinyVGG16()


def _tiny_resnet(block, layers: list[int], classes: int = 10, width: int = 8) -> nn.Module:
    from torchvision.models.resnet import ResNet

    class TinyResNet(ResNet):
        def __init__(self) -> None:
            nn.Module.__init__(self)
            self._norm_layer = nn.BatchNorm2d
            self.inplanes, self.dilation, self.groups, self.base_width = width, 1, 1, 64
            self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.layer1 = self._make_layer(block, width, layers[0])
            self.layer2 = self._make_layer(block, 2 * width, layers[1], stride=2)
            self.layer3 = self._make_layer(block, 4 * width, layers[2], stride=2)
            self.layer4 = self._make_layer(block, 8 * width, layers[3], stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(8 * width * block.expansion, classes)

    return TinyResNet()


def tiny_resnet34() -> nn.Module:
    from torchvision.models.resnet import BasicBlock

    return _tiny_resnet(BasicBlock, [3, 4, 6, 3])


def tiny_resnet50() -> nn.Module:
    from torchvision.models.resnet import Bottleneck

    return _tiny_resnet(Bottleneck, [3, 4, 6, 3])


def tiny_resnet18() -> nn.Module:
    from torchvision.models.resnet import BasicBlock

    return _tiny_resnet(BasicBlock, [2, 2, 2, 2])


def tiny_mobilenet_v2() -> nn.Module:
    """torchvision's MobileNetV2 (ReLU6, depthwise convs, inverted residuals without a ReLU after
    the add), a quarter as wide, 10 classes."""
    from torchvision.models import MobileNetV2

    return MobileNetV2(num_classes=10, width_mult=0.25)


def tiny_googlenet() -> nn.Module:
    """GoogLeNet's own blocks (BasicConv2d: conv → BN → ReLU; Inception: four branches, one through
    a ceil-mode max-pool, concatenated), two of them, narrow."""
    from torchvision.models.googlenet import BasicConv2d, Inception

    class TinyGoogLeNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = BasicConv2d(3, 8, kernel_size=3, padding=1)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.inception3a = Inception(8, 4, 4, 8, 2, 4, 4)
            self.inception3b = Inception(20, 8, 4, 8, 2, 4, 4)
            self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.inception4a = Inception(24, 8, 4, 8, 2, 4, 4)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.dropout = nn.Dropout(0.2)
            self.fc = nn.Linear(24, 10)

        def forward(self, x):
            x = self.maxpool1(self.conv1(x))
            x = self.maxpool3(self.inception3b(self.inception3a(x)))
            x = self.avgpool(self.inception4a(x))
            return self.fc(self.dropout(torch.flatten(x, 1)))

    return TinyGoogLeNet()


# the tiny twin of each torchvision network the default tier used to capture
TINY = {
    "resnet18": "tests.models:tiny_resnet18",
    "resnet34": "tests.models:tiny_resnet34",
    "resnet50": "tests.models:tiny_resnet50",
    "vgg16": "tests.models:tiny_vgg16",
    "mobilenet_v2": "tests.models:tiny_mobilenet_v2",
    "googlenet": "tests.models:tiny_googlenet",
}

# the marks of a test on a real network whose property a tiny twin carries in the default tier
REAL_NETWORK = [pytest.mark.slow, pytest.mark.ci, pytest.mark.real_network]
