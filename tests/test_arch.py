from __future__ import annotations

import pytest

from agos.arch.load import PRESETS, load_arch, load_archs
from agos.cli import main
from agos.errors import AgosError


def test_presets_have_equal_resources_and_cite_their_energy_source():
    loaded = [load_arch(p) for p in PRESETS]
    assert {a.arch.pes for a in loaded} == {1024}
    assert {a.arch.memory.global_buffer_bytes for a in loaded} == {2 * 2**20}
    assert {a.arch.memory.dram_bandwidth_gbps for a in loaded} == {256}
    assert all(a.energy.name == "horowitz45" for a in loaded)
    agos = load_arch("agos").arch
    assert agos.skipping.bwd_data.outputs == "compacted" and agos.skipping.bwd_weight.pe_operand
    assert agos.scheduling.dispatch == "dynamic" and agos.scheduling.sync_rows == 1


def _write(tmp_path, text: str):
    path = tmp_path / "arch.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    "text,message",
    [
        ("name: x\npe_array: {rows: 0, cols: 4}\n", "field 'pe_array.rows'"),
        ("name: x\nskipping: {fwd: {outputs: compacted}}\n", "only BWD-D has outputs"),
        ("name: x\nscheduling: {sync_rows: 5}\n", "must divide pe_array.rows"),
        ("name: x\nscheduling: {dispatch: magic}\n", "field 'scheduling.dispatch'"),
        ("name: x\nbogus: 1\n", "field 'bogus'"),
        ("pe_array: [1, 2\n", "not valid YAML"),
        ("name: x\nenergy: nowhere.yaml\n", "no shipped table or file"),
        ("- just a list\n", "expected a mapping"),
    ],
)
def test_invalid_files_name_file_field_and_problem(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(AgosError) as err:
        load_arch(path)
    assert message in str(err.value) and path in str(err.value)


def test_user_file_and_lists(tmp_path):
    path = _write(tmp_path, "name: mine\npe_array: {rows: 16, cols: 64}\nskipping: {lookahead: 2}\n")
    mine = load_arch(path)
    assert mine.arch.pes == 1024 and mine.source == path and len(mine.sha256) == 64
    assert [a.name for a in load_archs(f"dense,{path}")] == ["dense", "mine"]
    with pytest.raises(AgosError, match="same design twice"):
        load_archs("dense,dense")
    with pytest.raises(AgosError, match="no preset or arch file"):
        load_arch("tpu")


def test_arch_show_and_list(capsys):
    assert main(["arch", "show", "agos"]) == 0
    out = capsys.readouterr().out
    assert "sha256" in out and "compacted" in out and "horowitz45" in out
    assert main(["arch", "list"]) == 0
    listed = capsys.readouterr().out
    assert all(p in listed for p in PRESETS)
    assert main(["arch", "show", "nope"]) != 0
    assert "no preset or arch file" in capsys.readouterr().err
