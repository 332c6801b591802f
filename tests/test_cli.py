"""Bad input: one line on stderr, a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.cli_helpers import one_error_line, run_cli


def test_unknown_model_suggests_close_names(capsys, tmp_path):
    code, _, err = run_cli(capsys, "trace", "--out", str(tmp_path / "t"), "--model", "resnet5")
    assert code != 0
    assert "resnet50" in one_error_line(err)


def test_wrong_weights_files(capsys, tmp_path):
    from agos.inputs.models import build_model, resolve_model

    model = build_model(resolve_model("resnet18"), seed=0)
    state = model.state_dict()
    state["fc.weight"] = torch.zeros(10, 512)
    del state["fc.bias"]
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    code, _, err = run_cli(
        capsys, "trace", "--out", str(tmp_path / "t"), "--model", "resnet18", "--weights", str(bad)
    )
    line = one_error_line(err)
    assert code != 0 and "missing key" in line and "fc.weight: file [10, 512] vs model [1000, 512]" in line
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    code, _, err = run_cli(capsys, "trace", "--out", str(tmp_path / "t"), "--weights", str(junk))
    assert code != 0 and "not a readable PyTorch file" in one_error_line(err)
    missing = str(tmp_path / "none.pt")
    code, _, err = run_cli(capsys, "trace", "--out", str(tmp_path / "t"), "--weights", missing)
    assert code != 0 and "does not exist" in one_error_line(err)


def test_a_whole_pickled_model_as_weights_says_a_state_dict_is_expected(capsys, tmp_path):
    """It once quoted torch's message cut mid-sentence with raw terminal codes (`^[[1mdo those
    steps only…`) and never said what --weights takes."""
    from tests.models import Mixed

    whole = tmp_path / "whole.pt"
    torch.save(Mixed(), whole)
    code, _, err = run_cli(
        capsys,
        "trace",
        "--out",
        str(tmp_path / "t"),
        "--model",
        "tests.models:mixed",
        "--weights",
        str(whole),
    )
    line = one_error_line(err)
    assert code != 0 and "\x1b" not in line
    assert "holds a pickled tests.models.Mixed" in line and "not a state_dict" in line
    assert "torch.save(model.state_dict(), 'weights.pt')" in line
    listed = tmp_path / "list.pt"
    torch.save({"weights": [1, 2]}, listed)
    code, _, err = run_cli(capsys, "trace", "--out", str(tmp_path / "t"), "--weights", str(listed))
    assert code != 0 and "torch.save(model.state_dict()" in one_error_line(err)


def test_missing_hub_weights_say_where_to_put_them(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    code, _, err = run_cli(
        capsys, "trace", "--out", str(tmp_path / "t"), "--model", "resnet18", "--weights", "imagenet"
    )
    line = one_error_line(err)
    assert code != 0
    assert "not in the local torch hub cache" in line and str(tmp_path / "hub") in line
    assert "resnet18-f37072fd.pth" in line


def test_corrupt_hub_weights_are_refused(capsys, tmp_path, monkeypatch):
    from agos.inputs.weights import imagenet_weights_file

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    _, path = imagenet_weights_file("resnet18")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\0" * 100)
    code, _, err = run_cli(
        capsys, "trace", "--out", str(tmp_path / "t"), "--model", "resnet18", "--weights", "imagenet"
    )
    assert code != 0 and "cannot load ImageNet weights" in one_error_line(err)


def test_corrupt_trace(capsys, mixed_trace, tmp_path):
    import shutil

    d = tmp_path / "t"
    shutil.copytree(mixed_trace, d)
    (d / "masks.bin").write_bytes(b"x")
    code, _, err = run_cli(capsys, "sparsity", str(d))
    assert code != 0 and "truncated or corrupt" in one_error_line(err)


def test_empty_and_missing_image_folders(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, message in ((empty, "holds no usable images"), (tmp_path / "nope", "does not exist")):
        code, _, err = run_cli(
            capsys,
            "trace",
            "--out",
            str(tmp_path / "t"),
            "--model",
            "tests.models:mixed",
            "--image-size",
            "16",
            "--data",
            f"imagefolder:{folder}",
        )
        assert code != 0 and message in one_error_line(err)


@pytest.mark.parametrize(
    "args,message",
    [
        (("trace", "--out", "X", "--data", "imagenet"), "unknown data source"),
        (("trace", "--out", "X", "--device", "tpu"), "unknown device"),
        (("trace", "--out", "X", "--model", "nosuchpkg.mod:f"), "cannot import model module"),
        (("trace", "--out", "X", "--model", "tests.models:nothing"), "has no attribute"),
        (("trace", "--out", "X", "--batch-size", "0"), "--batch-size must be at least 1"),
        (("trace", "--out", "X", "--model", "alexnet", "--image-size", "16"), "cannot run on 16-px images"),
        (("trace", "--bogus"), "No such option"),
        (("sparsity",), "Missing argument"),
    ],
)
def test_bad_options(capsys, args, message):
    code, _, err = run_cli(capsys, *args)
    assert code != 0
    assert message in one_error_line(err)


def test_trace_and_sparsity_end_to_end(capsys, tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (folder / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(folder / cls / f"{i}.png")
    out = tmp_path / "trace"
    code, stdout, err = run_cli(
        capsys,
        "trace",
        "--out",
        str(out),
        "--model",
        "tests.models:mixed",
        "--image-size",
        "16",
        "--batch-size",
        "4",
        "--data",
        f"imagefolder:{folder}",
        "--train-steps",
        "2",
        "--save-weights",
        str(tmp_path / "w.pt"),
    )
    assert code == 0, err
    assert "bits per mask element" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["provenance"]["data"]["classes"] == 2
    assert len(manifest["provenance"]["warm_up"]["losses"]) == 2
    # the saved weights reproduce the warmed-up model
    state = torch.load(tmp_path / "w.pt", weights_only=True)
    assert "fc.weight" in state
    files = {k: tmp_path / f"s.{k}" for k in ("json", "csv", "png")}
    code, stdout, err = run_cli(
        capsys,
        "sparsity",
        str(out),
        "--json",
        str(files["json"]),
        "--csv",
        str(files["csv"]),
        "--plot",
        str(files["png"]),
    )
    assert code == 0, err
    assert "dX skip" in stdout and "mixed" in stdout
    summary = json.loads(files["json"].read_text())["sparsity"]
    for layer in summary["layers"]:
        assert layer["kind"] in ("conv", "linear")
        for key in ("x_zero_frac", "dy_zero_frac", "dx_skip_frac"):
            assert 0.0 <= layer[key] <= 1.0
    assert set(summary["totals"]) >= {"x_zero_frac", "dy_zero_frac", "dx_skip_frac", "macs_per_pass"}
    assert files["csv"].read_text().count("\n") == len(summary["layers"]) + 1  # a header, no comment line
    assert files["png"].read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow  # 5 s: a fresh interpreter imports torch; CI runs it
@pytest.mark.ci
def test_console_script_prints_one_line_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "agos", "sparsity", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr
