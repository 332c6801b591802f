"""Random small layers and shrunk designs for the cost-model tests: small enough for the
cycle-stepping reference, varied enough that tiles, packing, phases, chunks and stream blocks all
occur."""

from __future__ import annotations

import random

import torch

from agos.arch.load import ORGANISATIONS, PRESETS, LoadedArch, load_arch
from agos.workload.layer import geometry_of
from agos.workload.masks import LayerMasks


def random_layer(seed: int) -> LayerMasks | None:
    r = random.Random(seed)
    groups = r.choice([1, 1, 1, 2, 3])
    cin = groups * r.randint(1, 4)
    cout = groups * r.randint(1, 4)
    if r.random() < 0.15:  # depthwise
        groups = cin = cout = r.randint(2, 6)
    if r.random() < 0.12:  # a Linear layer is the 1×1 case
        fc = torch.nn.Linear(r.randint(2, 9), r.randint(2, 9))
        x = torch.zeros(r.randint(1, 5), fc.in_features)
        g = geometry_of(fc, x, fc(x), "fc")
    else:
        conv = torch.nn.Conv2d(
            cin,
            cout,
            r.choice([1, 2, 3]),
            stride=r.choice([1, 1, 2, 3]),
            padding=r.choice([0, 1, 2]),
            dilation=r.choice([1, 1, 2]),
            groups=groups,
        )
        size = r.randint(3, 7)
        x = torch.zeros(r.randint(1, 2), cin, size, size)
        try:
            y = conv(x)
        except RuntimeError:  # kernel larger than the padded input
            return None
        g = geometry_of(conv, x, y, "conv")
    gen = torch.Generator().manual_seed(seed)
    dens = [r.choice([0.0, 0.2, 0.5, 0.8, 1.0]) for _ in range(3)]
    return LayerMasks(
        name="l",
        geometry=g,
        needs_bwd_data=r.random() < 0.85,
        x_nonzero=torch.rand(g.x_shape, generator=gen) < dens[0],
        dy_nonzero=torch.rand(g.y_shape, generator=gen) < dens[1],
        dx_needed=torch.rand(g.x_shape, generator=gen) < dens[2],
        dx_all_needed=False,
    )


def shrunk(preset: str, organisation: str, seed: int) -> LoadedArch:
    """The preset on a tiny array, buffer and store, with randomised organisation choices."""
    r = random.Random(seed * 7919 + 17)
    base = load_arch(f"{preset}@{organisation}")
    a = base.arch
    o = a.organisation
    rows, cols = r.choice([1, 2, 3, 4]), r.choice([1, 2, 3, 4])
    org = o.model_copy(
        update={
            "pe_array": o.pe_array.model_copy(update={"rows": rows, "cols": cols}),
            "memory": o.memory.model_copy(
                update={
                    "global_buffer_bytes": r.choice([128, 256, 512, 1024, 4096, 1 << 20]),
                    "buffer_banks": r.choice([1, 2, 4]),
                    "bank_width_bytes": r.choice([2, 4, 8]),
                    "dram_gbps": r.choice([2.0, 8.0, 64.0, 256.0]),
                    "double_buffering": r.random() < 0.8,
                }
            ),
            "fill_drain": r.choice(["per_fold", "overlapped"]),
            "fill_drain_cycles": r.choice([None, None, 0, 1, 3]),
            "dispatch": r.choice(["static", "greedy"]),
            "pe_store_entries": r.choice([9, 16, 32, 64, 256]),
        }
    )
    skipping = a.skipping.model_copy(
        update={
            "lookahead": r.choice([1, 2, 3, 3, "inf"]),
            "broadcast_width": r.choice([1, 1, 2]),
            "compaction_domain": r.choice([1, 2, 4, 8, 64]),
            "lanes": r.choice(["modulo", "modulo", "matched", "full"]),
            "lane_ports": r.choice([None, None, 1, 2, 4]),
            "bypass": r.choice(["rule", "rule", "never"]),
            "bypass_margin": r.choice([0.0, 0.02, 0.2]),
        }
    )
    arch = a.model_copy(update={"organisation": org, "skipping": skipping})
    return base.with_arch(type(a).model_validate(arch.model_dump()), f"test:{preset}@{organisation}")


STEPPED = [(p, o) for p in PRESETS for o in ORGANISATIONS]
