"""Golden whole-network figures: every preset on both organisations, on a fixed small trace set,
pinned so that any change to what agos reports shows as a readable diff. The masks are drawn from
a seeded density (`uniform:0.5`), not taken from the captured step, so the figures depend on the
traces' geometry alone and not on floating-point details of the machine that captured them.

Update them — deliberately, after checking the diff — with `make golden`
(`.venv/bin/python -m tests.golden_networks --update`)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

GOLDEN = Path(__file__).with_name("golden") / "networks.json"
DENSITY, SEED = "uniform:0.5", 0
# (model, batch, image size): a residual net and a depthwise one, small enough for the default suite
TRACES = {"resnet18": (2, 64), "mobilenet_v2": (2, 32)}
REL = 1e-9  # floats (energy, area, ratios) agree to this relative tolerance; cycles exactly


def capture(model: str, out: Path) -> Path:
    from agos.api import trace as capture_trace
    from agos.inputs.options import RunOptions

    batch, size = TRACES[model]
    # synthetic images (seeded noise from torch): the parts of a trace the statistical masks keep
    # (dY behind BatchNorm, ReLU6's saturation rate) then depend on no image library's decoder
    options = RunOptions(
        model=model, data="synthetic", batch_size=batch, image_size=size, seed=0, device="cpu"
    )
    capture_trace(options, out)
    return out


def figures(trace_dir: Path) -> dict:
    """Per design: cycles per pass, speedups over the twin, the best equal-area dense and its
    ratio, energy, area and DRAM bytes — what a user reads off `agos simulate`."""
    from agos.analysis.simulation import simulation_of
    from agos.arch.load import DEFAULT_DESIGNS, load_archs
    from agos.capture.trace import load_trace
    from agos.cost.network import MaskSource, simulate_network

    trace = load_trace(trace_dir)
    net = simulate_network(
        MaskSource(str(trace_dir), DENSITY, SEED), load_archs(DEFAULT_DESIGNS), trace.manifest, workers=1
    )
    sim = simulation_of(net)
    out = {}
    for name in sim.requested:
        d = sim.designs[name]
        out[name] = {
            "cycles": d.cycles.model_dump(),
            "speedup_over_twin": d.speedup_over_twin.model_dump() if d.speedup_over_twin else None,
            "best_dense_equal_area": d.best_dense_equal_area,
            "speedup_over_best_dense_equal_area": d.speedup_over_best_dense_equal_area,
            "energy_j": d.energy_j,
            "area_mm2": d.area_mm2,
            "dram_bytes": d.dram_bytes,
        }
    return out


def differences(golden, now, path: str = "") -> list[str]:
    """Every leaf that changed, as 'path: golden → now'."""
    if isinstance(golden, dict) and isinstance(now, dict):
        out = []
        for key in sorted(set(golden) | set(now)):
            where = f"{path}.{key}" if path else key
            if key not in now:
                out.append(f"{where}: {golden[key]!r} → (missing)")
            elif key not in golden:
                out.append(f"{where}: (new) → {now[key]!r}")
            else:
                out += differences(golden[key], now[key], where)
        return out
    if isinstance(golden, float) and isinstance(now, float):
        if math.isclose(golden, now, rel_tol=REL, abs_tol=0.0):
            return []
        return [
            f"{path}: {golden!r} → {now!r} ({now / golden - 1:+.3%})" if golden else f"{path}: 0 → {now!r}"
        ]
    return [] if golden == now else [f"{path}: {golden!r} → {now!r}"]


def compute(work: Path) -> dict:
    return {model: figures(capture(model, work / model)) for model in TRACES}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--update", action="store_true", help="rewrite tests/golden/networks.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        now = {"density": DENSITY, "seed": SEED, "traces": TRACES, "models": compute(Path(work))}
    old = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    diff = differences(old, json.loads(json.dumps(now)))
    for line in diff:
        print(line)
    if not args.update:
        print(f"{len(diff)} differences (run with --update to pin the new figures)")
        sys.exit(1 if diff else 0)
    GOLDEN.parent.mkdir(exist_ok=True)
    tmp = GOLDEN.with_suffix(".tmp")
    tmp.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
    tmp.replace(GOLDEN)
    print(f"wrote {GOLDEN} ({len(diff)} differences)")


if __name__ == "__main__":
    main()
