from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from agos.capture.trace import MANIFEST, MASKS, SCHEMA_VERSION, load_trace
from agos.errors import AgosError


def test_round_trip_and_size(mixed_trace: Path):
    trace = load_trace(mixed_trace)
    m = trace.manifest
    assert m.format == "agos-trace" and m.schema_version == SCHEMA_VERSION
    prov = m.provenance
    assert (prov.model, prov.batch_size, prov.image_size, prov.seed) == ("tests.models:mixed", 4, 16, 3)
    assert prov.model_class == "tests.models.Mixed" and "sha256:" in prov.model_code
    assert prov.weights.source == "init" and len(prov.weights.sha256) == 64
    assert [layer.name for layer in trace.layers][:2] == ["stem", "a"]
    assert [a.op for a in m.activations] == ["ReLU", "ReLU", "ReLU", "ReLU6", "ReLU", "ReLU", "ReLU"]
    assert trace.layer("d").x_acts == ["relu_2", "relu6"] and trace.layer("d").y_act == "relu_3"
    assert all(0 < a.clamped < math.prod(a.shape) for a in m.activations[:-1])
    layer = trace.layer("b")
    x = trace.mask(layer, "x_nonzero")
    assert x.shape == layer.geometry.x_shape and x.unpack().sum() == x.count
    # at most 1.1 bits per mask element, before and after deduplication
    assert 8 * m.masks_bytes / m.mask_elements <= 1.1
    assert not [p for p in mixed_trace.parent.iterdir() if p.name.startswith(".")]


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "t"
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda d: (d / MASKS).write_bytes((d / MASKS).read_bytes()[:-3]), "truncated or corrupt"),
        (lambda d: (d / MASKS).write_bytes(b"\x01" + (d / MASKS).read_bytes()[1:]), "checksum"),
        (lambda d: (d / MANIFEST).write_text((d / MANIFEST).read_text()[:200]), "not valid JSON"),
        (lambda d: (d / MANIFEST).write_text(json.dumps({"hello": 1})), "not an agos trace manifest"),
        (lambda d: (d / MASKS).unlink(), "has no masks.bin"),
        (lambda d: (d / MANIFEST).unlink(), "not an agos trace"),
    ],
)
def test_damaged_traces_are_refused(mixed_trace, tmp_path, damage, message):
    d = _copy(mixed_trace, tmp_path)
    damage(d)
    with pytest.raises(AgosError, match=message):
        load_trace(d)


def test_inconsistent_manifest_is_refused(mixed_trace, tmp_path):
    d = _copy(mixed_trace, tmp_path)
    raw = json.loads((d / MANIFEST).read_text())
    raw["layers"][1]["x_nonzero"]["shape"][0] += 1
    (d / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(AgosError, match=r"invalid at layers\.1"):
        load_trace(d)
    raw["schema_version"] = 99
    (d / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(AgosError, match="schema version 99"):
        load_trace(d)


@pytest.mark.parametrize(
    "edit",
    [
        lambda raw: raw["layers"][1]["x_nonzero"].__setitem__(
            "count", raw["layers"][1]["x_nonzero"]["count"] - 1
        ),
        lambda raw: raw["layers"][0].__setitem__("w_nonzero", raw["layers"][0]["w_nonzero"] - 1),
        lambda raw: raw["provenance"].__setitem__("batch_size", 999),
        lambda raw: raw.__setitem__("loss", raw["loss"] + 1.0),
    ],
)
def test_an_edited_manifest_is_refused(mixed_trace, tmp_path, edit):
    """The checksum covers the whole manifest: a plausible edit (a count, the provenance) is caught."""
    d = _copy(mixed_trace, tmp_path)
    raw = json.loads((d / MANIFEST).read_text())
    edit(raw)
    (d / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(AgosError, match="does not match its checksum"):
        load_trace(d)
    load_trace(d, verify=False)  # only the checksums are skipped


def _empty():
    from agos.capture.recorder import CaptureResult

    return CaptureResult(layers=[], loss=1.0, graph="torch.fx", skipped=[])


def test_write_refuses_to_clobber_a_foreign_directory(tmp_path, mixed_trace):
    from agos.capture.trace import write_trace

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(AgosError, match="not an agos trace"):
        write_trace(foreign, _empty(), load_trace(mixed_trace).provenance)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_rewriting_a_trace_replaces_it_whole(mixed_trace, tmp_path):
    from agos.capture.trace import write_trace

    d = _copy(mixed_trace, tmp_path)
    provenance = load_trace(d).provenance.model_copy(update={"model": "empty"})
    write_trace(d, _empty(), provenance)
    trace = load_trace(d)
    assert trace.layers == [] and trace.provenance.model == "empty"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]
