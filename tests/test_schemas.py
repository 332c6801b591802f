"""Every file agos writes for a program to read has a typed record and a shipped JSON Schema
(`agos.schemas`): the shipped schemas are the records' own, what agos writes is valid against them
(checked with jsonschema, which shares no code with pydantic), and a doctored file — an unknown field,
another version, a wrong value — is refused in one line. (The Analysis has its own test,
tests/test_analysis_schema.py; results.json is checked in tests/test_reproduce.py; trajectory.json in
tests/test_trajectory.py.)"""

from __future__ import annotations

import copy
import json

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from rich.console import Console

from agos.errors import AgosError
from agos.record import read_record, schema_text
from agos.schemas import NAMES, registry
from agos.stages.verification import Verification
from tests.cli_helpers import one_error_line, run_cli


@pytest.mark.parametrize("name", NAMES)
def test_shipped_schema_is_the_records_schema(name):
    cls, path = registry()[name]
    assert path.read_text() == schema_text(cls), "a record changed: run `make schema`"


def test_the_cli_prints_each_schema_and_refuses_an_unknown_one(capsys):
    code, out, _ = run_cli(capsys, "schema", "sweep-row")
    assert code == 0 and json.loads(out)["$id"] == "agos-sweep-row/1"
    code, _, err = run_cli(capsys, "schema", "nosuch")
    assert code == 2 and "no schema 'nosuch'" in one_error_line(err)


@pytest.fixture(scope="module")
def verification(tmp_path_factory) -> tuple:
    """A real proof stage of a small capture, with the sparse engine on two images."""
    from agos.inputs.options import RunOptions
    from agos.stages.cache import Cache
    from agos.stages.capture import VERIFICATION, capture_and_prove
    from agos.stages.resolve import resolve_run

    options = RunOptions(model="tests.models:mixed", batch_size=4, image_size=16, seed=3, device="cpu")
    cache = Cache(tmp_path_factory.mktemp("cache"))
    proven = capture_and_prove(resolve_run(options), cache, engine_images=2)
    return proven, cache.path(proven.keys[-1]) / VERIFICATION


def test_a_proof_stage_writes_a_valid_verification(verification):
    proven, path = verification
    data = json.loads(path.read_text())
    jsonschema.validate(data, json.loads(registry()["verification"][1].read_text()))
    assert proven.verification.lossless is True and proven.verification.engine.passed
    assert proven.verification.soundness.reference == "the captured step's gradients"


@pytest.mark.parametrize(
    ("doctor", "message"),
    [
        (lambda d: d.update(unexpected=1), "unexpected"),
        (lambda d: d.update(version=99), "version 99; this agos reads version 1"),
        (lambda d: d.update(format="agos-trace"), "is not an agos-verification file"),
        (lambda d: d["soundness"].update(bit_identical="perhaps"), "soundness.bit_identical"),
        (lambda d: d["engine"]["step"].pop("ratio"), "engine.step.ratio"),
    ],
)
def test_a_doctored_verification_is_one_line(verification, tmp_path, doctor, message):
    data = json.loads(verification[1].read_text())
    doctor(data)
    bad = tmp_path / "verification.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json.loads(registry()["verification"][1].read_text()))
    with pytest.raises(AgosError) as caught:
        read_record(Verification, bad)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def swept(mixed_trace, tmp_path_factory):
    from agos.sweep.run import run_sweep

    root = tmp_path_factory.mktemp("sweep")
    spec = root / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {"traces": [str(mixed_trace)], "archs": ["agos@systolic"], "axes": {"pe_array.rows": [8, 16]}}
        )
    )
    return run_sweep(spec, root / "out", workers=0, console=Console(stderr=True, quiet=True)), root / "out"


def test_sweep_rows_are_valid_and_read_back_typed(swept):
    from agos.sweep.table import read_rows

    result, out = swept
    schema = json.loads(registry()["sweep-row"][1].read_text())
    for record in result.records:
        jsonschema.validate(record.model_dump(mode="json"), schema)
    rows = read_rows(out / "results.parquet")
    assert [r.model_dump() for r in rows] == [r.model_dump() for r in result.records]
    assert [r.axes["pe_array.rows"] for r in rows] == [8, 16]


@pytest.mark.parametrize(
    ("doctor", "message"),
    [
        (lambda t: t.append_column("unexpected", pa.array([1, 2])), "unexpected"),
        (lambda t: t.replace_schema_metadata({**_meta(t), b"version": b"2"}), "version 2; this agos reads"),
        (lambda t: t.replace_schema_metadata({b"format": b"agos-sweep"}), "is not an agos-sweep-row table"),
        (
            lambda t: t.set_column(t.schema.get_field_index("area_mm2"), "area_mm2", pa.array(["a", "b"])),
            "area_mm2",
        ),
    ],
)
def test_a_doctored_sweep_table_is_one_line(swept, tmp_path, doctor, message):
    from agos.sweep.table import read_rows

    table = doctor(pq.read_table(swept[1] / "results.parquet"))
    bad = tmp_path / "results.parquet"
    pq.write_table(table, bad)
    with pytest.raises(AgosError) as caught:
        read_rows(bad)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def _meta(table) -> dict:
    return dict(table.schema.metadata)


def test_record_loading_checks_format_and_version_first(tmp_path):
    bad = tmp_path / "v.json"
    bad.write_text(json.dumps({"format": "agos-verification", "version": 0, "soundness": None}))
    with pytest.raises(AgosError, match="version 0; this agos reads version 1"):
        read_record(Verification, bad)
    bad.write_text("{truncated")
    with pytest.raises(AgosError, match="not valid JSON"):
        read_record(Verification, bad)
    good = copy.deepcopy(Verification(soundness=None).model_dump(mode="json"))
    bad.write_text(json.dumps(good))
    assert read_record(Verification, bad).lossless is None
