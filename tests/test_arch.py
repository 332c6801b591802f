from __future__ import annotations

import math

import pytest

from agos.arch.area import design_area
from agos.arch.load import ORGANISATIONS, PRESETS, all_designs, behaviour_key, load_arch, load_archs
from agos.arch.schema import DEFAULT_LOOKAHEAD
from agos.cli import main
from agos.errors import AgosError
from tests.cli_helpers import one_error_line


def test_every_preset_on_every_organisation_with_equal_resources():
    loaded = [load_arch(d) for d in all_designs()]
    assert len(loaded) == len(PRESETS) * len(ORGANISATIONS)
    assert {a.arch.pes for a in loaded} == {1024}
    assert {a.arch.memory.global_buffer_bytes for a in loaded} == {2 * 2**20}
    assert {a.arch.memory.dram_gbps for a in loaded} == {256}
    assert {a.arch.memory.bandwidth_bytes_per_cycle for a in loaded} == {256}
    assert all(a.energy.name == "horowitz45" and a.area.name == "area45" for a in loaded)
    for org in ORGANISATIONS:  # the organisation is never a privilege of one design
        on_org = [a.arch.organisation for a in loaded if a.arch.organisation.name == org]
        assert all(o == on_org[0] for o in on_org)
    skippers = [a for a in loaded if a.arch.skipping.any_stream and not a.arch.ideal]
    assert {a.arch.skipping.lookahead for a in skippers} == {DEFAULT_LOOKAHEAD}  # equal windows
    agos = load_arch("agos@rows").arch
    assert agos.name == "agos@rows" and agos.organisation.sync == "independent"
    assert agos.skipping.bwd_data.outputs == "compacted" and agos.skipping.bwd_weight.pe_operand


def test_the_twin_is_the_organisation_with_skipping_off():
    agos = load_arch("agos@systolic").arch
    twin = agos.twin()
    assert twin.organisation == agos.organisation and not twin.skipping.skips_work
    assert twin.storage == load_arch("dense@systolic").arch.storage
    assert twin.model_dump(exclude={"name", "description", "preset"}) == load_arch(
        "dense@systolic"
    ).arch.model_dump(exclude={"name", "description", "preset"})


def test_areas_charge_what_each_feature_needs():
    area = {d: design_area(load_arch(d).arch, load_arch(d).area) for d in all_designs()}
    dense = area["dense@systolic"].total_mm2
    assert area["input-skip@systolic"].total_mm2 > dense  # lookahead windows
    assert area["agos@systolic"].total_mm2 > area["input-skip@systolic"].total_mm2  # crossbar and joins
    assert "compaction crossbars" in area["agos@systolic"].components
    assert area["dense@rows"].total_mm2 > dense  # per-PE operand stores
    assert "pe operand stores" in area["dense@rows"].components
    assert all(a.static_mw > 0 for a in area.values())


def _write(tmp_path, text: str):
    path = tmp_path / "arch.yaml"
    path.write_text(text)
    return str(path)


ORG = "organisation: systolic\n"
ENERGY = (
    "energy: {{name: e, mac: {{bf16_fp32: {mac}}}, mac_gated: 0, buffer_read_per_byte: {buf}, "
    "buffer_write_per_byte: 1, store_read_per_byte: 1, store_write_per_byte: 1, metadata_read_per_bit: 1, "
    "crossbar_per_byte_mm: 1, dram_per_byte: 1, vector_add: 1, vector_multiply: 1}}\n"
)


@pytest.mark.parametrize(
    "text,message",
    [
        ("name: x\norganisation: {name: o, sync: lockstep, pe_array: {rows: 0}}\n", "field 'pe_array.rows'"),
        ("name: x\n" + ORG + "skipping: {fwd: {outputs: compacted}}\n", "only BWD-D has outputs"),
        ("name: x\n" + ORG + "skipping: {lookahead: 0}\n", "lookahead"),
        ("name: x\norganisation: {name: o, sync: magic}\n", "field 'sync'"),
        ("name: x\norganisation: {name: o, sync: lockstep, memory: {buffer_banks: 0}}\n", "buffer_banks"),
        ("name: x\norganisation: {name: o, sync: lockstep, clock_ghz: .inf}\n", "clock_ghz"),
        ("name: x\norganisation: {name: o, sync: lockstep, memory: {dram_gbps: .inf}}\n", "dram_gbps"),
        ("name: x\norganisation: {name: o, sync: lockstep, memory: {dram_gbps: .nan}}\n", "dram_gbps"),
        ("name: x\n" + ORG + "bogus: 1\n", "field 'bogus'"),
        ("pe_array: [1, 2\n", "not valid YAML"),
        ("name: x\n" + ORG + "energy: nowhere.yaml\n", "no shipped table or file"),
        ("name: x\n" + ORG + ENERGY.format(mac=-1, buf=1), "field 'mac.bf16_fp32'"),
        ("name: x\n" + ORG + ENERGY.format(mac=1, buf=-1), "buffer_read_per_byte"),
        ("name: x\n", "needs an organisation"),
        ("- just a list\n", "expected a mapping"),
    ],
)  # fmt: skip
def test_invalid_files_name_file_field_and_problem(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(AgosError) as err:
        load_arch(path)
    assert message in str(err.value) and path in str(err.value)


def test_bad_files_on_the_command_line_are_one_line(tmp_path, capsys):
    path = _write(tmp_path, "name: x\norganisation: {name: o, sync: lockstep, memory: {buffer_banks: 0}}\n")
    assert main(["arch", "show", path]) == 2
    err = capsys.readouterr().err.strip()
    assert "buffer_banks" in err and "\n" not in err and "Traceback" not in err


def test_user_file_and_lists(tmp_path):
    path = _write(tmp_path, "name: mine\norganisation: rows\nskipping: {fwd: {stream: true}, lookahead: 2}\n")
    mine = load_arch(path)
    assert mine.arch.pes == 1024 and mine.source == path and len(mine.sha256) == 64
    assert mine.arch.organisation.sync == "independent" and mine.arch.skipping.lookahead == 2
    on_systolic = load_arch(f"{path}@systolic")
    assert on_systolic.name == "mine@systolic" and on_systolic.arch.lockstep
    assert [a.name for a in load_archs(f"dense,{path}")] == ["dense@systolic", "dense@rows", "mine"]
    assert math.isclose(
        design_area(mine.arch, mine.area).total_mm2, design_area(mine.arch, mine.area).total_mm2
    )
    with pytest.raises(AgosError, match="same design twice"):
        load_archs("dense@rows,dense")
    with pytest.raises(AgosError, match="no preset or design file"):
        load_arch("tpu")
    with pytest.raises(AgosError, match="no shipped organisation"):
        load_arch("agos@gpu")


def test_arch_show_and_list(capsys):
    assert main(["arch", "show", "agos@systolic"]) == 0
    out = capsys.readouterr().out
    assert "sha256" in out and "compacted" in out and "horowitz45" in out and "mm²" in out
    assert main(["arch", "list"]) == 0
    listed = capsys.readouterr().out
    assert all(d in listed for d in all_designs())
    assert main(["arch", "show", "nope"]) != 0
    assert "no preset or design file" in capsys.readouterr().err


def test_a_design_file_inherits_a_preset_and_overrides_by_path(tmp_path, capsys):
    """`preset:` takes effect (it was once accepted and ignored: a dense design resulted), and any
    field, the organisation's included, can be overridden alone."""
    agos = load_arch("agos@systolic")
    same = load_arch(_write(tmp_path, "name: mine\npreset: agos\norganisation: systolic\n"))
    assert same.arch.skipping == agos.arch.skipping and same.arch.storage == agos.arch.storage
    assert same.arch.preset == "agos" and same.overrides == ()
    assert behaviour_key(same.arch) == behaviour_key(agos.arch)  # the same design, another name
    with pytest.raises(AgosError, match="same design as agos@systolic"):
        load_archs(f"agos@systolic,{tmp_path / 'arch.yaml'}")
    small = _write(
        tmp_path,
        "name: small\npreset: agos\norganisation: {name: systolic, pe_array: {rows: 16, cols: 16}}\n"
        "skipping: {bwd_weight: {pe_operand: false}}\n",
    )
    loaded = load_arch(small)
    arch = loaded.arch
    assert (arch.pe_array.rows, arch.pe_array.cols) == (16, 16)
    assert arch.organisation.sync == "lockstep" and arch.memory == agos.arch.memory  # the rest inherited
    assert arch.skipping.bwd_data == agos.arch.skipping.bwd_data and not arch.skipping.bwd_weight.pe_operand
    # its dense twin is never taken for the shipped dense@systolic: it is named with what differs
    from agos.cost.network import plan_designs

    planned, _ = plan_designs([loaded])
    assert planned[0].twin == "dense@systolic[16x16 PEs, 2 MiB]"
    assert loaded.overrides == (
        "skipping.bwd_weight.pe_operand: True → False",
        "organisation.pe_array.rows: 32 → 16",
        "organisation.pe_array.cols: 32 → 16",
    )
    on_rows = load_arch(f"{small}@rows")  # @ORG replaces what the organisation inherits from
    assert on_rows.arch.organisation.sync == "independent" and on_rows.arch.pe_array.rows == 16
    assert main(["arch", "show", small]) == 0
    out = capsys.readouterr().out
    assert "preset: agos" in out and "organisation.pe_array.rows: 32 → 16" in out
    named = load_arch(
        _write(
            tmp_path, "name: n\npreset: dense\norganisation: {base: rows, name: wide, pe_array: {cols: 64}}\n"
        )
    )
    assert named.arch.organisation.name == "wide" and named.arch.organisation.sync == "independent"


@pytest.mark.parametrize(
    "text,message",
    [
        ("name: x\npreset: agoss\norganisation: systolic\n", "field 'preset': no preset 'agoss'"),
        ("name: x\npreset: agos\norganisation: {name: systolic, pe_array: {rows: 0}}\n", "pe_array.rows"),
        ("name: x\npreset: agos\norganisation: systolic\nskipping: {fwd: {x: 1}}\n", "skipping.fwd.x"),
    ],
)  # fmt: skip
def test_inheritance_mistakes_are_one_line(tmp_path, capsys, text, message):
    path = _write(tmp_path, text)
    assert main(["arch", "show", path]) == 2
    assert message in one_error_line(capsys.readouterr().err)
