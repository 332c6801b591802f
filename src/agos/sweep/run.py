"""Run a sweep's points: on a Dask cluster (a local one by default, one single-threaded worker
process per core, or an existing `dask.distributed` scheduler), or serially in this process
(`workers=0`, the benchmark's baseline). Each trace is scattered to the workers once; each finished
point is stored in the cache (`stages.cache.Cache`, OUT/cache) as it arrives, so an interrupted
sweep resumes; a failing point is recorded with its error on its row and runs again next time. A
progress bar shows points done, the rate and the time left.

The points are counted before they are planned (a grid beyond `plan.MAX_POINTS` is refused in one
line), and every argument is checked before any work. A sweep that fails writes no results table;
an interrupted one writes the rows it finished (the rest "not run (interrupted)"). Ctrl-C is
one line: the local cluster's workers write their stderr to the null device (a terminal's Ctrl-C
reaches them too), Dask's logging is silenced once it is pressed, and it is never lost while the
cluster starts or closes (it is held, then raised)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from agos.errors import AgosError
from agos.inputs.options import RunOptions
from agos.stages.cache import Cache
from agos.sweep.plan import (
    MAX_POINTS,
    Plan,
    Point,
    build_plan,
    capture_models,
    check_points,
    count_points,
    point_inputs,
)
from agos.sweep.point import PointTask, failure, read_blob, run_point, start_worker
from agos.sweep.records import PointResult, SweepRow
from agos.sweep.spec import SweepSpec, load_spec
from agos.sweep.table import row, write_skipped, write_tables

POINT = "point.json"
SKIPPED = "skipped.json"

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
    # another local cluster holding the diagnostics port: Dask moves to another one and warns
    warnings.filterwarnings("ignore", message=r"Port \d+ is already in use", category=UserWarning)


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
        TimeRemainingColumn(),
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


class CtrlC:
    """SIGINT in this process while a Dask run is on: noted always, so that an interrupt a library
    swallows is raised again at the next point and when the run ends (never lost); raised at once
    unless held (while the cluster starts or closes, which must not stop half-way)."""

    def __init__(self) -> None:
        self.hit = False
        self.held = False

    def __call__(self, signum, frame) -> None:
        self.hit = True
        _silence_dask()  # the workers got it too: what Dask logs about them from now on is noise
        if not self.held:
            raise KeyboardInterrupt

    def check(self) -> None:
        if self.hit:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[CtrlC]:
        try:
            previous = signal.signal(signal.SIGINT, self)
        except ValueError:  # not the main thread: Ctrl-C is the caller's to handle
            yield self
            return
        try:
            yield self
            self.check()
        finally:
            signal.signal(signal.SIGINT, previous)

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Hold Ctrl-C: noted, and raised on exit."""
        held, self.held = self.held, True
        try:
            yield
        finally:
            self.held = held
        if not held:
            self.check()


@contextlib.contextmanager
def _children_quiet() -> Iterator[None]:
    """The processes started meanwhile (the local cluster's workers) write their stderr to the null
    device: a terminal's Ctrl-C reaches them too, and their tracebacks are not agos's output (a
    point that fails is recorded on its row with its error). This process's stderr is back on exit."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _silence_dask() -> None:
    """Closing a cluster after an interrupt makes Dask log errors about the workers it lets go."""
    for name in DASK_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def check_scheduler(address: str) -> None:
    """A scheduler address Dask can dial (scheme://host:port, port 1…65535), checked before any
    work; whether it answers is known only when the sweep connects to it."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import backends

    try:
        scheme, location = parse_address(address)
        if scheme not in backends:
            raise ValueError(f"unknown scheme '{scheme}' (known: {', '.join(sorted(backends))})")
        if scheme != "inproc":
            host, port = parse_host_port(location)
            if not host or any(c.isspace() for c in host):
                raise ValueError(f"no host name in '{location}'")
            if not 1 <= int(port) <= 65535:
                raise ValueError(f"port {port} is not between 1 and 65535")
    except ValueError as exc:
        raise AgosError(
            f"--scheduler {address}: not a scheduler address ({exc}); e.g. tcp://HOST:8786"
        ) from None


SCHEDULER_WAIT = 20.0  # seconds a --scheduler has to answer as a Dask scheduler


def probe_scheduler(address: str, wait: float | None = None) -> None:
    """Ask the address who it is (Dask's `identity` call) within a deadline, before a client
    connects: something else listening there (a web server, a proxy) made the client hang for
    minutes or fail inside Dask's framing with a MemoryError."""
    import asyncio

    from distributed.comm import connect

    wait = SCHEDULER_WAIT if wait is None else wait

    async def ask() -> object:
        comm = await connect(address, timeout=wait)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    try:
        reply = asyncio.run(asyncio.wait_for(ask(), wait))
    except TimeoutError:
        raise AgosError(f"--scheduler {address}: no Dask scheduler answered within {wait:g} s") from None
    except Exception as exc:  # whatever answered, it is not a Dask scheduler
        text = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise AgosError(f"--scheduler {address}: cannot connect ({text})") from None
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        kind = reply.get("type") if isinstance(reply, dict) else type(reply).__name__
        raise AgosError(f"--scheduler {address}: what answered is not a Dask scheduler ({kind})")


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int | None, ctrl_c: CtrlC | None = None) -> Iterator:
    """A client of the given scheduler, or of a local cluster of `workers` single-threaded worker
    processes (default: one per core). Closed on exit, Ctrl-C included."""
    quiet_dask()
    from distributed import Client, LocalCluster

    ctrl_c = ctrl_c or CtrlC()
    if scheduler is not None:
        check_scheduler(scheduler)
        probe_scheduler(scheduler)
        try:
            client = Client(scheduler, timeout=f"{SCHEDULER_WAIT:g}s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise AgosError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        try:
            yield client
        finally:
            with ctrl_c.holding():
                client.close()
        return
    n = workers or os.cpu_count() or 1
    cluster = client = None
    try:
        with ctrl_c.holding(), _children_quiet():
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            client = Client(cluster)
        yield client
    finally:
        with ctrl_c.holding():
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()


def _on_dask(
    client, plan: Plan, tasks: list[PointTask], record: Callable[[PointResult], None], ctrl_c: CtrlC
) -> None:
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
            ctrl_c.check()
    except BaseException:
        with ctrl_c.holding(), contextlib.suppress(Exception):  # the interrupt, not a failed cancel
            client.cancel(list(futures))
        raise


def check_arguments(out: Path | str, scheduler: str | None, workers: int | None) -> None:
    """The command line's own arguments, before the spec is planned."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AgosError(f"--out {out} exists and is not a directory")
    cache = out / "cache"
    if cache.exists() and not cache.is_dir():
        raise AgosError(f"--out {out}: {cache} is a file; agos keeps the sweep's points in that folder")
    if workers is not None and not 0 <= workers <= 1024:
        raise AgosError(f"--workers must be between 0 (serial, no Dask) and 1024, got {workers}")
    if scheduler is not None and workers is not None:
        raise AgosError("--scheduler uses that cluster's workers; leave out --workers")
    if scheduler is not None:
        check_scheduler(scheduler)


def check_sweep(spec_path: Path | str) -> SweepSpec:
    """All a sweep can check before any work, for a command that runs it only after its own (the
    report's sweep section): the spec, its point count, its `models:` options, traces, densities,
    designs, axis paths and every axis value on every design."""
    from agos.stages.resolve import resolve_run
    from agos.sweep.plan import check_axis_values, check_spec

    where = str(spec_path)
    spec = load_spec(spec_path)
    check_points(count_points(spec, where), MAX_POINTS, flag=None)
    for i, m in enumerate(spec.models):
        try:
            resolve_run(RunOptions.model_validate(m.model_dump()))
        except AgosError as exc:
            raise AgosError(f"{where}: field 'models.{i}': {exc}") from None
    check_axis_values(spec, check_spec(spec, where), where)
    return spec


def run_sweep(
    spec_path: Path | str,
    out: Path | str,
    scheduler: str | None = None,
    workers: int | None = None,
    plot: bool = False,
    spec: SweepSpec | None = None,
    console: Console | None = None,
    max_points: int = MAX_POINTS,
    max_points_flag: str | None = "--max-points",
) -> SweepResult:
    console = console or Console(stderr=True)
    where = str(spec_path)
    spec = spec or load_spec(spec_path)
    check_arguments(out, scheduler, workers)
    out = Path(out)
    announce = check_points(count_points(spec, where), max_points, max_points_flag)
    cache = Cache(out / "cache")
    cache.sweep()
    extra = capture_models(spec, cache, where, console) if spec.models else []
    if announce:
        console.print(announce, highlight=False, soft_wrap=True)
    plan = build_plan(spec, where, extra)
    out.mkdir(parents=True, exist_ok=True)
    inputs = {p.key: point_inputs(plan.traces[p.trace].sha256, p.loaded, p.density, p.seed, spec.equal_area)
              for p in plan.points}  # fmt: skip
    todo = [p for p in plan.points if not cache.done(p.key)]
    result = SweepResult(plan, [], cached=len(plan.points) - len(todo))
    skipped = out / SKIPPED
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
    ended = "failed"  # a failure writes no table; an interrupt the rows it finished
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
                with CtrlC().installed() as ctrl_c, dask_client(scheduler, workers, ctrl_c) as client:
                    _on_dask(client, plan, tasks, record, ctrl_c)
        ended = "finished"
    except KeyboardInterrupt:
        ended = "interrupted"
        raise
    finally:
        result.seconds = time.perf_counter() - start

        def stored(p: Point) -> PointResult | None:
            return cache.read(p.key, POINT, PointResult) if cache.done(p.key) else failures.get(p.key)

        if ended != "failed":
            result.records = [row(plan, p, stored(p)) for p in plan.points]
        if ended == "finished" or any(r.error is None for r in result.records):
            write_skipped(plan, out)
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
