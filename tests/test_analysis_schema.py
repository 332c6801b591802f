"""The shipped JSON Schema describes the Analysis model as it is, and every command's --json output
is valid against it — checked with jsonschema, a validator that shares no code with pydantic."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from agos.analysis.model import SCHEMA_FILE, SECTIONS, VERSION, Analysis, schema_text
from agos.cli import main


def test_shipped_schema_is_the_models_schema():
    assert SCHEMA_FILE.read_text() == schema_text(), "results model changed: run `make schema`"


def _shipped() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


@pytest.fixture(scope="module")
def outputs(mixed_trace, tmp_path_factory) -> dict[str, dict]:
    """The JSON of every command that writes an analysis, on one small trace."""
    out = tmp_path_factory.mktemp("analysis-json")
    t = str(mixed_trace)
    runs = {
        "sparsity": ["sparsity", t],
        "tiles": ["sparsity", t, "--tiles"],
        "structure": ["sparsity", t, "--structure", "--density", "uniform:0.5:structure=blobs:2"],
        "density_mapping": ["density", t, "--density", "uniform:0.5"],
        "bounds": ["bounds", t],
        "simulation": ["simulate", t, "--arch", "dense@systolic,agos@systolic"],
    }
    found = {}
    for section, args in runs.items():
        path = out / f"{section}.json"
        assert main([*args, "--json", str(path)]) == 0, args
        found[section] = json.loads(path.read_text())
    return found


# what each command computes: its own section, and what the same pass over the layers gives
COMPUTED = {
    "sparsity": {"sparsity"},
    "tiles": {"tiles"},
    "structure": {"structure"},
    "density_mapping": {"density_mapping"},
    "bounds": {"realised", "bounds"},
    "simulation": {"realised", "bounds", "simulation"},
}


@pytest.mark.parametrize("command", COMPUTED)
def test_command_output_is_valid_against_the_shipped_schema(outputs, command):
    data = outputs[command]
    jsonschema.validate(data, _shipped())
    assert data["format"] == "agos-analysis" and data["version"] == VERSION
    assert {s for s in SECTIONS if s in data} == COMPUTED[command]


def test_every_section_is_written_by_some_command():
    assert set().union(*COMPUTED.values()) == set(SECTIONS)


@pytest.mark.parametrize(
    "doctor",
    [
        lambda d: d.update(unexpected=1),
        lambda d: d.update(version=VERSION + 1),
        lambda d: d.update(format="something-else"),
        lambda d: d.pop("provenance"),
        lambda d: d["bounds"].update(unexpected=1),
        lambda d: d["bounds"]["layers"][0].update(unexpected=1),
        lambda d: d["bounds"].update(totals="not a table"),
    ],
)
def test_schema_and_model_refuse_a_doctored_output(outputs, doctor):
    data = copy.deepcopy(outputs["bounds"])
    doctor(data)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, _shipped())
    with pytest.raises(ValueError):
        Analysis.model_validate(data)
