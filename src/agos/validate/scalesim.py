"""Run SCALE-Sim 3.0.0 (`pip install scalesim==3.0.0`) on GEMMs and return its compute cycles.

Each GEMM is one SCALE-Sim run in GEMM mode (`input_type_gemm`): an R×C output-stationary array,
bandwidth mode CALC (SCALE-Sim estimates the bandwidth it needs, so the memory never stalls) and
SRAMs sized to hold the whole GEMM; its config, topology and layout files and its reports go to a
temporary directory, its prints are swallowed. The cycles are SCALE-Sim's "Total Cycles" of the
layer (its COMPUTE_REPORT column; stall cycles are checked to be 0). A grouped layer's `copies` run
one after another: copies × one copy's cycles.

`method="fold"` runs one fold instead of the whole GEMM — the GEMM min(M, R) × min(N, C) × K — and
scales it by the fold count: SCALE-Sim's output-stationary model (compute/systolic_compute_os.py,
`create_*_demand_mat`) builds the demand matrices as ⌈M/R⌉·⌈N/C⌉ folds back to back, each of
T + C − 1 rows skewed by R − 1 (T + R + C − 2 rows, partial folds padded with null requests), and
reports the last cycle's zero-based index: whole = folds × (one fold + 1) − 1. SCALE-Sim's run time
grows with the cycles it steps (about 0.3 ms each here), so whole networks at 224 px are only
feasible this way; tests/test_scalesim.py holds the two methods equal on whole GEMMs.

NumPy ≥ 2.4 compatibility. SCALE-Sim 3.0.0's `double_buffered_scratchpad.service_memory_requests`
ends with `int(max(ofmap_serviced_cycles))`, the max of a list of one-element arrays — a 1-D array,
which NumPy 2.4 no longer converts with int() ("only 0-dimensional arrays can be converted to
Python scalars"; deprecated since 1.25); with a user-given DRAM bandwidth (`InterfaceBandwidth =
USER`, as `agos export --to scalesim` writes it) `read_buffer.prefetch_active_buffer` does the same
(`int(max(response_cycles_arr))`). `_numpy_compat` gives those two modules a `max` that returns the
element of such a one-element result (what int() used to take from it) and removes it afterwards;
nothing else in SCALE-Sim is touched.

`run_files` runs SCALE-Sim on a config, topology and layout file as its own command line would
(`python -m scalesim.scale -c … -t … -l … -i gemm`), with that compatibility, and returns its
compute report.
"""

from __future__ import annotations

import builtins
import contextlib
import csv
import io
import math
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from agos.errors import AgosError
from agos.export import scalesim as export
from agos.validate.gemm import Gemm

VERSION = export.VERSION
INSTALL = f"pip install scalesim=={VERSION}  (or: pip install -e '.[dev]')"
METHODS = ("full", "fold")

_CONFIG = """[general]
run_name = agos

[run_presets]
InterfaceBandwidth = CALC
UseRamulatorTrace = False

[architecture_presets]
ArrayHeight = {rows}
ArrayWidth = {cols}
ifmapsramszkB = {ifmap_kb}
filtersramszkB = {filter_kb}
ofmapsramszkB = {ofmap_kb}
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Dataflow = os
ReadRequestBuffer = 32
WriteRequestBuffer = 32
Bandwidth = 10

[layout]
IfmapCustomLayout = False
FilterCustomLayout = False
IfmapSRAMBankBandwidth = 10
IfmapSRAMBankNum = 1
IfmapSRAMBankPort = 2
FilterSRAMBankBandwidth = 10
FilterSRAMBankNum = 1
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = False
SparseRep = ellpack_block
OptimizedMapping = False
BlockSize = 8
RandomNumberGeneratorSeed = 40
"""


@dataclass(frozen=True)
class ScaleSimResult:
    gemm: Gemm
    cycles: int  # compute cycles of all copies
    stall_cycles: int
    method: str  # "full" or "fold"
    simulated_cycles: int  # cycles SCALE-Sim itself stepped for one copy (the fold's, for "fold")


def version() -> str:
    """The installed SCALE-Sim's version; an AgosError naming the install command if absent or wrong."""
    try:
        found = metadata.version("scalesim")
    except metadata.PackageNotFoundError:
        raise AgosError(f"SCALE-Sim is not installed: {INSTALL}") from None
    if found != VERSION:
        raise AgosError(f"SCALE-Sim {found} is installed; agos validates against {VERSION}: {INSTALL}")
    return found


def _max_of_one_element(*args, **kwargs):
    result = builtins.max(*args, **kwargs)
    if isinstance(result, np.ndarray) and result.size == 1:
        return result.reshape(()).item()
    return result


@contextlib.contextmanager
def _numpy_compat() -> Iterator[None]:
    """See the module docstring: a `max` for SCALE-Sim's scratchpad and read-buffer modules, for
    the run only."""
    from scalesim.memory import double_buffered_scratchpad_mem as scratchpad
    from scalesim.memory import read_buffer

    saved = [(m, vars(m).get("max"), "max" in vars(m)) for m in (scratchpad, read_buffer)]
    for module, _, _ in saved:
        module.max = _max_of_one_element
    try:
        yield
    finally:
        for module, old, had in saved:
            if had:
                module.max = old
            else:
                del module.max


def _sram_kb(words: int) -> int:
    """An SRAM (1-byte words, as SCALE-Sim counts) that holds the operand twice (it double-buffers)."""
    return max(64, math.ceil(2 * words / 1024) + 1)


@dataclass(frozen=True)
class LayerReport:
    """One row of SCALE-Sim's COMPUTE_REPORT.csv."""

    layer: int  # zero-based row of the topology
    cycles: int  # "Total Cycles": compute and stall cycles
    stall_cycles: int  # "Stall Cycles": waiting for memory

    @property
    def compute_cycles(self) -> int:
        return self.cycles - self.stall_cycles


def run_files(
    config: Path, topology: Path, layout: Path, gemm: bool = True, report_dir: Path | None = None
) -> list[LayerReport]:
    """SCALE-Sim on these files, as `python -m scalesim.scale -c config -t topology -l layout
    [-i gemm]` runs them (with `_numpy_compat`), its prints swallowed; its reports go to
    `report_dir` (a temporary folder when None). Returns its COMPUTE_REPORT.csv, one row a layer."""
    version()
    with contextlib.ExitStack() as stack:
        if report_dir is None:
            report_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="agos-scalesim-")))
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), _numpy_compat():
                from scalesim.scale_sim import scalesim

                sim = scalesim(
                    save_disk_space=True,
                    verbose=False,
                    config=str(config),
                    topology=str(topology),
                    layout=str(layout),
                    input_type_gemm=gemm,
                )
                sim.run_scale(top_path=str(report_dir))
        except (Exception, SystemExit) as exc:
            said = " ".join(out.getvalue().split())[-200:]
            raise AgosError(
                f"SCALE-Sim failed on {topology}: {type(exc).__name__}: {exc}"
                + (f" (it printed: {said})" if said else "")
            ) from None
        reports = sorted(report_dir.glob("*/COMPUTE_REPORT.csv"))
        if len(reports) != 1:
            raise AgosError(
                f"SCALE-Sim wrote {len(reports)} compute reports under {report_dir}, expected one"
            )
        with open(reports[0], newline="", encoding="utf-8") as f:
            rows = [[cell.strip() for cell in row] for row in csv.reader(f)]
    head, body = rows[0], [r for r in rows[1:] if any(r)]
    col = {name: i for i, name in enumerate(head)}
    return [
        LayerReport(
            int(r[col["LayerID"]]), int(float(r[col["Total Cycles"]])), int(float(r[col["Stall Cycles"]]))
        )
        for r in body
    ]


def run_export(folder: Path, report_dir: Path | None = None) -> list[LayerReport]:
    """SCALE-Sim on a folder `agos export --to scalesim` wrote (its own run, with the NumPy ≥ 2.4
    shim), one report per topology row: "Total Cycles" and "Stall Cycles" of its COMPUTE_REPORT.csv."""
    folder = Path(folder)
    for name in (export.CONFIG, export.TOPOLOGY, export.LAYOUT):
        if not (folder / name).is_file():
            raise AgosError(f"{folder} is not a SCALE-Sim export (no {name}); run agos export --to scalesim")
    files = (folder / export.CONFIG, folder / export.TOPOLOGY, folder / export.LAYOUT)
    return run_files(*files, gemm=True, report_dir=report_dir)


def run_one(m: int, n: int, k: int, rows: int = 32, cols: int = 32) -> tuple[int, int]:
    """(compute cycles, stall cycles) SCALE-Sim reports for one M×N×K GEMM."""
    version()
    with tempfile.TemporaryDirectory(prefix="agos-scalesim-") as tmp:
        d = Path(tmp)
        (d / "scale.cfg").write_text(
            _CONFIG.format(
                rows=rows,
                cols=cols,
                ifmap_kb=_sram_kb(m * k),
                filter_kb=_sram_kb(k * n),
                ofmap_kb=_sram_kb(m * n),
            ),
            encoding="utf-8",
        )
        (d / "gemm.csv").write_text(f"Layer, M, N, K,\ng, {m}, {n}, {k},\n", encoding="utf-8")
        (d / "layout.csv").write_text(
            "Layer," + ",".join(f"f{i}" for i in range(20)) + ",\ng," + ",".join(["1"] * 20) + ",\n",
            encoding="utf-8",
        )
        try:
            (report,) = run_files(d / "scale.cfg", d / "gemm.csv", d / "layout.csv", report_dir=d / "out")
        except AgosError as exc:
            raise AgosError(f"SCALE-Sim failed on GEMM M={m} N={n} K={k}: {exc}") from None
    return report.cycles, report.stall_cycles


def simulate(
    gemms: Sequence[Gemm], rows: int = 32, cols: int = 32, method: str = "full"
) -> list[ScaleSimResult]:
    """SCALE-Sim's compute cycles for each GEMM, in order (identical shapes are run once)."""
    if method not in METHODS:
        raise AgosError(f"unknown SCALE-Sim method '{method}' (expected one of {', '.join(METHODS)})")
    if rows < 1 or cols < 1:
        raise AgosError(f"array must be at least 1×1, got {rows}×{cols}")
    version()
    done: dict[tuple[int, int, int], tuple[int, int, int]] = {}
    out = []
    for gemm in gemms:
        key = gemm.shape
        if key not in done:
            if method == "full":
                cycles, stalls = run_one(gemm.m, gemm.n, gemm.k, rows, cols)
                done[key] = (cycles, stalls, cycles)
            else:
                fold, stalls = run_one(min(gemm.m, rows), min(gemm.n, cols), gemm.k, rows, cols)
                folds = math.ceil(gemm.m / rows) * math.ceil(gemm.n / cols)
                done[key] = (folds * (fold + 1) - 1, stalls, fold)
        cycles, stalls, stepped = done[key]
        if stalls:
            raise AgosError(
                f"SCALE-Sim reported {stalls} stall cycles on {gemm.name} {gemm.pass_} "
                f"(M={gemm.m} N={gemm.n} K={gemm.k}); its SRAMs should hold the whole GEMM"
            )
        out.append(ScaleSimResult(gemm, gemm.copies * cycles, stalls, method, stepped))
    return out
