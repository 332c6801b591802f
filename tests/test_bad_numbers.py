"""Non-finite numbers are refused in one line before anything is written: NaN compares unequal to
zero, so a NaN step would be captured as dense and silently report no sparsity."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tests.cli_helpers import one_error_line, run_cli


def _trace(capsys, out, *args):
    return run_cli(capsys, "trace", "--out", str(out), "--batch-size", "2", "--image-size", "32", *args)


def test_nan_weights_file_is_refused(capsys, tmp_path):
    from agos.inputs.models import build_model, resolve_model

    state = build_model(resolve_model("resnet18"), seed=0).state_dict()
    state["layer1.0.conv1.weight"][0, 0, 0, 0] = math.nan
    path = tmp_path / "nan.pt"
    torch.save(state, path)
    code, _, err = _trace(capsys, tmp_path / "t", "--model", "resnet18", "--weights", str(path))
    line = one_error_line(err)
    assert code != 0 and "NaN or inf" in line and "layer1.0.conv1.weight" in line
    assert not (tmp_path / "t").exists()


def test_a_diverging_warm_up_is_refused(capsys, tmp_path):
    code, _, err = _trace(
        capsys, tmp_path / "t", "--model", "tests.models:mixed", "--train-steps", "3", "--lr", "1e38"
    )
    line = one_error_line(err)
    assert code != 0 and "warm-up step" in line and ("not finite" in line or "non-finite" in line)
    assert not (tmp_path / "t").exists()
    code, _, err = _trace(
        capsys, tmp_path / "t", "--model", "tests.models:mixed", "--train-steps", "1", "--lr", "nan"
    )
    assert code != 0 and "--lr must be a finite number" in one_error_line(err)


def test_nan_logits_are_refused(capsys, tmp_path):
    code, _, err = _trace(capsys, tmp_path / "t", "--model", "tests.models:nan_logits")
    line = one_error_line(err)
    assert code != 0 and "logits are not finite" in line
    assert not (tmp_path / "t").exists()


def test_the_manifest_of_a_good_trace_is_strict_json(mixed_trace):
    """Whatever agos writes parses under a JSON parser that rejects NaN and Infinity."""

    def refuse(token):
        raise ValueError(f"non-standard JSON constant {token}")

    json.loads((mixed_trace / "manifest.json").read_text(), parse_constant=refuse)


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_a_non_finite_input_is_refused(bad):
    from agos.capture.recorder import capture_step
    from agos.errors import AgosError
    from tests.models import mixed

    model = mixed()
    images = torch.rand(2, 3, 16, 16)
    images[0, 0, 0, 0] = float(bad)
    with pytest.raises(AgosError, match="logits are not finite"):
        capture_step(model, images, torch.tensor([0, 1]), seed=0)
