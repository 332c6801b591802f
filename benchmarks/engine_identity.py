"""Are the sparse engine's gradients, and the check's references, bit for bit what they were? One
training step per model (2 images, seeded) on the sparse engine (`sparse_training`), with plain
float32 autograd and with the float64-backward twin (`float64_backward`); `--save FILE` stores the
three gradient sets and the losses, `--compare FILE` runs the same steps on the code at hand and
compares every tensor with torch.equal. Used to show that a speed change altered no result.

    python benchmarks/engine_identity.py --save /tmp/before.pt      # on the old code
    python benchmarks/engine_identity.py --compare /tmp/before.pt   # on the new code
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

MODELS = (
    "tests.models:mixed@16,tests.models:data_dependent@16,"
    "resnet18@64,mobilenet_v2@64,googlenet@64,alexnet@64,resnet50@64"
)


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    return torch.equal(a, b)


def steps(model_name: str, size: int) -> dict:
    from agos.engine.training import float64_backward, sparse_training
    from agos.inputs.options import RunOptions
    from agos.inputs.session import prepare
    from agos.inputs.training import plain_step

    run = prepare(RunOptions(model=model_name, batch_size=2, image_size=size, seed=0, device="cpu"))
    images, labels = run.batch(0)
    out = {}
    model = copy.deepcopy(run.model)
    out["loss32"] = plain_step(model, images, labels, seed=7)
    out["float32"] = _grads(model)
    model = copy.deepcopy(run.model)
    with sparse_training(model):
        out["loss_sparse"] = plain_step(model, images, labels, seed=7)
    out["sparse"] = _grads(model)
    model = copy.deepcopy(run.model)
    with float64_backward(model):
        out["loss64"] = plain_step(model, images, labels, seed=7)
    out["float64"] = _grads(model)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", type=Path)
    group.add_argument("--compare", type=Path)
    parser.add_argument("--models", default=MODELS, help="name@image_size,…")
    args = parser.parse_args()
    saved = torch.load(args.compare) if args.compare else {}
    results, failed = {}, False
    for item in args.models.split(","):
        name, size = item.rsplit("@", 1)
        results[item] = now = steps(name, int(size))
        if not args.compare:
            print(f"{item}: {len(now['sparse'])} parameters saved", flush=True)
            continue
        different = [key for key, value in now.items() if not _equal(value, saved[item][key])]
        failed |= bool(different)
        verdict = "DIFFERENT: " + ", ".join(different) if different else "bit-identical"
        print(f"{item:32s} {verdict}", flush=True)
    if args.save:
        torch.save(results, args.save)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
