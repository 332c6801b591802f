"""`agos sweep`: points equal `agos simulate` of the same configuration, a LocalCluster of 2
workers and a real scheduler + worker (separate processes) give the serial loop's rows, an
interrupted sweep resumes from its point cache, a failing point is recorded, a bad spec is one line
naming the field."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import yaml
from rich.console import Console

from agos.cli import main
from agos.sweep.run import run_sweep
from tests.cli_helpers import one_error_line, run_cli

QUIET = Console(stderr=True, quiet=True)
EXAMPLE = """\
traces: [traces/resnet18]
archs: [agos]
axes:
  pe_array.cols: [16, 32, 64]
  pe_array.rows: [16, 32]
"""
COMPARED = ("cycles_fwd", "cycles_bwd_data", "cycles_bwd_weight", "cycles_iteration", "energy_j", "area_mm2")


def _spec(tmp_path: Path, body: dict | str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body if isinstance(body, str) else yaml.safe_dump(body))
    return path


def _figures(rows: list[dict]) -> list[tuple]:
    return [(r["design"], r["point"], *(r[k] for k in COMPARED), r["speedup_iteration"]) for r in rows]


@pytest.fixture(scope="module")
def serial_example(mixed_trace, tmp_path_factory):
    """The example spec, as written (trace path relative to the cwd), run serially: the rows the
    Dask runs must reproduce. The trace at traces/resnet18 is the test model's small trace."""
    root = tmp_path_factory.mktemp("example")
    shutil.copytree(mixed_trace, root / "traces" / "resnet18")
    spec = _spec(root, EXAMPLE)
    with _in(root):
        return root, spec, run_sweep("spec.yaml", "serial", workers=0, console=QUIET)


def _in(root: Path):
    import contextlib
    import os

    @contextlib.contextmanager
    def cwd():
        old = os.getcwd()
        os.chdir(root)
        try:
            yield
        finally:
            os.chdir(old)

    return cwd()


def test_point_equals_agos_simulate(mixed_trace, tmp_path, capsys):
    """The key property: a point is the same configuration run through `agos simulate`."""
    spec = _spec(
        tmp_path,
        {
            "traces": [str(mixed_trace)],
            "archs": ["agos@rows"],
            "axes": {"pe_array.cols": [8], "skipping.lookahead": [2, "inf"], "memory.dram_gbps": [64]},
            "densities": ["real", {"uniform": [0.6]}],
            "density_seed": 3,
        },
    )
    result = run_sweep(spec, tmp_path / "out", workers=0, console=QUIET)
    assert len(result.rows) == 4 and all(r["error"] is None for r in result.rows)
    for r, p in zip(result.rows[::3], result.plan.points[::3], strict=True):  # (L=2, real), (L=inf, uniform)
        design = tmp_path / f"{p.key[:8]}.yaml"
        design.write_text(yaml.safe_dump(p.loaded.arch.model_dump(mode="json")))
        out = tmp_path / f"{p.key[:8]}.json"
        code, _, err = run_cli(
            capsys, "simulate", str(mixed_trace), "--arch", str(design), "--density", p.density,
            "--seed", "3", "--json", str(out),
        )  # fmt: skip
        assert code == 0, err
        sim = json.loads(out.read_text())
        d = next(v for v in sim["simulation"]["designs"].values() if v["role"] == "design")
        assert r["cycles_iteration"] == d["cycles"]["iteration"]
        assert r["cycles_bwd_data"] == d["cycles"]["bwd_data"]
        assert r["energy_j"] == d["energy_j"]
        assert r["area_mm2"] == d["area_mm2"]
        assert r["speedup_iteration"] == d["speedup_over_twin"]["iteration"]
        assert r["speedup_over_best_dense_equal_area"] == d["speedup_over_best_dense_equal_area"]
        assert r["pe_array.cols"] == 8 and d["pe_array"][1] == 8
    assert result.rows[0]["cycles_iteration"] != result.rows[2]["cycles_iteration"]  # the window matters


@pytest.mark.slow  # 11 s of cluster start-up; CI runs it
@pytest.mark.ci
def test_example_spec_on_a_local_cluster_of_2_workers(serial_example):
    root, _, serial = serial_example
    with _in(root):
        code = main(["sweep", "spec.yaml", "--out", "dask", "--workers", "2", "--plot"])
    assert code == 0
    rows = pq.read_table(root / "dask" / "results.parquet").to_pylist()
    assert len(rows) == 12  # 3 × 2 axis values × agos on both organisations
    assert {r["organisation"] for r in rows} == {"systolic", "rows"}
    assert _figures(rows) == _figures(serial.rows)
    assert all(r["error"] is None and r["trace_sha256"] == serial.plan.traces[0].sha256 for r in rows)
    assert len({r["worker"] for r in rows}) == 2
    assert (root / "dask" / "pareto.png").stat().st_size > 0
    assert (root / "dask" / "sensitivity.png").stat().st_size > 0
    assert (root / "dask" / "results.csv").read_text().count("\n") == 13


def _dask_cli(name: str) -> list[str]:
    """The `dask` CLI of this interpreter's environment, or its module entry point."""
    exe = Path(sys.executable).parent / "dask"
    if exe.is_file():
        return [str(exe), name]
    module = {"scheduler": "distributed.cli.dask_scheduler", "worker": "distributed.cli.dask_worker"}[name]
    return [sys.executable, "-m", module]


@pytest.mark.slow  # ~17 s: three interpreters each import torch (scheduler, worker, the agos client)
@pytest.mark.ci
def test_sweep_through_a_separate_scheduler_and_worker(serial_example, tmp_path):
    root, _, serial = serial_example
    address_file = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen(
        [*_dask_cli("scheduler"), "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(address_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    worker = None
    try:
        for _ in range(300):
            if address_file.is_file() and address_file.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(address_file.read_text())["address"]
        worker = subprocess.Popen(
            [*_dask_cli("worker"), address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        run = subprocess.run(
            [sys.executable, "-m", "agos", "sweep", "spec.yaml", "--out", "remote", "--scheduler", address],
            cwd=root, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        lines = run.stderr.strip().splitlines()
        assert lines[0].startswith("sweep: 12 points (0 cached, 12 to run)")
        assert lines[1].startswith("swept 12 points") and "12 computed, 0 cached, 0 failed" in lines[1]
        assert len(lines) == 2, run.stderr  # dask's logging stays out of agos's output
        rows = pq.read_table(root / "remote" / "results.parquet").to_pylist()
        assert _figures(rows) == _figures(serial.rows)
        assert len({r["worker"] for r in rows}) == 1
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.terminate()
        for process in (worker, scheduler):
            if process is not None:
                process.wait(timeout=30)


def test_interrupted_sweep_resumes(serial_example, monkeypatch):
    root, spec, serial = serial_example
    import agos.sweep.run as sweep_run

    real = sweep_run.run_point
    calls = []
    armed = [True]

    def interrupted(blob, task):
        if armed[0] and len(calls) == 5:
            armed[0] = False
            raise KeyboardInterrupt
        calls.append(task.key)
        return real(blob, task)

    monkeypatch.setattr(sweep_run, "run_point", interrupted)
    out = root / "resume"
    with _in(root), pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out, workers=0, console=QUIET)
    assert len(list((out / "cache").glob("point-*/point.json"))) == 5
    partial = pq.read_table(out / "results.parquet").to_pylist()
    assert sum(r["error"] == "not run (interrupted)" for r in partial) == 7
    calls.clear()
    with _in(root):
        again = run_sweep(spec, out, workers=0, console=QUIET)
    assert (again.cached, again.computed) == (5, 7)
    assert len(calls) == 7 and not set(calls) & {p.key for p in serial.plan.points[:5]}
    assert _figures(again.rows) == _figures(serial.rows)
    with _in(root):
        third = run_sweep(spec, out, workers=0, console=QUIET)
    assert (third.cached, third.computed) == (12, 0)


def test_a_failing_point_is_recorded_not_fatal(serial_example, monkeypatch, capsys):
    root, spec, _ = serial_example
    import agos.cost.network as network

    real = network.simulate_counted

    def failing(contexts, requested, manifest, equal_area=True):
        if requested[0].arch.pe_array.cols == 64 and requested[0].arch.organisation.name == "rows":
            raise ValueError("deliberate failure\nsecond line")
        return real(contexts, requested, manifest, equal_area)

    monkeypatch.setattr(network, "simulate_counted", failing)
    with _in(root):
        result = run_sweep(spec, root / "failing", workers=0)
    failed = [r for r in result.rows if r["error"] is not None]
    assert result.failed == 2 and len(failed) == 2
    assert all(
        r["error"] == "ValueError: deliberate failure" and r["cycles_iteration"] is None for r in failed
    )
    assert all(r["area_mm2"] > 0 for r in failed)
    assert sum(r["error"] is None for r in result.rows) == 10
    assert "2 failed" in capsys.readouterr().err
    monkeypatch.setattr(network, "simulate_counted", real)
    with _in(root):
        retried = run_sweep(spec, root / "failing", workers=0, console=QUIET)
    assert (retried.cached, retried.computed, retried.failed) == (10, 2, 0)


def test_constraints_skip_points_and_count_them(mixed_trace, tmp_path, capsys):
    spec = _spec(
        tmp_path,
        {
            "traces": [str(mixed_trace)],
            "archs": ["dense@systolic", "agos@systolic"],
            "axes": {"pe_array.rows": [8, 16, 32, 48]},
            "constraints": {"equal_area_to": {"design": "agos@systolic", "tolerance": 0.3}},
            "sample": {"n": 3, "seed": 1},
            "equal_area": False,
        },
    )
    result = run_sweep(spec, tmp_path / "out", workers=0)
    err = capsys.readouterr().err
    kept, skipped = len(result.plan.points), len(result.plan.skipped)
    assert kept + skipped == 6 and skipped > 0 and kept > 0
    assert f"{skipped} skipped by the constraints" in err
    assert json.loads((tmp_path / "out" / "skipped.json").read_text())["count"] == skipped
    assert all(r["speedup_over_best_dense_equal_area"] is None for r in result.rows)
    again = run_sweep(spec, tmp_path / "out2", workers=0, console=QUIET)
    assert [p.key for p in again.plan.points] == [p.key for p in result.plan.points]  # seeded sample


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("traces: [T]\narchs: [agos]\naxis: {pe_array.rows: [8]}\n", "'axis'"),
        ("traces: [T]\narchs: [agos]\naxes: {pe_array.rowz: [8]}\n", "'axes.pe_array.rowz'"),
        ("traces: [T]\narchs: [agos]\naxes: {pe_array.rows: [0]}\n", "'axes.pe_array.rows'"),
        ("traces: [T]\narchs: [agos]\naxes: {skipping.lookahead: [fast]}\n", "'axes.skipping.lookahead'"),
        ("traces: [T]\naxes: {pe_array.rows: [8]}\n", "'archs'"),
        ("traces: [T]\narchs: [nosuch]\n", "'archs'"),
        ("traces: [T]\narchs: [agos]\ndensities: ['uniform:2']\n", "'densities'"),
        (
            "traces: [T]\narchs: [agos]\naxes: {pe_array.rows: {start: 8, stop: 4, step: 2}}\n",
            "'axes.pe_array.rows'",
        ),
        ("traces: [missing/trace]\narchs: [agos]\n", "'traces'"),
        ("traces: [T]\narchs: [agos]\nsample: {n: 0}\n", "'sample.n'"),
        (
            "traces: [T]\narchs: [agos]\nconstraints: {area_mm2: {max: -1, min: 2}}\n",
            "'constraints.area_mm2'",
        ),
    ],
)
def test_a_bad_spec_is_one_line_naming_the_field(mixed_trace, tmp_path, capsys, body, field):
    spec = _spec(tmp_path, body.replace("[T]", f"[{mixed_trace}]"))
    code, _, err = run_cli(capsys, "sweep", str(spec), "--out", str(tmp_path / "out"))
    assert code == 2
    line = one_error_line(err)
    assert line.startswith(f"agos: error: {spec}: field {field}"), line
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # 2.5 s; CI runs it
@pytest.mark.ci
def test_sweep_section_of_the_report(serial_example):
    root, _, serial = serial_example
    from agos.sweep.section import sweep_section

    with _in(root):
        section = sweep_section("spec.yaml", root / "report-sweep", QUIET, workers=0)
    assert section.points == 12 and section.failed == 0 and section.skipped == 0
    assert {b.design for b in section.best} == {"agos@systolic", "agos@rows"}
    best = max(r["speedup_iteration"] for r in serial.rows if r["design"] == "agos@rows")
    assert next(b for b in section.best if b.design == "agos@rows").speedup_iteration == best
    assert Path(section.files["pareto"]).is_file()


@pytest.mark.slow
@pytest.mark.ci
def test_reproduce_with_a_sweep_section(serial_example, tmp_path):
    root = serial_example[0]
    with _in(root):
        code = main(
            ["reproduce", "--models", "squeezenet1_1", "--batch-size", "2", "--image-size", "32",
             "--check-images", "0", "--trained", "none", "--arch", "dense,agos", "--sweep", "spec.yaml",
             "--out", str(tmp_path / "r")]
        )  # fmt: skip
    assert code == 0
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["sweep"]["points"] == 12
    page = (tmp_path / "r" / "index.html").read_text()
    assert "Design-space sweep" in page and "sweep: Pareto front" in page


def test_weights_retrained_in_place_are_captured_again(tmp_path):
    """A `models:` entry's trace is keyed on the bytes of its weights file, not on the option's
    text: a file retrained in place between two sweeps gives a new trace and new figures (the trace
    used to be keyed on the options, so the second sweep silently showed the old weights')."""
    from tests.models import Mixed

    weights = tmp_path / "w.pt"
    torch.manual_seed(0)
    torch.save(Mixed().state_dict(), weights)
    model = {"model": "tests.models:mixed", "weights": str(weights), "batch_size": 4, "image_size": 16}
    spec = _spec(tmp_path, {"models": [{**model, "seed": 3}], "archs": ["agos@systolic"]})
    first = run_sweep(spec, tmp_path / "out", workers=0, console=QUIET)
    torch.manual_seed(1)  # "retrained": other weights, same file
    torch.save(Mixed().state_dict(), weights)
    second = run_sweep(spec, tmp_path / "out", workers=0, console=QUIET)
    (a,), (b,) = first.rows, second.rows
    assert a["error"] is None and b["error"] is None and second.computed == 1
    assert a["weights_sha256"] != b["weights_sha256"] and a["trace_sha256"] != b["trace_sha256"]
    assert _figures([a]) != _figures([b])
    third = run_sweep(spec, tmp_path / "out", workers=0, console=QUIET)  # unchanged: all cached
    assert third.computed == 0 and _figures(third.rows) == _figures([b])
