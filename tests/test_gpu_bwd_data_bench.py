"""`agos gpu-bench --bwd-data`: the per-layer plumbing runs on a CPU in Triton's interpreter (wall
timings, never reported), and the CLI refuses cleanly without a GPU."""

from __future__ import annotations

import csv

import pytest
import torch

from agos.gpu import bench
from tests.cli_helpers import one_error_line, run_cli


@pytest.mark.slow  # the Triton interpreter on every layer (4 s); CI runs it
@pytest.mark.ci
def test_rows_checked_and_labelled_on_the_interpreter(mixed_trace, tmp_path, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    rows = bench.run(
        [mixed_trace],
        ["real"],
        0,
        (16, 16, 16),
        torch.device("cpu"),
        bench.wall_timer,
        warmup=0,
        repeats=1,
        max_layers=1,
    )
    assert len(rows) == 1
    for row in rows:
        assert row.check == "ok", row
        assert (row.model, row.batch, row.image_size, row.density) == (
            "tests.models:mixed",
            4,
            16,
            "real masks",
        )
        assert 0 <= row.empty_tiles <= 1 and row.device == "cpu"
    out = tmp_path / "rows.csv"
    bench.write_csv(rows, out)
    read = list(csv.DictReader(out.open()))
    assert [r["layer"] for r in read] == [r.layer for r in rows]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cli_without_a_gpu(mixed_trace, capsys):
    code, _, err = run_cli(capsys, "gpu-bench", "--bwd-data", "--trace", str(mixed_trace))
    assert code == 3
    assert "no CUDA GPU" in one_error_line(err)


@pytest.mark.parametrize(
    "args, text",
    [
        ([], "at least one --trace"),
        (["--trace", "x", "--block", "64x7"], "powers of two"),
        (["--trace", "x", "--repeats", "0"], "--repeats"),
    ],
)
def test_cli_errors(capsys, args, text):
    code, _, err = run_cli(capsys, "gpu-bench", "--bwd-data", *args)
    assert code == 2
    assert text in one_error_line(err)
