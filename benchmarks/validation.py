"""Gather the cost model's validation into the record the report shows
(`src/agos/report/data/validation.json`): the fast model against the independent reference, the
dense systolic design against SCALE-Sim 3.0.0, the mutation score, the ZigZag comparison and the
RTL row (docs/rtl.md) — each with the command that reproduces it and when it was last run.

    .venv/bin/python benchmarks/validation.py [--full]     # --full: the reference cross product too

It runs the reference comparison itself (pytest) and reads the SCALE-Sim, mutation, ZigZag and RTL
results from benchmarks/results/ (written by benchmarks/scalesim.py, make mutation,
benchmarks/zigzag.py and make rtl); a missing one is recorded as not run, never invented."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "src" / "agos" / "report" / "data" / "validation.json"
sys.path.insert(0, str(ROOT))


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def _pytest(selector: str, *extra: str) -> dict:
    start = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", selector, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    tail = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr.strip()[-200:]
    return {"passed": run.returncode == 0, "summary": tail, "seconds": round(time.monotonic() - start, 1)}


def reference(full: bool) -> dict:
    from agos.arch.load import ORGANISATIONS, PRESETS
    from tests.test_cost_vs_reference import CASES

    designs = len(PRESETS) * len(ORGANISATIONS)
    out = {
        "what": "fast cost model == agos.reference (cycle-stepping, shares no code) on random small "
        "layers: total cycles with stalls, per-tile compute, tiling, DRAM bytes per operand, items, "
        "every action count",
        "layers": CASES,
        "designs": designs,
        "default": _pytest("tests/test_cost_vs_reference.py"),
        "command": ".venv/bin/python -m pytest tests/test_cost_vs_reference.py -m ''",
    }
    out["default"]["pairs"] = CASES  # one design per layer, every design exercised
    if full:
        out["cross_product"] = _pytest("tests/test_cost_vs_reference.py", "-m", "slow")
        out["cross_product"]["pairs"] = CASES * designs
    return out


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def scalesim() -> dict:
    data = _load("scalesim.json")
    if data is None:
        return {"run": False, "command": ".venv/bin/python benchmarks/scalesim.py"}
    return {"run": True, "command": ".venv/bin/python benchmarks/scalesim.py", **data}


def mutation() -> dict:
    data = _load("mutation.json")
    if data is None:
        return {"run": False, "command": "make mutation"}
    keep = ("provenance", "complete", "faults", "caught", "survivors", "void", "seconds")
    out = {"run": True, "command": "make mutation", **{k: data.get(k) for k in keep}}
    out["list"] = [
        {k: r.get(k) for k in ("name", "file", "description", "status", "caught_by", "seconds")}
        for r in data.get("results", [])
    ]
    return out


def zigzag() -> dict:
    data = _load("zigzag.json")
    if data is None:
        return {"run": False, "command": ".venv/bin/python benchmarks/zigzag.py"}
    return {"run": True, "command": ".venv/bin/python benchmarks/zigzag.py", **data}


def rtl() -> dict:
    """The RTL row against the model (benchmarks/rtl.py): per feature its cycles over the model's on
    random layers and on resnet18 cuts, and each feature's added area, synthesis over the table."""
    data = _load("rtl.json")
    if data is None:
        return {"run": False, "command": "make rtl"}
    real = data["real_trace"]["features"]
    features = {
        name: {
            "items": s["items"] + real[name]["items"],
            "equal": s["equal"] + real[name]["equal"],
            "random_layers": s["rtl_over_model"],
            "resnet18_cuts": real[name]["rtl_over_model"],
            "check_failures": len(s["check_failures"]) + len(real[name]["check_failures"]),
        }
        for name, s in data["random_layers"].items()
    }
    out = {"run": True, "command": "make rtl", "date": data["date"], "trace": data["trace"]}
    out["features"] = features
    syn = data["synthesis"]
    if "rows" in syn:
        area: dict[str, list[float]] = {}
        for block in syn["rows"].values():
            for name, r in block["ratios"].items():
                if r.get("added_um2_table") and not name.startswith("bypass"):
                    ratio = r["added_um2_synthesis"] / r["added_um2_table"]
                    area.setdefault(name, []).append(round(ratio, 4))
        out["area_synthesis_over_table"] = {
            "sizes": [int(c) for c in syn["rows"]],
            "features": area,
            "left_out": "the bypass bits: the table prices §11's rule unit, the row has only its mode bits",
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="also run the reference cross product (slow)")
    args = parser.parse_args()
    record = {
        "format": "agos-validation",
        "version": 1,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        "reference": reference(args.full),
        "scalesim": scalesim(),
        "mutation": mutation(),
        "zigzag": zigzag(),
        "rtl": rtl(),
    }
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
    tmp.replace(OUT)
    ref = record["reference"]
    print(f"reference: {ref['layers']} layers, {ref['designs']} designs: {ref['default']['summary']}")
    if "cross_product" in ref:
        print(f"reference cross product: {ref['cross_product']['summary']}")
    m = record["mutation"]
    if m["run"]:
        print(f"mutation: {m['caught']} of {m['faults']} faults caught")
    print(f"wrote {OUT}")
    if not ref["default"]["passed"] or not ref.get("cross_product", {"passed": True})["passed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
