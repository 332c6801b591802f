"""Mutation check of the fast cost model: every deliberate fault of benchmarks/mutation_faults.yaml
must make one of its tests fail.

Each fault is applied, alone, to a fresh copy of src/ in a temporary directory; its tests run in a
subprocess with that copy first on the import path (PYTHONPATH ahead of the editable install's
.pth entry) and a numba cache of its own (NUMBA_CACHE_DIR), so no compiled kernel of the
unmutated source is reused, nor the other way round. A pytest plugin written beside the copy
records the file of every `agos` module the tests imported; a run that imported any of them from
elsewhere is void. The unmutated copy runs every selected test first and must pass, else the
whole run is void.

    python benchmarks/mutation.py [--jobs 2] [--only NAME[,NAME]] [--list] [--timeout S]

Writes benchmarks/results/mutation.json (mutation-partial.json with --only) through a temporary
file and a rename, prints a table, and exits 1 when any fault survives, 2 on bad input or a void
run."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
FAULTS = ROOT / "benchmarks" / "mutation_faults.yaml"
RESULTS = ROOT / "benchmarks" / "results"
KEYS = ("name", "file", "old", "new", "tests", "description")
GUARD = '''"""Written by benchmarks/mutation.py: records where every imported agos module came from."""
import json
import os
import sys


def _files():
    return {
        name: getattr(module, "__file__", None) or ""
        for name, module in list(sys.modules.items())
        if name == "agos" or name.startswith("agos.")
    }


def pytest_sessionfinish(session, exitstatus):
    with open(os.environ["AGOS_MUTATION_REPORT"], "w") as f:
        json.dump(_files(), f)
'''


class BadInput(Exception):
    """A fault list or an option the run cannot use: reported in one line, exit 2."""


@dataclass(frozen=True)
class Fault:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    description: str


@dataclass
class Outcome:
    name: str
    status: str  # caught | survived | timeout | void
    seconds: float
    returncode: int | None
    caught_by: list[str] = field(default_factory=list)
    detail: str = ""


def load_faults(path: Path) -> list[Fault]:
    """The fault list, each snippet checked against the current source: exactly one occurrence."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BadInput(f"{path}: cannot read the fault list: {exc}".replace("\n", " ")) from exc
    entries = data.get("faults") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise BadInput(f"{path}: expected a mapping with a non-empty list `faults`")
    faults: list[Fault] = []
    seen: set[str] = set()
    for n, entry in enumerate(entries):
        where = f"{path}: fault #{n + 1}"
        if not isinstance(entry, dict) or set(entry) != set(KEYS):
            raise BadInput(f"{where}: needs exactly the keys {', '.join(KEYS)}")
        name = entry["name"]
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]+", name) or name in seen:
            raise BadInput(f"{where}: name {name!r} must be unique, lower case, digits and _")
        seen.add(name)
        where = f"{path}: fault {name}"
        tests = entry["tests"]
        if not isinstance(tests, list) or not tests or not all(isinstance(t, str) and t for t in tests):
            raise BadInput(f"{where}: tests must be a non-empty list of pytest node ids")
        for t in tests:
            if not (ROOT / t.split("::")[0]).is_file() or not t.startswith("tests/"):
                raise BadInput(f"{where}: no test file {t.split('::')[0]} under tests/")
        for key in ("file", "old", "new", "description"):
            if not isinstance(entry[key], str) or not entry[key]:
                raise BadInput(f"{where}: {key} must be a non-empty string")
        rel = entry["file"]
        target = ROOT / rel
        if not rel.startswith("src/agos/") or "reference" in Path(rel).parts or not target.is_file():
            raise BadInput(f"{where}: {rel} is not a file of the fast model under src/agos/")
        if entry["old"] == entry["new"]:
            raise BadInput(f"{where}: old and new are the same")
        count = target.read_text().count(entry["old"])
        if count != 1:
            raise BadInput(f"{where}: its old snippet occurs {count} times in {rel}, not exactly once")
        faults.append(Fault(name, rel, entry["old"], entry["new"], tuple(tests), entry["description"]))
    return faults


def _copy_src(dest: Path) -> Path:
    src = dest / "src"
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    return src


def _apply(fault: Fault, src_copy: Path) -> None:
    path = src_copy.parent / fault.file
    text = path.read_text()
    if text.count(fault.old) != 1:  # checked at load; the copy must agree
        raise BadInput(f"fault {fault.name}: snippet not found exactly once in the copy of {fault.file}")
    mutated = text.replace(fault.old, fault.new)
    if path.suffix == ".py":
        try:
            compile(mutated, str(path), "exec")
        except SyntaxError as exc:
            raise BadInput(f"fault {fault.name}: the mutated {fault.file} does not compile: {exc}") from exc
    elif path.suffix in (".yaml", ".yml"):
        try:
            yaml.safe_load(mutated)
        except yaml.YAMLError as exc:
            msg = str(exc).replace("\n", " ")
            raise BadInput(f"fault {fault.name}: the mutated {fault.file} is not YAML: {msg}") from exc
    path.write_text(mutated)


_FAILED = re.compile(r"^(FAILED|ERROR) (\S+)", re.M)


def run_tests(name: str, fault: Fault | None, tests: list[str], timeout: float, threads: int) -> Outcome:
    """One run: a fresh copy of src/ (mutated by `fault` unless None) and its own numba cache."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"agos-mutation-{name}-") as tmp:
        work = Path(tmp)
        src = _copy_src(work)
        if fault is not None:
            _apply(fault, src)
        plugin_dir = work / "plugin"
        plugin_dir.mkdir()
        (plugin_dir / "agos_mutation_guard.py").write_text(GUARD)
        report = work / "imported.json"
        env = dict(os.environ)
        env.pop("PYTHONHOME", None)
        env.update(
            PYTHONPATH=os.pathsep.join([str(src), str(plugin_dir)]),
            NUMBA_CACHE_DIR=str(work / "numba-cache"),
            AGOS_MUTATION_REPORT=str(report),
            AGOS_PROGRESS="0",
            PYTHONDONTWRITEBYTECODE="1",
        )
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
            env.update(NUMBA_NUM_THREADS=str(threads))
        # a conftest-free check first: the copy, not the editable install, is what `import agos` finds
        probe = subprocess.run(
            [sys.executable, "-c", "import agos; print(agos.__file__)"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        found = probe.stdout.strip()
        if probe.returncode != 0 or not Path(found).is_relative_to(src):
            seen = found or probe.stderr.strip()
            return Outcome(name, "void", time.perf_counter() - start, probe.returncode,
                           detail=f"`import agos` found {seen!r}, not the copy")  # fmt: skip
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
        cmd += ["-p", "agos_mutation_guard", *tests]
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Outcome(name, "timeout", time.perf_counter() - start, None, detail=f"over {timeout:.0f} s")
        seconds = time.perf_counter() - start
        out = proc.stdout + proc.stderr
        last = out.strip().splitlines()[-1] if out.strip() else ""
        try:
            imported = json.loads(report.read_text())
        except (OSError, json.JSONDecodeError):
            return Outcome(name, "void", seconds, proc.returncode, detail=f"no import record; pytest: {last}")
        foreign = sorted(m for m, f in imported.items() if f and not Path(f).is_relative_to(src))
        if "agos" not in imported or foreign:
            what = foreign[:3] or ["agos not imported"]
            return Outcome(
                name, "void", seconds, proc.returncode, detail=f"agos modules not from the copy: {what}"
            )
        failed = [m.group(2) for m in _FAILED.finditer(out)]
        if proc.returncode == 0:
            return Outcome(name, "survived", seconds, 0, detail=last)
        if proc.returncode in (1, 2) and (failed or proc.returncode == 2):
            # 1: a test failed; 2: collection or import failed (the fault broke the import)
            return Outcome(name, "caught", seconds, proc.returncode, failed or ["(collection error)"], last)
        detail = f"pytest exit {proc.returncode}: {last}"
        return Outcome(name, "void", seconds, proc.returncode, detail=detail)


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""


def provenance(args: argparse.Namespace) -> dict:
    return {
        "git_commit": _git("rev-parse", "HEAD").strip() or None,
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no").strip()),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "jobs": args.jobs,
        "timeout_s": args.timeout,
        "fault_list": str(Path(args.faults).resolve().relative_to(ROOT))
        if Path(args.faults).resolve().is_relative_to(ROOT)
        else str(args.faults),
    }


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _table(faults: list[Fault], outcomes: dict[str, Outcome]) -> Table:
    table = Table(title="mutation check of the fast cost model")
    for col in ("fault", "file", "status", "caught by", "s"):
        table.add_column(col, justify="right" if col == "s" else "left")
    style = {"caught": "green", "survived": "bold red", "timeout": "yellow", "void": "bold magenta"}
    for f in faults:
        o = outcomes[f.name]
        by = ", ".join(t.split("::")[-1] if "::" in t else t for t in o.caught_by) or o.detail
        table.add_row(
            f.name,
            f.file.removeprefix("src/agos/"),
            f"[{style[o.status]}]{o.status}[/]",
            by[:70],
            f"{o.seconds:.0f}",
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", default=str(FAULTS), help="the fault list (YAML)")
    parser.add_argument("--jobs", type=int, default=1, help="faults run at once (default 1)")
    parser.add_argument("--only", action="append", default=[], help="run only these faults (NAME[,NAME])")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per test run (default 600)")
    parser.add_argument("--out", type=Path, help="results JSON (default benchmarks/results/mutation.json)")
    parser.add_argument("--list", action="store_true", help="print the faults and exit")
    args = parser.parse_args(argv)
    console = Console()
    err = Console(stderr=True)
    try:
        if args.jobs < 1:
            raise BadInput(f"--jobs must be ≥ 1, got {args.jobs}")
        if not args.timeout > 0:
            raise BadInput(f"--timeout must be > 0, got {args.timeout}")
        faults = load_faults(Path(args.faults))
        only = [n for item in args.only for n in item.split(",") if n]
        unknown = sorted(set(only) - {f.name for f in faults})
        if unknown:
            raise BadInput(f"--only: no fault named {', '.join(unknown)} in {args.faults}")
    except BadInput as exc:
        err.print(f"mutation: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    if args.list:
        for f in faults:
            console.print(
                f"{f.name}: {f.description} ({f.file})", markup=False, highlight=False, soft_wrap=True
            )
        return 0
    chosen = [f for f in faults if not only or f.name in only]
    out_path = args.out or RESULTS / ("mutation-partial.json" if only else "mutation.json")
    threads = 1 if args.jobs > 1 else 0
    t0 = time.perf_counter()

    every = list(dict.fromkeys(t for f in chosen for t in f.tests))
    console.print(f"baseline: the unmutated copy on {len(every)} test selections …")
    base = run_tests("baseline", None, every, args.timeout * 2, threads)
    status = "passed" if base.status == "survived" else base.status
    console.print(f"baseline: {status} in {base.seconds:.0f} s")
    if base.status != "survived":
        err.print(
            f"mutation: the unmutated copy does not pass its tests ({base.status}: "
            f"{', '.join(base.caught_by) or base.detail}); the run is void",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return 2

    outcomes: dict[str, Outcome] = {}

    def one(f: Fault) -> Outcome:
        o = run_tests(f.name, f, list(f.tests), args.timeout, threads)
        console.print(f"  {f.name}: {o.status} ({o.seconds:.0f} s)", markup=False, highlight=False)
        return o

    try:
        with ThreadPoolExecutor(args.jobs) as pool:
            for o in pool.map(one, chosen):
                outcomes[o.name] = o
    except BadInput as exc:
        err.print(f"mutation: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    total = time.perf_counter() - t0

    by_fault = {f.name: f for f in chosen}
    caught = [n for n, o in outcomes.items() if o.status in ("caught", "timeout")]
    survivors = [n for n, o in outcomes.items() if o.status == "survived"]
    void = [n for n, o in outcomes.items() if o.status == "void"]
    result = {
        "provenance": provenance(args),
        "complete": not only,
        "baseline": {"passed": True, "seconds": round(base.seconds, 1), "tests": every},
        "faults": len(chosen),
        "caught": len(caught),
        "survivors": survivors,
        "void": void,
        "seconds": round(total, 1),
        "results": [
            {
                **{k: v for k, v in asdict(by_fault[o.name]).items() if k not in ("old", "new")},
                "tests": list(by_fault[o.name].tests),
                "old": by_fault[o.name].old,
                "new": by_fault[o.name].new,
                "status": o.status,
                "caught_by": o.caught_by,
                "seconds": round(o.seconds, 1),
                "returncode": o.returncode,
                "detail": o.detail,
            }
            for o in (outcomes[f.name] for f in chosen)
        ],
    }
    write_json(out_path, result)
    console.print(_table(chosen, outcomes))
    console.print(
        f"{len(chosen)} faults: {len(caught)} caught, {len(survivors)} survived, {len(void)} void "
        f"in {total:.0f} s → {out_path.relative_to(ROOT) if out_path.is_relative_to(ROOT) else out_path}",
        markup=False,
        highlight=False,
    )
    if void:
        err.print(f"mutation: void runs (not counted): {', '.join(void)}", markup=False, highlight=False)
        return 2
    if survivors:
        err.print(f"mutation: surviving faults: {', '.join(survivors)}", markup=False, highlight=False)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
