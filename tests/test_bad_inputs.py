"""Ordinary bad inputs: each is one specific line on stderr and a non-zero exit — never the
catch-all "internal error", never a traceback, never a half-written output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_helpers import one_error_line, run_cli


def _terminal_sigint() -> None:
    """Ctrl-C as a terminal gives it: a run started in the background by a non-interactive shell
    (CI scripts, `cmd &`) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _trace(capsys, out, *args):
    return run_cli(
        capsys,
        "trace",
        "--out",
        str(out),
        "--model",
        "tests.models:mixed",
        "--image-size",
        "16",
        "--batch-size",
        "2",
        *args,
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (("--seed", "-1"), "--seed must be between 0"),
        (("--batch-size", str(10**12)), "for the input images alone"),
        (("--image-size", "100000"), "--image-size must be between 8"),
        (("--lr", "-0.5"), "--lr must be a finite number"),
        (("--momentum", "inf"), "--momentum must be a finite number"),
        (("--train-steps", "-2"), "--train-steps must be between 0 and"),
        (("--device", "tpu"), "unknown device"),
        (("--data", "imagefolder:/no/such/folder"), "does not exist"),
        (("--data", "pictures"), "unknown data source"),
        (("--weights", "/no/such/file.pt"), "does not exist"),
    ],
)
def test_bad_trace_arguments(capsys, tmp_path, args, message):
    code, _, err = _trace(capsys, tmp_path / "t", *args)
    line = one_error_line(err)
    assert code != 0 and message in line and "internal error" not in line
    assert not (tmp_path / "t").exists()


def test_batch_of_one_with_batch_norm_is_a_clear_error(capsys, tmp_path):
    code, _, err = run_cli(
        capsys,
        "trace",
        "--out",
        str(tmp_path / "t"),
        "--model",
        "resnet18",
        "--batch-size",
        "1",
        "--image-size",
        "32",
    )
    line = one_error_line(err)
    assert code != 0 and "failed on a training batch of 1×3×32×32" in line and "per channel" in line


def test_unwritable_outputs(capsys, tmp_path, mixed_trace):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    code, _, err = _trace(capsys, blocker / "trace")
    assert code != 0 and "is a file, so nothing can be made below it" in one_error_line(err)
    folder = tmp_path / "folder"
    folder.mkdir()
    code, _, err = run_cli(capsys, "sparsity", str(mixed_trace), "--json", str(folder))
    assert code != 0 and "is a folder; name a file" in one_error_line(err)
    code, _, err = run_cli(capsys, "sparsity", str(mixed_trace), "--csv", str(blocker / "x.csv"))
    assert code != 0 and "is a file, so nothing can be made below it" in one_error_line(err)


def test_bad_arch_files(capsys, tmp_path, mixed_trace):
    binary = tmp_path / "bad.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    code, _, err = run_cli(capsys, "simulate", str(mixed_trace), "--arch", str(binary))
    assert code != 0 and "not UTF-8" in one_error_line(err)


def test_impossible_geometry_in_a_trace(capsys, tmp_path, mixed_trace):
    import shutil

    d = tmp_path / "t"
    shutil.copytree(mixed_trace, d)
    raw = json.loads((d / "manifest.json").read_text())
    raw["layers"][2]["geometry"]["groups"] = 0
    (d / "manifest.json").write_text(json.dumps(raw))
    code, _, err = run_cli(capsys, "sparsity", str(d))
    line = one_error_line(err)
    assert code != 0 and "invalid at layers.2" in line and "groups=0" in line


def test_a_module_that_exits_on_import(capsys, tmp_path, monkeypatch):
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, _, err = run_cli(capsys, "trace", "--out", str(tmp_path / "t"), "--model", "exits_on_import:make")
    assert code != 0 and "called sys.exit(0)" in one_error_line(err)


@pytest.mark.slow  # 5 s of argument probes; CI runs it
@pytest.mark.ci
def test_reproduce_checks_every_argument_before_any_work(capsys, tmp_path):
    out = tmp_path / "r"
    for args, message in [
        (("--arch", "agos@nowhere"), "nowhere"),
        (("--check-images", "-1"), "--check-images must be between 0 and the batch size"),
        (("--models", "resnet18,resnet5"), "unknown model 'resnet5'"),
        (("--seed", "-3"), "--seed must be between 0"),
        (("--data", "imagefolder:/no/such"), "does not exist"),
        (("--models", "resnet18,vgg16", "--image-size", "16", "--trained", "none"), "vgg16 cannot run"),
    ]:
        start = time.monotonic()
        code, _, err = run_cli(
            capsys, "reproduce", "--out", str(out), "--models", "resnet18", "--quick", *args
        )
        assert code != 0 and message in one_error_line(err), args
        assert time.monotonic() - start < 30
        assert not (out / "cache").exists() or not any((out / "cache").iterdir())


@pytest.mark.slow  # 8 s: a fresh interpreter imports torch; CI runs it
@pytest.mark.ci
def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
    marker = tmp_path / "marker"
    env = {**os.environ, "AGOS_TEST_MARKER": str(marker), "AGOS_PROGRESS": "0"}
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agos",
            "trace",
            "--out",
            str(tmp_path / "t"),
            "--model",
            "tests.models:slow_factory",
            "--image-size",
            "16",
            "--batch-size",
            "2",
        ],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_terminal_sigint,
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert marker.exists(), proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert [line for line in err.splitlines() if line.strip()] == ["agos: interrupted"]
    assert not (tmp_path / "t").exists()
