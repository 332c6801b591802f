"""agos from a notebook: a model built in memory, traced on an image folder, three designs
simulated, the figures as pandas DataFrames that carry their provenance (docs/api.md).

    python examples/notebook.py PHOTOS      # PHOTOS: an ImageFolder (one sub-folder per class)

Cell by cell, this is what a notebook does; tests/test_api.py runs it on a tiny folder."""

from __future__ import annotations

import sys

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

import agos


class Net(nn.Module):
    """A small CNN, written here: agos has never seen it by name."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 32, 3, padding=1)
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.conv3(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def main(photos: str) -> pd.DataFrame:
    torch.manual_seed(0)
    model = Net()  # in memory; its weights are used as they are

    # one real training step on 8 images of the folder, its masks captured and written as a trace
    trace = agos.trace(model, data=f"imagefolder:{photos}", batch_size=8, image_size=32, device="cpu")
    print(f"trace {trace.path}: {len(trace.layers)} layers, loss {trace.manifest.loss:.3f}")

    # three designs on the systolic organisation, each against its dense twin
    analysis = agos.simulate(trace, designs=["dense@systolic", "input-skip@systolic", "agos@systolic"])
    print(analysis.label)

    designs = analysis.designs_frame()  # one row per design
    shown = ["design", "speedup_backprop", "speedup_iteration", "area_mm2", "energy_j"]
    provenance = ["model", "model_class", "model_code", "weights", "weights_sha256", "data", "batch_size",
                  "image_size", "seed", "density"]  # fmt: skip
    layers = analysis.layers_frame()  # one row per layer × pass × design
    cycles = layers.pivot_table(
        index="layer", columns=["design", "pass"], values="cycles", aggfunc="sum", sort=False
    )
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.max_colwidth", 80):
        print(designs[shown].to_string(index=False))
        print(designs[provenance].drop_duplicates().T.to_string(header=False))
        print(cycles)
    return designs


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python examples/notebook.py PHOTOS (an ImageFolder: one sub-folder per class)")
    main(sys.argv[1])
