"""One sweep point, run where the work is (a Dask worker or the calling process).

A trace travels as its two files' bytes (`TraceBlob`), sent to each worker once; the worker
writes it to a private temporary directory, checks it, and keeps each (trace, density) counted
once (`agos.cost.network.count_layers`) for every point that needs it. A point then costs only
its designs' timing, which is what makes a point cheaper than a separate `agos simulate`.
A failing point returns its error as one line; it never stops the sweep."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from agos.arch.load import LoadedArch
from agos.fileio import atomic_dir
from agos.sweep.records import PointFigures, PointResult

TRACE_FILES = ("manifest.json", "masks.bin")
MAX_COUNTED = 4  # (trace, density) counts a worker keeps; each holds every layer's masks


@dataclass(frozen=True)
class TraceBlob:
    sha256: str  # the manifest checksum
    files: dict[str, bytes]


@dataclass(frozen=True)
class PointTask:
    key: str
    trace_sha256: str
    loaded: LoadedArch
    density: str
    seed: int
    equal_area: bool


def read_blob(path: str | Path, sha256: str) -> TraceBlob:
    path = Path(path)
    return TraceBlob(sha256, {name: (path / name).read_bytes() for name in TRACE_FILES})


@dataclass
class Counted:
    manifest: object
    label: str
    contexts: list


_counted: OrderedDict[tuple, Counted] = OrderedDict()
_lock = threading.Lock()


def _materialise(blob: TraceBlob) -> Path:
    """The trace as a directory on this machine (once per process and trace)."""
    root = Path(tempfile.gettempdir()) / f"agos-sweep-{os.getpid()}"
    path = root / blob.sha256[:40]
    if (path / "manifest.json").is_file():
        return path
    with atomic_dir(path) as tmp:
        for name, data in blob.files.items():
            (tmp / name).write_bytes(data)
    return path


def counted(blob: TraceBlob, density: str, seed: int) -> Counted:
    """Masks and work counts of every layer for (trace, density, seed), made once and kept."""
    from agos.capture.trace import load_trace
    from agos.cost.network import MaskSource, count_layers
    from agos.density.select import resolve_density
    from agos.errors import AgosError

    key = (blob.sha256, density, seed)
    with _lock:
        if key in _counted:
            _counted.move_to_end(key)
            return _counted[key]
        path = _materialise(blob)
        trace = load_trace(path)  # checks both checksums: what arrived is what was sent
        if trace.manifest.manifest_sha256 != blob.sha256:
            raise AgosError(f"trace {blob.sha256[:12]} arrived with another checksum")
        source = resolve_density(trace, density, seed)
        result = Counted(trace.manifest, source.label, count_layers(MaskSource.resolved_from(trace, source)))
        _counted[key] = result
        while len(_counted) > MAX_COUNTED:
            _counted.popitem(last=False)
        return result


def figures(net, name: str) -> PointFigures:
    """The row figures of one design, taken from `agos simulate`'s own entry of it."""
    from agos.analysis.simulation import design_figures

    d = design_figures(net, name, layers=False)
    twin = design_figures(net, d.twin, layers=False)
    cycles = d.cycles
    return PointFigures(
        twin=d.twin,
        cycles_fwd=cycles.fwd,
        cycles_bwd_data=cycles.bwd_data,
        cycles_bwd_weight=cycles.bwd_weight,
        cycles_backprop=cycles.backprop,
        cycles_iteration=cycles.iteration,
        twin_cycles_iteration=twin.cycles.iteration,
        speedup_backprop=d.speedup_over_twin.backprop,
        speedup_iteration=d.speedup_over_twin.iteration,
        mac_bound_backprop=d.mac_bound_speedup.backprop,
        best_dense_equal_area=d.best_dense_equal_area,
        speedup_over_best_dense_equal_area=d.speedup_over_best_dense_equal_area,
        energy_j=d.energy_j,
        twin_energy_j=twin.energy_j,
        energy_vs_twin=d.energy_vs_twin,
        area_mm2=d.area_mm2,
        time_s=cycles.iteration / (net.designs[name].arch.clock_ghz * 1e9),
        dram_bytes=d.dram_bytes,
        arch_sha256=d.sha256,
        flags="; ".join(d.flags),
    )


def failure(exc: BaseException) -> str:
    """A point's error as one line (its type and the first line of its message)."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:500]


def run_point(blob: TraceBlob, task: PointTask) -> PointResult:
    from agos.cost.network import simulate_counted

    start = time.perf_counter()
    out = PointResult(key=task.key)
    try:
        c = counted(blob, task.density, task.seed)
        out.density_label = c.label
        net = simulate_counted(c.contexts, [task.loaded], c.manifest, equal_area=task.equal_area)
        out.result = figures(net, net.requested[0])
    except Exception as exc:  # recorded on the point's row; the sweep goes on
        out.error = failure(exc)
    out.seconds = time.perf_counter() - start
    out.worker = f"{os.uname().nodename}:{os.getpid()}"
    return out


def start_worker() -> None:
    """In a worker process: one core each, quiet."""
    os.environ["AGOS_PROGRESS"] = "0"
    with contextlib.suppress(Exception):
        import torch

        torch.set_num_threads(1)
    import agos.analysis.simulation
    import agos.cost.network  # noqa: F401 — imported once here, not inside the first point
