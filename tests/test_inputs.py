from __future__ import annotations

import pytest
import torch

from agos.errors import AgosError
from agos.inputs.data import BatchSource, DataSpec
from agos.inputs.models import build_model, resolve_model
from agos.inputs.samples import sample_images
from agos.inputs.weights import load_model_with_weights


def test_embedded_photographs_are_real_rgb_images():
    images = sample_images()
    assert len(images) >= 8
    for name, array, cls, _ in images:
        assert array.ndim == 3 and array.shape[2] == 3 and array.shape[0] >= 200, name
        assert 0 <= cls < 1000
        assert array.std() > 20, f"{name} looks flat"


def test_stream_items_do_not_depend_on_batch_size():
    source = BatchSource(DataSpec("samples"), image_size=32, seed=4, num_classes=1000)
    a, la = source.batch(1, 4)  # items 4..7
    b, lb = source.batch(2, 2)  # items 4..5
    assert torch.equal(a[:2], b) and torch.equal(la[:2], lb)
    again, _ = BatchSource(DataSpec("samples"), image_size=32, seed=4, num_classes=1000).batch(1, 4)
    assert torch.equal(a, again)
    other, _ = BatchSource(DataSpec("samples"), image_size=32, seed=5, num_classes=1000).batch(1, 4)
    assert not torch.equal(a, other)
    # ImageNet-normalised: roughly zero-mean, unit-scale
    assert abs(float(a.mean())) < 1.0 and 0.3 < float(a.std()) < 2.0


def test_labels_fit_small_heads_and_synthetic_is_labelled_as_such():
    source = BatchSource(DataSpec("samples"), image_size=16, seed=0, num_classes=5)
    _, labels = source.batch(0, 16)
    assert int(labels.max()) < 5
    synthetic = BatchSource(DataSpec("synthetic"), image_size=16, seed=0, num_classes=5)
    images, labels = synthetic.batch(0, 3)
    assert images.shape == (3, 3, 16, 16) and int(labels.max()) < 5
    assert synthetic.describe()["source"] == "synthetic"


def test_init_weights_are_seeded_and_files_round_trip(tmp_path):
    spec = resolve_model("resnet18")
    a, info_a = load_model_with_weights(spec, "init", seed=1)
    _, info_b = load_model_with_weights(spec, "init", seed=1)
    _, info_c = load_model_with_weights(spec, "init", seed=2)
    assert info_a.sha256 == info_b.sha256 != info_c.sha256
    path = tmp_path / "w.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in a.state_dict().items()}}, path)
    loaded, info = load_model_with_weights(spec, str(path), seed=99)
    assert info.sha256 == info_a.sha256
    assert torch.equal(loaded.fc.weight, a.fc.weight)


def test_user_factories_build_their_model_seeded_and_others_are_refused(tmp_path, monkeypatch):
    from tests import models

    model = build_model(resolve_model("tests.models:mixed"), seed=0)
    assert type(model) is models.Mixed  # the factory's own class, not a stand-in
    again = build_model(resolve_model("tests.models:mixed"), seed=0)
    other = build_model(resolve_model("tests.models:mixed"), seed=1)
    first = next(iter(model.state_dict()))
    assert torch.equal(model.state_dict()[first], again.state_dict()[first])
    assert not torch.equal(model.state_dict()[first], other.state_dict()[first])
    (tmp_path / "not_models.py").write_text("def number():\n    return 3\nvalue = 4\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(AgosError, match=r"returned int, not an nn\.Module"):
        build_model(resolve_model("not_models:number"), seed=0)
    with pytest.raises(AgosError, match=r"neither an nn\.Module nor a callable"):
        build_model(resolve_model("not_models:value"), seed=0)
    with pytest.raises(AgosError, match="has no attribute 'missing'"):
        build_model(resolve_model("not_models:missing"), seed=0)


TINYNET = """\
from torch import nn
from tinynet_helpers import WIDTH  # a file beside it, imported as a script would


def make_net():
    return nn.Sequential(nn.Conv2d(3, WIDTH, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(4))
"""


def test_own_models_from_the_current_folder_and_by_file_path(tmp_path, monkeypatch):
    """`--model tinynet:make_net` with tinynet.py in the current folder, and `./tinynet.py:make_net`
    or `sub/tinynet.py:make_net`, as a user types them (the `agos` console script has no current
    folder on sys.path; a file path once failed with "the 'package' argument is required")."""
    import os
    import sys

    from agos.inputs.models import model_fingerprint

    sub = tmp_path / "sub"
    sub.mkdir()
    for folder, width in ((tmp_path, 5), (sub, 7)):
        (folder / "tinynet_i22.py").write_text(TINYNET.replace("tinynet_helpers", f"helpers_i22_{width}"))
        (folder / f"helpers_i22_{width}.py").write_text(f"WIDTH = {width}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd(), str(tmp_path))])
    for name in [m for m in sys.modules if "i22" in m]:
        monkeypatch.delitem(sys.modules, name)
    for ref, width in (
        ("tinynet_i22:make_net", 5),
        ("./tinynet_i22.py:make_net", 5),
        ("sub/tinynet_i22.py:make_net", 7),
        (f"{sub}/tinynet_i22.py:make_net", 7),
    ):
        model = build_model(resolve_model(ref), seed=0)
        assert model[0].out_channels == width, ref
        assert "sha256:" in model_fingerprint(ref)  # an edited file is a new model for the caches
    with pytest.raises(AgosError, match=r"model file nowhere\.py does not exist"):
        build_model(resolve_model("nowhere.py:make_net"), seed=0)


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    import numpy as np
    from PIL import Image

    from agos.inputs.data import load_image

    values = np.linspace(0, 65535, 24 * 16).round().astype(np.uint16).reshape(24, 16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    Image.fromarray((values // 257).astype(np.uint8)).convert("RGB").save(tmp_path / "flat.png")
    deep = load_image(str(tmp_path / "deep.png"))
    assert deep.shape == (3, 24, 16) and deep.dtype == torch.uint8
    expected = torch.from_numpy(np.rint(values / 257.0).astype(np.uint8))
    assert torch.equal(deep[0], expected) and torch.equal(deep[2], expected)
    assert int((deep == 255).sum()) == 3  # only the brightest pixel is white, in each channel
    assert load_image(str(tmp_path / "flat.png")).shape == (3, 24, 16)

    folder = tmp_path / "folder" / "cls"
    folder.mkdir(parents=True)
    Image.fromarray(values).save(folder / "a.png")
    source = BatchSource(DataSpec("imagefolder", str(tmp_path / "folder")), 16, 0, 10)
    image, label = source._image(0)
    assert torch.equal(image, deep) and label == 0


@pytest.mark.parametrize(
    "values",
    [
        [1.0, 2.0],
        [float("nan"), 1.0],
        [1.0, float("inf")],
        [float("-inf"), float("inf")],  # sums to NaN
        [3e38, 3e38, 3e38],  # finite, but the sum overflows: checked element by element
        [-3e38, -3e38, float("nan")],
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_all_finite_is_isfinite_all(values, dtype):
    from agos.inputs.training import all_finite

    t = torch.tensor(values, dtype=torch.float32).to(dtype)
    assert all_finite(t) == bool(torch.isfinite(t).all())
