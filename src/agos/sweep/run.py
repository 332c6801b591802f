"""Run a sweep's points: on a Dask cluster (a local one by default, one single-threaded worker
process per core, or an existing `dask.distributed` scheduler), or serially in this process
(`workers=0`, the benchmark's baseline). Each trace is scattered to the workers once; each finished
point is stored in the cache (`stages.cache.Cache`, OUT/cache) as it arrives, so an interrupted
sweep resumes; a failing point is recorded with its error on its row and runs again next time. A
progress bar shows points done and the rate."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agos.errors import AgosError
from agos.stages.cache import Cache
from agos.sweep.plan import Plan, Point, build_plan, capture_models, point_inputs
from agos.sweep.point import PointTask, failure, read_blob, run_point, start_worker
from agos.sweep.records import PointResult, SweepRow
from agos.sweep.spec import SweepSpec, load_spec
from agos.sweep.table import row, write_skipped, write_tables

POINT = "point.json"

DASK_LOGGERS = ("distributed", "dask", "tornado", "bokeh", "asyncio")


@dataclass
class SweepResult:
    plan: Plan
    records: list[SweepRow]
    computed: int = 0
    cached: int = 0
    failed: int = 0
    seconds: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def rows(self) -> list[dict]:
        """The table's rows (axis values as columns), as written to results.parquet and .csv."""
        return [r.flat() for r in self.records]

    @property
    def rate(self) -> float | None:
        return self.computed / self.seconds if self.seconds > 0 and self.computed else None


def quiet_dask() -> None:
    """Dask's INFO chatter (cluster start, worker registration) is not agos's output."""
    for name in DASK_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("DASK_DISTRIBUTED__LOGGING__DISTRIBUTED", "error")


def _tasks(plan: Plan, todo: list[Point], equal_area: bool) -> list[PointTask]:
    return [
        PointTask(p.key, plan.traces[p.trace].sha256, p.loaded, p.density, p.seed, equal_area) for p in todo
    ]


@contextlib.contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Callable[[], None]]:
    if not enabled or total == 0:
        yield lambda: None
        return
    start = time.perf_counter()
    columns = (
        TextColumn("[bold]sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task("sweep", total=total, rate="")
        done = 0

        def advance() -> None:
            nonlocal done
            done += 1
            rate = done / max(1e-9, time.perf_counter() - start)
            progress.update(task, advance=1, rate=f"{rate:.2f} points/s")

        yield advance


def _serial(plan: Plan, tasks: list[PointTask], record: Callable[[PointResult], None]) -> None:
    blobs = {}
    for task in tasks:
        if task.trace_sha256 not in blobs:
            ref = next(t for t in plan.traces if t.sha256 == task.trace_sha256)
            blobs[task.trace_sha256] = read_blob(ref.path, ref.sha256)
        record(run_point(blobs[task.trace_sha256], task))


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int | None) -> Iterator:
    """A client of the given scheduler, or of a local cluster of `workers` single-threaded worker
    processes (default: one per core). Closed on exit, Ctrl-C included."""
    quiet_dask()
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise AgosError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        try:
            yield client
        finally:
            client.close()
        return
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _on_dask(client, plan: Plan, tasks: list[PointTask], record: Callable[[PointResult], None]) -> None:
    from distributed import as_completed

    client.run(start_worker)
    needed = {t.trace_sha256 for t in tasks}
    blobs = {}
    for ref in plan.traces:  # each trace goes to every worker once, not with every point
        if ref.sha256 in needed and ref.sha256 not in blobs:
            blobs[ref.sha256] = client.scatter(read_blob(ref.path, ref.sha256), broadcast=True, hash=False)
    futures = {
        client.submit(run_point, blobs[t.trace_sha256], t, key=f"agos-point-{t.key}", pure=False): t
        for t in tasks
    }
    try:
        for future in as_completed(futures):
            task = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # the worker died or the task could not run: this point's error
                result = PointResult(key=task.key, error=failure(exc))
            record(result)
            future.release()
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def run_sweep(
    spec_path: Path | str,
    out: Path | str,
    scheduler: str | None = None,
    workers: int | None = None,
    plot: bool = False,
    spec: SweepSpec | None = None,
    console: Console | None = None,
) -> SweepResult:
    console = console or Console(stderr=True)
    where = str(spec_path)
    spec = spec or load_spec(spec_path)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AgosError(f"--out {out} exists and is not a directory")
    if workers is not None and not 0 <= workers <= 1024:
        raise AgosError(f"--workers must be between 0 (serial, no Dask) and 1024, got {workers}")
    if scheduler is not None and workers is not None:
        raise AgosError("--scheduler uses that cluster's workers; leave out --workers")
    cache = Cache(out / "cache")
    cache.sweep()
    extra = capture_models(spec, cache, where, console) if spec.models else []
    plan = build_plan(spec, where, extra)
    out.mkdir(parents=True, exist_ok=True)
    inputs = {p.key: point_inputs(plan.traces[p.trace].sha256, p.loaded, p.density, p.seed, spec.equal_area)
              for p in plan.points}  # fmt: skip
    todo = [p for p in plan.points if not cache.done(p.key)]
    result = SweepResult(plan, [], cached=len(plan.points) - len(todo))
    skipped = write_skipped(plan, out)
    console.print(
        f"sweep: {len(plan.points)} points ({result.cached} cached, {len(todo)} to run); "
        + (
            f"{len(plan.skipped)} skipped by the constraints (listed in {skipped})"
            if plan.skipped
            else "none skipped by constraints"
        ),
        highlight=False,
        soft_wrap=True,
    )
    for (ti, density), note in plan.density_notes.items():
        console.print(
            f"note: density {density} on {plan.traces[ti].path}: {note}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    enabled = sys.stderr.isatty() or os.environ.get("AGOS_PROGRESS") == "1"
    failures: dict[str, PointResult] = {}  # kept for this run's rows only: a failed point runs again
    start = time.perf_counter()
    try:
        with _progress(len(todo), enabled) as advance:

            def record(rec: PointResult) -> None:
                if rec.error is None:
                    cache.put(rec.key, inputs[rec.key], POINT, rec, rec.seconds or 0.0)
                else:
                    failures[rec.key] = rec
                result.computed += 1
                result.failed += rec.error is not None
                advance()

            tasks = _tasks(plan, todo, spec.equal_area)
            if not tasks:
                pass
            elif workers == 0:
                _serial(plan, tasks, record)
            else:
                with dask_client(scheduler, workers) as client:
                    _on_dask(client, plan, tasks, record)
    finally:
        result.seconds = time.perf_counter() - start

        def stored(p: Point) -> PointResult | None:
            return cache.read(p.key, POINT, PointResult) if cache.done(p.key) else failures.get(p.key)

        result.records = [row(plan, p, stored(p)) for p in plan.points]
        if result.records:
            parquet, csv_path = write_tables(result.records, out)
            result.files.update(parquet=parquet, csv=csv_path)
    rate = f", {result.rate:.2f} points/s" if result.rate else ""
    written = (
        f"{result.files['parquet']}, {result.files['csv']}"
        if result.files
        else "no results table: every point was left out by the constraints"
    )
    console.print(
        f"swept {len(plan.points)} points in {result.seconds:.1f} s{rate}: {result.computed} computed, "
        f"{result.cached} cached, {result.failed} failed · {written}",
        highlight=False,
        soft_wrap=True,
    )
    if result.failed:
        first = next(r for r in result.records if r.error)
        console.print(
            f"first failure: {first.design} {first.density}: {first.error}",
            highlight=False,
            soft_wrap=True,
        )
    if plot and result.rows:
        from agos.sweep.plot import plot_sweep

        for path in plot_sweep(result.rows, plan, out, where):
            result.files[path.stem] = path
            console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    return result
