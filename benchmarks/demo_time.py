"""Time `make demo` as a new user meets it: a fresh clone, `make demo` (a new .venv, agos installed,
`agos reproduce --quick`), with where the time goes — the install, the reproduce run's start and
each stage it computed (from its cache's stage records) — the CPU time of everything it ran, and
the machine's load before and after (the machine may be shared: CPU seconds are the steadier figure).
The record is added to benchmarks/results/demo-time.json under --label.

    python benchmarks/demo_time.py --label after [--repo .] [--keep DIR]

Target (issue 22): ≤ 3 minutes of wall-clock time on a fresh machine."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "demo-time.json"
TARGET_S = 180


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def stages(report: Path) -> list[dict]:
    """Each stage the run computed: its kind, what it was of, its wall seconds and when it ended."""
    out = []
    for folder in sorted((report / "cache").iterdir()):
        meta, inputs = folder / "stage.json", folder / "inputs.json"
        if not meta.is_file():
            continue
        ins = json.loads(inputs.read_text()) if inputs.is_file() else {}
        what = ins.get("model") or ins.get("density") or ins.get("trace", "")
        out.append(
            {
                "stage": folder.name.split("-")[0],
                "of": what,
                "seconds": round(json.loads(meta.read_text())["seconds"], 1),
                "ended": dt.datetime.fromtimestamp(folder.stat().st_mtime, dt.UTC).isoformat(
                    timespec="seconds"
                ),
            }
        )
    return sorted(out, key=lambda s: s["ended"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--label", required=True, help="the record's name in demo-time.json")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the repository to clone (default: this one)")
    parser.add_argument("--keep", type=Path, help="clone into this new folder and keep it")
    args = parser.parse_args()
    clone = args.keep or Path(tempfile.mkdtemp(prefix="agos-demo-")) / "agos"
    subprocess.run(["git", "clone", "-q", str(args.repo), str(clone)], check=True)
    commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True)
    load_before = os.getloadavg()
    start, cpu0 = time.monotonic(), _children_cpu()
    run = subprocess.run(["make", "demo"], cwd=clone, env={**os.environ, "AGOS_PROGRESS": "0"})
    wall, cpu = time.monotonic() - start, _children_cpu() - cpu0
    if run.returncode != 0:
        sys.exit(f"make demo failed (exit {run.returncode})")
    venv = clone / ".venv"
    installed = min(p.stat().st_mtime for p in venv.glob(".agos-*"))
    began = (venv / "pyvenv.cfg").stat().st_mtime  # bin/python is a link to the system python
    results = json.loads((clone / "demo-report" / "results.json").read_text())
    record = {
        "commit": commit.stdout.strip(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "target_seconds": TARGET_S,
        "met": wall <= TARGET_S,
        "install_seconds": round(installed - began, 1),
        "reproduce_wall_seconds": round(results["wall_seconds"], 1),
        "reproduce_stage_seconds": round(results["compute_seconds"], 1),
        "stages": stages(clone / "demo-report"),
    }
    data = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    data[args.label] = record
    RESULTS.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "stages"}, indent=1))


if __name__ == "__main__":
    main()
