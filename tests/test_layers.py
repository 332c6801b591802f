"""The package is layered as ARCHITECTURE.md draws it: the command line on top, the foundations at
the bottom, and every module imports only layers below its own — never one above, never a peer of
its own tier. The oracles (the independent reference simulator, the peer-agreement checks, the
brute-force counts) stand beside the product path: they may import it, it never imports them.
Checked on the source (function-level imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "agos"

# The product path, top to bottom; the layers of one tier are peers and import none of each other.
TIERS = [
    ["__main__"],
    ["cli"],
    ["schemas"],
    ["api"],
    ["compare"],  # two analyses, traces or reproduce runs side by side (reads results.json)
    # reproduce runs a sweep for its report and shows a search's fronts; trajectory reads neither
    ["reproduce", "trajectory"],
    ["search"],  # sweeps of designs: fronts with and without output skipping, the phase diagram
    ["sweep"],
    ["stages"],  # resolve a run, capture and prove, analyse, the cache; the records above Analysis
    ["gpu"],
    ["report", "export"],  # renderers of an Analysis; a trace as other tools' workloads (peers)
    ["analysis"],
    ["cost"],
    ["arch"],
    ["engine"],
    ["density"],
    ["capture"],
    ["workload"],
    ["inputs"],
    ["progress", "workers"],  # progress bars; worker processes of a run (peers)
    ["fileio", "record", "yamlio"],
    ["errors"],
]
# Beside it: checks of the product that share none of its code under test. They may import the
# product at or below `report` (what they check); the product never imports them.
ORACLES = {"reference", "validate", "workload.bruteforce", "rtl"}
ORACLE_CEILING = "report"
# What an oracle must not import even below its ceiling (DESIGN.md §4: "shares no cost code").
ORACLE_FORBIDS = {"reference": {"cost"}}
# The one oracle that reads another: the RTL row is simulated against the cost model and the
# reference item by item (docs/rtl.md), so it imports both; neither imports it.
ORACLE_READS = {"rtl": {"reference"}}

RANK = {name: i for i, tier in enumerate(TIERS) for name in tier}
TIER = {name: tuple(tier) for tier in TIERS for name in tier}


def layer_of(module: str) -> str:
    parts = module.split(".")[1:]
    if parts[:2] == ["workload", "bruteforce"]:
        return "workload.bruteforce"
    return parts[0] if parts else ""


def imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "agos":
                found += [(node.lineno, f"agos.{a.name}") for a in node.names]
            elif node.module.startswith("agos."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("agos.")]
    return found


def _module(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def wrong_arrows(root: Path = ROOT) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        me = layer_of(_module(path, root))
        if me not in RANK and me not in ORACLES:
            continue  # the package's own __init__
        for line, target in imports(path):
            other = layer_of(target)
            where = f"{path.relative_to(root.parent)}:{line} ({me}) imports {target} ({other})"
            if other == me or (other not in RANK and other not in ORACLES):
                continue
            if me in ORACLES:
                base = me.split(".")[0]
                reads = ORACLE_READS.get(base, set())
                if other in ORACLES and other.split(".")[0] != base and other not in reads:
                    bad.append(f"{where}: one oracle imports another")
                elif other in RANK and RANK[other] < RANK[ORACLE_CEILING]:
                    bad.append(f"{where}: an oracle imports the orchestration")
                elif other in ORACLE_FORBIDS.get(base, ()):
                    bad.append(f"{where}: the oracle must share no code with it")
            elif other in ORACLES:
                bad.append(f"{where}: the product imports an oracle")
            elif RANK[other] < RANK[me]:
                bad.append(f"{where}: a layer above")
            elif RANK[other] == RANK[me]:
                bad.append(f"{where}: a peer of its tier")
    return bad


def test_every_package_has_a_place():
    packages = {p.stem if p.is_file() else p.name for p in ROOT.iterdir() if p.suffix == ".py" or p.is_dir()}
    packages -= {"__init__", "__pycache__", "py"}
    placed = set(RANK) | {o.split(".")[0] for o in ORACLES}
    assert packages - placed == set(), "add the new layer to TIERS and ARCHITECTURE.md"


def test_no_module_imports_a_layer_above_its_own_or_an_oracle():
    assert wrong_arrows() == []


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    pkg = tmp_path / "agos"
    for name, text in files.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return pkg


@pytest.mark.parametrize(
    ("files", "why"),
    [
        ({"workload/layer.py": "def f():\n    from agos.report.format import pct\n"}, "a layer above"),
        ({"reproduce/run.py": "from agos.trajectory.run import trajectory\n"}, "a peer of its tier"),
        ({"trajectory/run.py": "from agos.reproduce import pipeline\n"}, "a peer of its tier"),
        ({"report/html.py": "from agos.validate.browser import SELF_CHECK_SCRIPT\n"}, "imports an oracle"),
        ({"cost/model.py": "from agos.workload.bruteforce import brute_force\n"}, "imports an oracle"),
        ({"reference/tiling.py": "from agos.cost.tiling import choose\n"}, "share no code"),
        ({"validate/gemm.py": "from agos.stages.capture import capture\n"}, "the orchestration"),
        ({"reference/array.py": "from agos.rtl.timing import walk\n"}, "one oracle imports another"),
        ({"cost/model.py": "from agos.rtl.pe import PE\n"}, "imports an oracle"),
        ({"sweep/run.py": "from agos.search.run import run_search\n"}, "a layer above"),
        ({"search/run.py": "from agos.reproduce.run import reproduce\n"}, "a layer above"),
        ({"search/run.py": "from agos.trajectory.run import trajectory\n"}, "a layer above"),
        ({"export/scalesim.py": "from agos.validate.scalesim import run_files\n"}, "imports an oracle"),
        ({"export/npz.py": "from agos.report.format import pct\n"}, "a peer of its tier"),
    ],
)
def test_the_check_finds_a_wrong_arrow(tmp_path, files, why):
    """A doctored copy with one wrong import must be caught (the check can fail)."""
    found = wrong_arrows(_package(tmp_path, files))
    assert len(found) == 1 and why in found[0], found


def test_the_check_allows_arrows_down_and_oracles_reading_the_product(tmp_path):
    files = {
        "reproduce/run.py": "from agos.sweep.section import sweep_section\nfrom agos.stages import cache\n",
        "validate/scalesim.py": "from agos.cost.model import simulate_pass\n",
        "workload/bruteforce.py": "from agos.workload.counts import LayerWork\n",
        "rtl/compare.py": "from agos.reference.array import duration\nfrom agos.cost import model\n",
        "search/run.py": "from agos.sweep.run import run_sweep\n",
        "validate/run.py": "from agos.export import scalesim\n",
        "api.py": "from agos.export import export_trace\n",
    }
    assert wrong_arrows(_package(tmp_path, files)) == []
