"""The package follows the data's path (ARCHITECTURE.md): every module imports only layers above
its own, so no arrow runs back up. Checked on the source (function-level imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "agos"

# top to bottom; `reproduce.run` (the orchestrator that shows a trajectory and a sweep) sits below
# trajectory and sweep, which reuse the rest of reproduce's stages
ORDER = [
    "errors",
    "fileio",
    "yamlio",
    "progress",
    "inputs",
    "workload",
    "capture",
    "density",
    "engine",
    "arch",
    "cost",
    "analysis",
    "reference",
    "validate",
    "rtl",
    "export",
    "report",
    "gpu",
    "reproduce",
    "trajectory",
    "sweep",
    "reproduce.run",
    "cli",
    "__main__",
]


def layer_of(module: str) -> str:
    parts = module.split(".")[1:]
    if parts[:2] == ["reproduce", "run"]:
        return "reproduce.run"
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


def arrows_back_up(root: Path = ROOT) -> list[str]:
    rank = {name: i for i, name in enumerate(ORDER)}
    bad = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        me = layer_of(module)
        if me not in rank:
            continue  # the package's own __init__
        for line, target in imports(path):
            other = layer_of(target)
            if other in rank and rank[other] > rank[me]:
                bad.append(f"{path.relative_to(root.parent)}:{line} ({me}) imports {target} ({other})")
    return bad


def test_every_package_has_a_place_in_the_order():
    packages = {p.stem if p.is_file() else p.name for p in ROOT.iterdir() if p.suffix == ".py" or p.is_dir()}
    packages -= {"__init__", "__pycache__", "py"}
    assert packages - set(ORDER) == set(), "add the new layer to ORDER and ARCHITECTURE.md"


def test_no_module_imports_a_layer_below_its_own():
    assert arrows_back_up() == []


def test_the_check_finds_an_arrow_back_up(tmp_path):
    """A doctored copy with one upward import must be caught (the check can fail)."""
    pkg = tmp_path / "agos"
    (pkg / "workload").mkdir(parents=True)
    (pkg / "workload" / "layer.py").write_text("def f():\n    from agos.report.format import pct\n")
    (pkg / "report").mkdir()
    (pkg / "report" / "format.py").write_text("from agos.workload.layer import f\n")
    found = arrows_back_up(pkg)
    assert len(found) == 1 and "agos.report.format" in found[0]


@pytest.mark.parametrize("module", ["agos.reproduce.run", "agos.reproduce.pipeline", "agos.trajectory.run"])
def test_layer_names(module):
    assert layer_of(module) in ORDER
