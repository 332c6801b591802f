"""Small models for tests, also importable as `--model tests.models:NAME`."""

from __future__ import annotations

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
