"""One rule for every command that writes a folder (`agos.fileio.claim_output`): a missing or empty
folder, or one holding this same run, is written; a folder agos did not make, or one holding
another run, is refused in one line unless --force. It once let `agos trace --out DIR` replace
another model's trace without a word, and `sweep`/`trajectory` write their tables into a foreign
folder over its owner's files."""

from __future__ import annotations

import json

import pytest
import yaml

from agos.errors import AgosError
from agos.fileio import OUTPUT_MARKER, claim_output
from tests.cli_helpers import one_error_line, run_cli

SMALL = ("--model", "tests.models:mixed", "--image-size", "16", "--batch-size", "2")


def _trace(capsys, out, *args):
    return run_cli(capsys, "trace", "--out", str(out), *SMALL, *args)


def test_trace_never_replaces_another_runs_trace_unless_forced(capsys, tmp_path):
    out = tmp_path / "t"
    code, _, err = _trace(capsys, out)
    assert code == 0, err
    first = (out / "manifest.json").read_text()
    assert json.loads((out / OUTPUT_MARKER).read_text())["command"] == "trace"
    code, _, err = _trace(capsys, out, "--seed", "5")  # another run
    line = one_error_line(err)
    assert code != 0 and "holds another agos trace run" in line and "--force" in line
    assert (out / "manifest.json").read_text() == first  # untouched
    code, _, err = _trace(capsys, out, "--seed", "5", "--force")
    assert code == 0, err
    assert json.loads((out / "manifest.json").read_text())["provenance"]["seed"] == 5


def test_a_foreign_folder_is_refused_for_every_folder_command(capsys, tmp_path, mixed_trace):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "results.csv").write_text("my own results\n")
    (foreign / "trajectory.csv").write_text("my own trajectory\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"traces": [str(mixed_trace)], "archs": ["agos@systolic"]}))
    commands = [
        ("trace", "--out", str(foreign), *SMALL),
        ("sweep", str(spec), "--out", str(foreign), "--workers", "0"),
        ("trajectory", "--out", str(foreign), "--train-steps", "2", "--every", "1", *SMALL),
        ("reproduce", "--out", str(foreign), "--models", "tests.models:mixed", "--quick"),
    ]
    for args in commands:
        code, _, err = run_cli(capsys, *args)
        line = one_error_line(err)
        assert code != 0 and "not empty and was not made by agos" in line and "--force" in line, args
    assert (foreign / "results.csv").read_text() == "my own results\n"
    assert (foreign / "trajectory.csv").read_text() == "my own trajectory\n"
    assert sorted(p.name for p in foreign.iterdir()) == ["results.csv", "trajectory.csv"]


def test_the_rule(tmp_path):
    out = tmp_path / "o"
    with claim_output(out, "sweep", {"spec": "a"}, "spec a", force=False):
        (out / "results.csv").write_text("x")
    with claim_output(out, "sweep", {"spec": "a"}, "spec a", force=False):  # the same run continues
        pass
    with pytest.raises(AgosError, match=r"holds another agos sweep run \(spec a\), not this one \(spec b\)"):
        claim_output(out, "sweep", {"spec": "b"}, "spec b", force=False)
    with pytest.raises(AgosError, match="holds an agos sweep output"):
        claim_output(out, "trajectory", {"spec": "a"}, "a", force=False)
    with pytest.raises(AgosError, match="failed"), claim_output(out, "sweep", {"spec": "b"}, "b", force=True):
        raise AgosError("failed")  # a failed forced run leaves the folder a's
    with claim_output(out, "sweep", {"spec": "a"}, "spec a", force=False):
        pass
    with claim_output(out, "sweep", {"spec": "b"}, "spec b", force=True):
        pass
    with claim_output(out, "sweep", {"spec": "b"}, "spec b", force=False):  # now it is b's
        pass
    empty = tmp_path / "empty"
    empty.mkdir()
    with claim_output(empty, "reproduce", {}, "r", force=False):
        pass
    assert (empty / OUTPUT_MARKER).is_file()
    failed = tmp_path / "failed"
    with pytest.raises(AgosError, match="bad settings"), claim_output(failed, "reproduce", {}, "r", False):
        raise AgosError("bad settings")
    assert not failed.exists()  # a failed run leaves no folder of its own making behind
    (tmp_path / "file").write_text("")
    with pytest.raises(AgosError, match="not a folder"):
        claim_output(tmp_path / "file", "trace", {}, "t", force=True)
