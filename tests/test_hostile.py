"""Hostile input (issue 23): impossible values, overflow, internal errors, accepted nonsense,
symlinks planted in an output folder, leftovers, work that is never counted. Every case is one
line on stderr and a non-zero exit, or a result that says what it did; nothing is written outside
the folder agos owns and nothing half-built is left behind."""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from agos.analysis import model as analysis_model
from agos.analysis.analyse import analyse
from agos.arch.load import load_arch
from agos.capture.trace import load_trace
from agos.density.select import resolve_density
from agos.errors import AgosError
from tests.cli_helpers import one_error_line, run_cli

ROOT = Path(__file__).resolve().parents[1]
MODEL = "tests.models:mixed"


def _terminal_sigint() -> None:
    """Ctrl-C as a terminal gives it: a run started in the background by a non-interactive shell
    (CI scripts, `cmd &`) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _refused(capsys, *args: str, says: str) -> str:
    code, _, err = run_cli(capsys, *args)
    line = one_error_line(err)
    assert code == 2 and says in line and "internal error" not in line, line
    return line


# -- item 5: impossible values do not load ----------------------------------------------------


@pytest.fixture(scope="module")
def simulated(mixed_trace, tmp_path_factory) -> dict:
    """A real Analysis with every section a simulation fills, as agos writes it."""
    trace = load_trace(mixed_trace)
    designs = [load_arch("agos@systolic")]
    analysis = analyse(trace, resolve_density(trace, "real"), ["realised", "bounds", "simulation"], designs)
    path = tmp_path_factory.mktemp("analysis") / "analysis.json"
    analysis_model.write(analysis, path)
    return json.loads(path.read_text())


def _design(d: dict) -> dict:
    return d["simulation"]["designs"]["agos@systolic"]


DOCTORED = {
    "x fraction 5.0": lambda d: d["realised"].update(x_zero_frac=5.0),
    "x fraction -0.5": lambda d: d["realised"].update(dy_zero_frac=-0.5),
    "negative MACs": lambda d: d["bounds"]["totals"]["fwd"].update(dense=-1),
    "negative energy": lambda d: _design(d).update(energy_j=-1.0),
    "negative speedup": lambda d: _design(d)["speedup_over_twin"].update(iteration=-2.0),
    "no version": lambda d: d.pop("version"),
    "no format": lambda d: d.pop("format"),
    "a fractional count": lambda d: d["bounds"]["totals"]["fwd"].update(dense=1.5),
    "true as a count": lambda d: _design(d)["cycles"].update(fwd=True),
}
TOKENS = {"NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity", "1e400": "1e400"}


@pytest.mark.parametrize("doctor", DOCTORED, ids=list(DOCTORED))
def test_an_analysis_with_impossible_values_is_refused_in_one_line(simulated, tmp_path, doctor):
    data = copy.deepcopy(simulated)
    DOCTORED[doctor](data)
    path = tmp_path / "analysis.json"
    path.write_text(json.dumps(data))
    with pytest.raises(AgosError) as err:
        analysis_model.load(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("token", TOKENS)
def test_non_finite_numbers_in_an_analysis_are_refused(simulated, tmp_path, token):
    energy = json.dumps(_design(simulated)["energy_j"])
    text = json.dumps(simulated).replace(f'"energy_j": {energy}', f'"energy_j": {TOKENS[token]}', 1)
    assert TOKENS[token] in text
    path = tmp_path / "analysis.json"
    path.write_text(text)
    with pytest.raises(AgosError) as err:
        analysis_model.load(path)
    assert str(path) in str(err.value)


def test_the_analysis_agos_writes_loads_back(simulated, tmp_path):
    path = tmp_path / "analysis.json"
    path.write_text(json.dumps(simulated))
    assert analysis_model.dump(analysis_model.load(path)) == simulated


def test_the_analysis_file_is_its_dump_as_strict_json(simulated, tmp_path):
    """analysis.json is serialised by pydantic straight from the model: the same text as the dump's."""
    from agos.fileio import json_text

    path = tmp_path / "analysis.json"
    path.write_text(json.dumps(simulated))
    analysis = analysis_model.load(path)
    analysis_model.write(analysis, path)
    assert path.read_text() == json_text(analysis_model.dump(analysis))


def _trajectory_point() -> dict:
    ratios = dict.fromkeys(("fwd", "bwd_data", "bwd_weight", "backprop", "iteration"), 1.25)
    return {
        "step": 0,
        "step_source": "snapshot",
        "checkpoint": "c.pt",
        "sha256": "0" * 64,
        "loss": 2.3,
        "sparsity": {"x_zero_frac": 0.4, "dy_zero_frac": 0.5, "dx_skip_frac": 0.3},
        "mac_bounds": {"input": dict(ratios)},
        "designs": {
            "agos@systolic": {
                "twin": "dense@systolic",
                "speedup_over_twin": dict(ratios),
                "mac_bound_speedup": dict(ratios),
                "energy_vs_twin": 0.8,
                "speedup_over_best_dense_equal_area": 1.1,
            }
        },
        "lossless": True,
        "notes": [],
        "trace": "t",
        "label": "l",
        "compute_seconds": 1.0,
    }


def _trajectory_folder(folder: Path, point: dict, text: str | None = None) -> Path:
    from agos.stages.records import TrajectorySettings

    folder.mkdir()
    body = {
        "format": "agos-trajectory",
        "version": 2,
        "agos_version": "0",
        "created": "2026-01-01T00:00:00+00:00",
        "settings": TrajectorySettings().model_dump(mode="json"),
        "capture_batch": 0,
        "source": "checkpoints",
        "wall_seconds": 1.0,
        "compute_seconds": 1.0,
        "points": [point],
    }
    (folder / "trajectory.json").write_text(text if text is not None else json.dumps(body))
    return folder


def test_reproduce_refuses_a_trajectory_with_nan_speedups(capsys, tmp_path):
    from agos.stages.records import read_trajectory

    good = _trajectory_folder(tmp_path / "good", _trajectory_point())
    assert read_trajectory(good).points[0].loss == 2.3
    bad_text = (good / "trajectory.json").read_text().replace('"iteration": 1.25', '"iteration": NaN', 1)
    bad = _trajectory_folder(tmp_path / "bad", {}, bad_text)
    out = tmp_path / "report"
    args = ("reproduce", "--out", str(out), "--models", MODEL, "--quick", "--trajectory", str(bad))
    _refused(capsys, *args, says="NaN")
    assert not out.exists()
    point = _trajectory_point()
    point["sparsity"]["x_zero_frac"] = 5.0
    for case, p in (("fraction", point), ("speedup", {**_trajectory_point(), "loss": -1.0})):
        folder = _trajectory_folder(tmp_path / case, p)
        with pytest.raises(AgosError, match=r"points\.0\."):
            read_trajectory(folder)


# -- item 6: an overflow is an error naming the design and the price ---------------------------


def _hot_design(tmp_path: Path, price: str) -> Path:
    table = (ROOT / "src/agos/arch/energy/horowitz45.yaml").read_text()
    energy = tmp_path / "hot-energy.yaml"
    energy.write_text(table.replace("dram_per_byte: 243.75", f"dram_per_byte: {price}"))
    design = tmp_path / "hot.yaml"
    design.write_text(f"name: hot\norganisation: systolic\nenergy: {energy}\n")
    return design


def test_an_energy_price_that_overflows_is_refused(capsys, tmp_path, mixed_trace):
    design = _hot_design(tmp_path, "1e308")
    out = tmp_path / "hot.json"
    line = _refused(capsys, "simulate", str(mixed_trace), "--arch", str(design), "--json", str(out), says="")
    assert "dram_per_byte" in line and "hot-energy.yaml" in line
    assert not out.exists()


def test_a_non_finite_energy_names_the_design_and_the_price(mixed_trace):
    """Past the loader (a table built without validation), the totals are checked where the
    simulation section is assembled."""
    from agos.arch.energy import EnergyTable
    from agos.arch.load import LoadedArch

    base = load_arch("dense@systolic")
    hot = EnergyTable.model_construct(**{**base.energy.model_dump(), "dram_per_byte": 1e308})
    loaded = LoadedArch(base.arch, hot, base.area, base.source)
    trace = load_trace(mixed_trace)
    with pytest.raises(AgosError) as err:
        analyse(trace, resolve_density(trace, "real"), ["simulation"], [loaded])
    message = str(err.value)
    assert "dense@systolic" in message and "dram_per_byte 1e+308" in message and "horowitz45" in message


@pytest.mark.parametrize(
    "table,line,doctored",
    [
        ("energy/horowitz45", "vector_add: 0.9", "vector_add: .nan"),
        ("energy/horowitz45", "mac_gated: 0.2", "mac_gated: 1e7"),
        ("area/area45", "and2: 1.064", "and2: 1e400"),
        ("area/area45", "and2: 1.064", "and2: 1e12"),
        ("area/area45", "node_nm: 45", "node_nm: true"),
    ],
)
def test_energy_and_area_tables_are_finite_and_in_range(capsys, tmp_path, table, line, doctored):
    kind, name = table.split("/")
    text = (ROOT / f"src/agos/arch/{table}.yaml").read_text()
    assert line in text
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.replace(line, doctored))
    design = tmp_path / "d.yaml"
    design.write_text(f"name: d\norganisation: systolic\n{kind}: {path}\n")
    field = doctored.split(":")[0]
    assert f"field '{field}'" in _refused(capsys, "arch", "show", str(design), says=str(path))


# -- item 8: internal errors become one clear line ----------------------------------------------


def test_a_deeply_nested_spec_is_one_line(capsys, tmp_path, mixed_trace):
    spec = tmp_path / "deep.yaml"
    spec.write_text(
        f"traces: [{mixed_trace}]\narchs: [dense@systolic]\naxes: {{x: {'[' * 3000}{']' * 3000}}}\n"
    )
    _refused(capsys, "sweep", str(spec), "--out", str(tmp_path / "o"), "--workers", "0", says="nested")
    spec.write_text(
        f"traces: [{mixed_trace}]\narchs: [dense@systolic]\naxes: {{x: {'[' * 100}{']' * 100}}}\n"
    )
    _refused(capsys, "sweep", str(spec), "--out", str(tmp_path / "o"), "--workers", "0", says="nested")
    assert not (tmp_path / "o").exists()


@pytest.fixture()
def spec(tmp_path, mixed_trace) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(f"traces: [{mixed_trace}]\narchs: [dense@systolic]\n")
    return path


def test_unusable_output_folders_are_refused_before_any_work(capsys, tmp_path, spec, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cases = {
        str(blocker / "out"): "is a file, so nothing can be made below it",
        str(tmp_path / ("a" * 300)): "at most 255",
        "": "--out is empty",
    }
    for out, says in cases.items():
        _refused(capsys, "sweep", str(spec), "--out", out, "--workers", "0", says=says)
    readonly = tmp_path / "ro"
    readonly.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == readonly else real_access(p, mode))
    _refused(capsys, "sweep", str(spec), "--out", str(readonly / "x"), "--workers", "0", says="not writable")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "ro", "spec.yaml"]
    assert list(readonly.iterdir()) == []


def test_a_file_system_failure_deep_inside_is_one_line(capsys, tmp_path, mixed_trace, monkeypatch):
    """Whatever the file system refuses (a read-only folder, a full disk) names the path."""

    def refuse(analysis, path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(analysis_model, "write", refuse)
    out = tmp_path / "b.json"
    line = _refused(capsys, "bounds", str(mixed_trace), "--json", str(out), says="Permission denied")
    assert str(out) in line


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_schema_to_a_full_disk_is_one_line():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "agos", "schema"], stdout=full, stderr=subprocess.PIPE, text=True, env=env
        )
    line = one_error_line(done.stderr)
    assert done.returncode == 2 and "No space left on device" in line and "internal" not in line


def test_a_5000_digit_integer_in_a_design_is_one_line(capsys, tmp_path):
    design = tmp_path / "big.yaml"
    design.write_text(f"name: big\norganisation: systolic\nmemory: {{global_buffer_bytes: {'9' * 5000}}}\n")
    _refused(capsys, "arch", "show", str(design), says="5000 digits")


def test_sgd_settings_beyond_float32_are_refused_first(capsys, tmp_path):
    out = tmp_path / "t"
    common = ("--model", MODEL, "--batch-size", "2", "--image-size", "16", "--device", "cpu")
    _refused(capsys, "trace", "--out", str(out), *common, "--train-steps", "1", "--lr", "1e308", says="--lr")
    _refused(capsys, "check", *common, "--weight-decay", "1e300", says="--weight-decay")
    assert not out.exists()


def test_a_weights_file_of_text_is_one_line(capsys, tmp_path):
    weights = tmp_path / "w.pt"
    weights.write_text("hello\n")
    args = ("trace", "--out", str(tmp_path / "t"), "--model", MODEL, "--weights", str(weights))
    _refused(capsys, *args, says="not a readable PyTorch file")


def test_a_lookahead_beyond_the_schema_is_one_line(capsys, mixed_trace):
    args = ("simulate", str(mixed_trace), "--arch", "agos@systolic", "--lookahead", "9" * 23)
    _refused(capsys, *args, says="--lookahead")


def test_a_library_warning_is_one_line_and_never_before_an_error(capsys, mixed_trace, monkeypatch):
    from agos.report import bounds as report

    shown = report.print_table

    def noisy(analysis):
        warnings.warn("a library's warning\nwith a second line", UserWarning, stacklevel=1)
        shown(analysis)

    monkeypatch.setattr(report, "print_table", noisy)
    code, _, err = run_cli(capsys, "bounds", str(mixed_trace))
    assert code == 0 and err.splitlines() == ["agos: warning: a library's warning (UserWarning)"]

    def noisy_then_fails(analysis):
        warnings.warn("a library's warning", UserWarning, stacklevel=1)
        raise AgosError("the real problem")

    monkeypatch.setattr(report, "print_table", noisy_then_fails)
    code, _, err = run_cli(capsys, "bounds", str(mixed_trace))
    assert code == 2 and one_error_line(err) == "agos: error: the real problem"


def _mixed_state() -> dict:
    from agos.inputs.models import build_model, resolve_model

    return build_model(resolve_model(MODEL), seed=0).state_dict()


def test_bad_checkpoints_are_refused_before_any_point(capsys, tmp_path):
    good, poisoned, wrong = tmp_path / "c-1.pt", tmp_path / "c-2.pt", tmp_path / "c-3.pt"
    state = _mixed_state()
    torch.save(state, good)
    nan = {k: v.clone() for k, v in state.items()}
    first = next(k for k, v in nan.items() if v.is_floating_point())
    nan[first].view(-1)[0] = math.nan
    torch.save(nan, poisoned)
    torch.save({**state, first: torch.zeros(3)}, wrong)
    out = tmp_path / "traj"
    common = ("--model", MODEL, "--batch-size", "2", "--image-size", "16", "--device", "cpu", "--no-check")
    for bad, says in ((poisoned, "NaN or inf"), (wrong, "shape mismatch")):
        args = ("trajectory", "--out", str(out), "--checkpoints", f"{good},{bad}", *common)
        line = _refused(capsys, *args, says=says)
        assert str(bad) in line
    assert not out.exists()


# -- item 10: accepted nonsense is refused --------------------------------------------------------


@pytest.mark.parametrize(
    "text,says",
    [
        ("name: t\norganisation: {name: o, sync: lockstep, pe_array: {rows: true}}\n", "pe_array.rows"),
        ("name: t\norganisation: {name: o, sync: lockstep, pe_array: {rows: '32'}}\n", "pe_array.rows"),
        ("name: t\norganisation: {name: o, sync: lockstep, clock_ghz: 1e-300}\n", "clock_ghz"),
        ("name: t\norganisation: {name: o, sync: lockstep, memory: {dram_gbps: 1e-9}}\n", "dram_gbps"),
        ("name: t\norganisation: systolic\nname: u\n", "key 'name' is given twice"),
        (
            "name: t\norganisation: {name: o, sync: lockstep, sync: independent}\n",
            "key 'sync' is given twice",
        ),
    ],
)
def test_nonsense_in_a_design_is_refused(capsys, tmp_path, text, says):
    design = tmp_path / "d.yaml"
    design.write_text(text)
    _refused(capsys, "arch", "show", str(design), says=says)


def test_yaml_12_floats_are_numbers(tmp_path):
    design = tmp_path / "d.yaml"
    design.write_text(
        "name: t\norganisation: {name: o, sync: lockstep, clock_ghz: 1.5e0, memory: {dram_gbps: 1e3}}\n"
    )
    assert load_arch(str(design)).arch.memory.dram_gbps == 1000.0


def test_nonsense_in_a_sweep_spec_is_refused(capsys, tmp_path, mixed_trace):
    spec = tmp_path / "s.yaml"
    out = tmp_path / "o"
    cases = {
        "archs: [dense@systolic]\narchs: [agos@systolic]\n": "key 'archs' is given twice",
        "archs: [dense@systolic]\nequal_area: 1\n": "equal_area",
        "archs: [dense@systolic]\naxes: {organisation.pe_array.rows: {start: 8, stop: 64, step: 1e30}}\n": (
            "larger than stop − start"
        ),
        "archs: [dense@systolic]\naxes: {organisation.pe_array.rows: {start: 8, stop: 9, step: -5}}\n": (
            "step"
        ),
    }
    for body, says in cases.items():
        spec.write_text(f"traces: [{mixed_trace}]\n{body}")
        _refused(capsys, "sweep", str(spec), "--out", str(out), "--workers", "0", says=says)
    assert not out.exists()


def test_an_empty_out_is_refused(capsys, tmp_path, spec, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    _refused(capsys, "sweep", str(spec), "--out", "", "--workers", "0", says="--out is empty")
    _refused(capsys, "trace", "--out", "", "--model", MODEL, says="--out is empty")
    _refused(capsys, "trajectory", "--out", "", "--train-steps", "1", "--every", "1", says="--out is empty")
    _refused(capsys, "bounds", "x", "--json", "", says="--json is empty")
    assert sorted(os.listdir(tmp_path)) == before


def test_steps_out_of_range_are_refused(capsys, tmp_path):
    huge = str(10**30)
    _refused(capsys, "check", "--model", MODEL, "--steps", huge, says="--steps must be between 1 and")
    args = (
        "trajectory",
        "--out",
        str(tmp_path / "t"),
        "--model",
        MODEL,
        "--train-steps",
        huge,
        "--every",
        huge,
    )
    _refused(capsys, *args, says="--train-steps must be between 1 and")
    state = _mixed_state()
    for step in (-5, 10**30):
        path = tmp_path / f"ckpt{abs(step) % 7}.pt"
        torch.save({"model": state, "step": step}, path)
        args = ("trajectory", "--out", str(tmp_path / "t"), "--model", MODEL, "--checkpoints", str(path))
        _refused(capsys, *args, says=f"is at step {step}")
    assert not (tmp_path / "t").exists()


def test_images_beyond_16_bits_are_refused_not_clipped(tmp_path):
    from PIL import Image

    from agos.inputs.data import load_image

    wide = tmp_path / "wide.tif"
    Image.fromarray(np.full((8, 8), 70000, dtype=np.int32), mode="I").save(wide)
    with pytest.raises(AgosError, match="outside 0…65535"):
        load_image(str(wide))
    sixteen = tmp_path / "sixteen.png"
    Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)).save(sixteen)
    assert int(load_image(str(sixteen)).min()) == 255  # scaled, full scale is white
    half = tmp_path / "half.png"
    Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(half)
    assert int(load_image(str(half)).max()) == 128  # not clipped to 255


def test_no_none_paths_when_every_point_is_left_out(capsys, tmp_path, mixed_trace):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        f"traces: [{mixed_trace}]\narchs: [agos@systolic]\nconstraints: {{area_mm2: {{max: 0.001}}}}\n"
    )
    code, _, err = run_cli(capsys, "sweep", str(spec), "--out", str(tmp_path / "o"), "--workers", "0")
    assert code == 0 and "None" not in err and "no results table" in err


# -- item 4: a file agos owns is replaced, never written through a planted symlink ---------------


def test_a_planted_symlink_in_the_output_folder_is_replaced(capsys, tmp_path, spec):
    out = tmp_path / "o"
    out.mkdir()
    victim = tmp_path / "victim.csv"
    victim.write_text("someone else's data\n")
    (out / "results.csv").symlink_to(victim)
    (out / "skipped.json").symlink_to(victim)
    # a folder agos did not make is refused (issue 22's rule); forced, its files are still replaced
    code, _, _ = run_cli(capsys, "sweep", str(spec), "--out", str(out), "--workers", "0")
    assert code == 2 and victim.read_text() == "someone else's data\n"
    code, _, _ = run_cli(capsys, "sweep", str(spec), "--out", str(out), "--workers", "0", "--force")
    assert code == 0
    assert victim.read_text() == "someone else's data\n"
    for name in ("results.csv", "skipped.json"):
        assert not (out / name).is_symlink() and (out / name).is_file()


def test_owned_file_replaces_a_link_and_a_named_file_is_written_through(tmp_path):
    from agos.fileio import owned_file, write_json

    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(victim)
    with owned_file(link) as f:
        f.write("mine")
    assert victim.read_text() == "keep" and link.read_text() == "mine" and not link.is_symlink()
    named = tmp_path / "named"
    named.symlink_to(victim)
    write_json({"a": 1}, named)  # a path the user names keeps its documented behaviour
    assert named.is_symlink() and json.loads(victim.read_text()) == {"a": 1}


# -- item 9: nothing half-built is left behind ----------------------------------------------------


def test_a_failed_trace_replace_leaves_the_old_trace_and_no_old_folder(
    capsys, tmp_path, mixed_trace, monkeypatch
):
    import shutil

    from agos.capture import trace as trace_module

    out = tmp_path / "ro_dir"
    shutil.copytree(mixed_trace, out)
    before = (out / "manifest.json").read_bytes()
    real_rename = os.rename

    def refuse_second(src, dst):  # the new trace cannot take the old one's place
        if Path(dst) == out and Path(src).name.startswith(".ro_dir.tmp-"):
            raise PermissionError(13, "Permission denied", str(dst))
        return real_rename(src, dst)

    monkeypatch.setattr(trace_module.os, "rename", refuse_second)
    args = (
        "trace",
        "--out",
        str(out),
        "--model",
        MODEL,
        "--batch-size",
        "2",
        "--image-size",
        "16",
        "--device",
        "cpu",
        "--force",  # the copied trace has no agos output marker (issue 22's folder rule)
    )
    _refused(capsys, *args, says="cannot write the trace")
    assert (out / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ro_dir"]


@pytest.mark.slow
@pytest.mark.ci
def test_sigterm_of_a_trajectory_leaves_no_stage_folder(tmp_path):
    out = tmp_path / "traj"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", "AGOS_PROGRESS": "0"}
    # enough points that a stage is still being written when the poll looks (a 16 px run finished first)
    args = ["--out", str(out), "--train-steps", "4", "--every", "1", "--model", MODEL, "--batch-size", "2"]
    args += ["--image-size", "32", "--device", "cpu", "--arch", "agos@systolic"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "agos", "trajectory", *args],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 120
    while not list((out / "cache").glob(".*.tmp-*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    assert list((out / "cache").glob(".*.tmp-*")), "no stage was ever seen being written"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and err.splitlines()[-1] == "agos: terminated"
    assert list((out / "cache").glob(".*")) == []


# -- item 2: simulate counts its work first ------------------------------------------------------


def test_the_equal_area_search_of_a_4096_array_is_a_few_dozen_steps(monkeypatch, tmp_path):
    """It walked one row (and 64 KiB) at a time: millions of area evaluations, minutes of silence."""
    from agos.cost import network

    org = tmp_path / "o4k.yaml"
    org.write_text("name: o4k\nsync: lockstep\npe_array: {rows: 4096, cols: 4096}\n")
    loaded = load_arch(f"agos@{org}")
    real_area = network.design_area
    calls = []

    def counted(arch, table):
        calls.append(1)
        if len(calls) > 2000:
            raise AssertionError("the equal-area search evaluates more than 2000 areas")
        return real_area(arch, table)

    monkeypatch.setattr(network, "design_area", counted)
    target = real_area(loaded.arch, loaded.area).total_mm2
    pe, buffer = network.equal_area_candidates(target, loaded)
    assert real_area(pe.arch, pe.area).total_mm2 <= target
    assert real_area(buffer.arch, buffer.area).total_mm2 <= target
    assert len(calls) < 300


def test_simulate_refuses_work_above_its_limit_and_names_the_flag(capsys, tmp_path, mixed_trace):
    design = tmp_path / "tiny.yaml"
    design.write_text("name: tiny\norganisation: {name: t, sync: lockstep, pe_array: {rows: 1, cols: 1}}\n")
    args = ("simulate", str(mixed_trace), "--arch", str(design), "--max-folds", "1000")
    line = _refused(capsys, *args, says="--max-folds")
    assert "PE-array folds" in line and "above the limit of 1,000 folds" in line


def test_long_work_is_announced_before_it_starts():
    from agos.analysis.work import MAX_FOLDS, Work, check_work

    assert check_work(Work(folds=1000, designs=2, layers=3), MAX_FOLDS) is None
    note = check_work(Work(folds=600_000_000, designs=2, layers=3), MAX_FOLDS)
    assert note is not None and "600,000,000 PE-array folds" in note and "min" in note


def test_a_model_failing_inside_capture_or_the_sparse_engine_is_one_line(capsys, tmp_path):
    common = (
        "--model",
        "tests.models:fx_only_failure",
        "--batch-size",
        "2",
        "--image-size",
        "16",
        "--device",
        "cpu",
    )
    line = _refused(capsys, "trace", "--out", str(tmp_path / "t"), *common, says="the captured step")
    assert "failed on a training batch" in line
    _refused(capsys, "check", *common, "--steps", "1", says="on the sparse engine")
    assert not (tmp_path / "t").exists()


def test_a_plot_agos_cannot_write_is_refused_before_the_other_outputs(capsys, tmp_path, mixed_trace):
    outputs = ("--json", str(tmp_path / "s.json"), "--csv", str(tmp_path / "s.csv"))
    _refused(capsys, "sparsity", str(mixed_trace), *outputs, "--plot", str(tmp_path / "s.xyz"), says="--plot")
    simulate = ("simulate", str(mixed_trace), "--arch", "dense@systolic", "--json", str(tmp_path / "m.json"))
    _refused(capsys, *simulate, "--plot", str(tmp_path / "m.svg"), says=".png")
    assert list(tmp_path.iterdir()) == []


# -- item 2: sweeps and trajectories count their points first ------------------------------------


def _grid(tmp_path: Path, trace: Path, axes: str, name: str = "grid.yaml") -> Path:
    spec = tmp_path / name
    spec.write_text(f"traces: [{trace}]\narchs: [agos@systolic]\naxes:\n{axes}")
    return spec


HUGE_AXES = (
    "  pe_array.rows: {start: 1, stop: 4096, step: 1}\n"
    "  pe_array.cols: {start: 1, stop: 4096, step: 1}\n"
    "  skipping.lookahead: {start: 1, stop: 10000, step: 1}\n"
)


def test_a_huge_sweep_grid_is_counted_not_expanded_and_refused(capsys, tmp_path, mixed_trace, monkeypatch):
    """4096 × 4096 × 10000 ended in a MemoryError; a 10⁶-point grid planned for minutes in silence."""
    from agos.sweep import plan

    def expanded(spec):
        raise AssertionError("the grid was expanded before it was counted")

    monkeypatch.setattr(plan, "combinations", expanded)
    out = tmp_path / "o"
    spec = _grid(tmp_path, mixed_trace, HUGE_AXES)
    line = _refused(capsys, "sweep", str(spec), "--out", str(out), "--workers", "0", says="--max-points")
    assert "167,772,160,000 points (4,096 × 4,096 × 10,000 axis values × 1 design" in line
    assert line.endswith("raise the limit with --max-points 167772160000")
    million = _grid(tmp_path, mixed_trace, "  pe_array.rows: {start: 1, stop: 1000, step: 1}\n"
                    "  pe_array.cols: {start: 1, stop: 1000, step: 1}\n", "million.yaml")  # fmt: skip
    args = ("sweep", str(million), "--out", str(out), "--workers", "0")
    line = _refused(capsys, *args, says="1,000,000 points")
    assert "above the limit of 100,000 points" in line and "--max-points 1000000" in line
    small = _grid(tmp_path, mixed_trace, "  pe_array.rows: [8, 16, 32]\n", "small.yaml")
    args = ("sweep", str(small), "--out", str(out), "--workers", "0", "--max-points", "2")
    assert "--max-points 3" in _refused(capsys, *args, says="3 points")
    assert not out.exists()


def test_a_long_sweep_plan_is_announced_with_an_estimate():
    from agos.sweep.plan import PointCount, check_points

    quick = PointCount((8, 8), 64, 2, 1, 1)
    assert check_points(quick, 100_000) is None
    sampled = PointCount((1000, 1000), 1000, 2, 1, 3)  # a sample of 1000 of the grid: quick to plan
    assert check_points(sampled, 100_000) is None
    assert sampled.text() == (
        "6,000 points (1,000 sampled of 1,000 × 1,000 axis values × 2 designs × 1 trace × 3 densities)"
    )
    long = PointCount((300, 300), 90_000, 1, 1, 1)
    assert check_points(long, 100_000) == (
        "sweep: planning 90,000 points (300 × 300 axis values × 1 design × 1 trace × 1 density), about 2 min"
    )
    with pytest.raises(AgosError, match="raise the limit with --max-points 90000"):
        check_points(long, 89_999)


def test_a_million_snapshots_are_refused_before_any_training(capsys, tmp_path, monkeypatch):
    from agos.trajectory import run as trajectory_run

    def trained(*args, **kwargs):
        raise AssertionError("trained before the snapshots were counted")

    monkeypatch.setattr(trajectory_run, "train_with_snapshots", trained)
    out = tmp_path / "t"
    args = ("trajectory", "--out", str(out), "--model", MODEL, "--train-steps", "1000000", "--every", "1")
    line = _refused(capsys, *args, says="1,000,001 snapshots")
    assert "above the limit of 1,000 points" in line and line.endswith("--max-points 1000001")
    args = ("trajectory", "--out", str(out), "--model", MODEL, "--train-steps", "10", "--every", "3")
    assert "--max-points 5" in _refused(capsys, *args, "--max-points", "4", says="5 snapshots")
    assert not out.exists()


def test_a_checkpoint_glob_is_counted_before_any_file_is_read_and_announced(capsys, tmp_path, monkeypatch):
    from agos.trajectory import checkpoints

    state = _mixed_state()
    folder = tmp_path / "ckpt"
    folder.mkdir()
    for step in (0, 10):
        torch.save({"model": state, "step": step}, folder / f"c{step}.pt")
    real_step_of, read = checkpoints._step_of, []
    monkeypatch.setattr(checkpoints, "_step_of", lambda path: read.append(path) or real_step_of(path))
    out = tmp_path / "t"
    common = ("trajectory", "--out", str(out), "--model", MODEL, "--checkpoints", str(folder / "*.pt"))
    line = _refused(capsys, *common, "--max-points", "1", says="2 files make a trajectory of 2 points")
    assert line.endswith("--max-points 2") and read == [] and not out.exists()
    small = ("--batch-size", "2", "--image-size", "16", "--device", "cpu", "--no-check")
    code, _, err = run_cli(capsys, *common, *small, "--arch", "agos@systolic")
    assert code == 0, err
    lines = err.splitlines()
    assert lines[0] == (
        "trajectory: 2 points (2 checkpoint files), each a captured step and a simulation of 3 designs"
    )  # dense (on both organisations, every speedup is over it) and agos@systolic
    assert any(line.startswith("step 0 (1/2) ·") for line in lines)
    assert any(line.startswith("step 10 (2/2, about ") and " left) ·" in line for line in lines)


# -- item 7: a failed sweep writes no table; Ctrl-C is one line; reproduce checks its sweep first --


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("tcp://127.0.0.1:99999", "port 99999 is not between 1 and 65535"),
        ("not an address", "missing port number"),
        ("foo://somewhere:8786", "unknown scheme 'foo'"),
        ("tcp://:8786", "no host name"),
    ],
)
def test_a_scheduler_address_dask_cannot_dial_is_refused_first(capsys, tmp_path, spec, address, says):
    out = tmp_path / "o"
    line = _refused(capsys, "sweep", str(spec), "--out", str(out), "--scheduler", address, says=says)
    assert line.startswith(f"agos: error: --scheduler {address}: not a scheduler address")
    assert not out.exists()


def _listener(reply: bytes | None):
    """A TCP server on localhost that is not Dask: it answers `reply` to anything (or nothing)."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    held = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            if reply is not None:
                conn.recv(65536)
                conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    return server, f"tcp://127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        (None, "no Dask scheduler answered within 2 s"),  # a service that waits for its own protocol
        (b"HTTP/1.0 400 Bad request\r\n\r\n" * 64, "--scheduler"),  # one that answers in its own
    ],
)
def test_something_else_at_the_scheduler_address_is_one_line_in_time(
    capsys, tmp_path, spec, monkeypatch, reply, says
):
    """A web server there made the client wait for minutes; a proxy, a MemoryError inside Dask."""
    from agos.sweep import run

    monkeypatch.setattr(run, "SCHEDULER_WAIT", 2.0)
    server, address = _listener(reply)
    try:
        out = tmp_path / "o"
        start = time.monotonic()
        code, _, err = run_cli(capsys, "sweep", str(spec), "--out", str(out), "--scheduler", address)
        assert time.monotonic() - start < 30
        assert code == 2 and err.splitlines()[-1].startswith(f"agos: error: --scheduler {address}: ")
        assert says in err.splitlines()[-1] and "Traceback" not in err
        assert not out.exists() or not {"results.csv", "results.parquet"} & set(os.listdir(out))
    finally:
        server.close()


def test_a_dask_scheduler_answers_the_probe():
    from distributed import LocalCluster

    from agos.sweep.run import probe_scheduler

    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        probe_scheduler(cluster.scheduler_address, 10)  # no error: it is one


def test_a_failed_sweep_writes_no_results_table(capsys, tmp_path, spec, monkeypatch):
    import distributed

    def unreachable(*args, **kwargs):
        raise OSError("Timed out trying to connect to tcp://10.255.255.1:8786 after 20 s")

    monkeypatch.setattr(distributed, "Client", unreachable)
    monkeypatch.setattr("agos.sweep.run.probe_scheduler", lambda address: None)  # the client's own failure
    out = tmp_path / "o"
    address = "tcp://10.255.255.1:8786"
    code, _, err = run_cli(capsys, "sweep", str(spec), "--out", str(out), "--scheduler", address)
    assert code == 2 and err.splitlines()[-1].startswith(f"agos: error: --scheduler {address}: cannot")
    assert not out.exists() or not {"results.csv", "results.parquet", "skipped.json"} & set(os.listdir(out))
    # a file where the sweep keeps its points: refused before any work, nothing written
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "cache").write_text("not agos's")
    args = ("sweep", str(spec), "--out", str(planted), "--workers", "0", "--force")
    _refused(capsys, *args, says="cache is a file")
    assert sorted(os.listdir(planted)) == ["cache"]


def test_an_interrupted_serial_sweep_writes_the_rows_it_finished_and_one_before_any_none(
    tmp_path, mixed_trace, monkeypatch
):
    from rich.console import Console

    import agos.sweep.run as sweep_run

    quiet = Console(stderr=True, quiet=True)
    spec = _grid(tmp_path, mixed_trace, "  pe_array.rows: [8, 16, 32]\n")
    real, calls = sweep_run.run_point, []

    def interrupted(blob, task):
        calls.append(task.key)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(blob, task)

    monkeypatch.setattr(sweep_run, "run_point", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweep_run.run_sweep(spec, tmp_path / "some", workers=0, console=quiet)
    rows = (tmp_path / "some" / "results.csv").read_text().splitlines()
    assert len(rows) == 4 and sum("not run (interrupted)" in r for r in rows) == 2
    calls.clear()
    calls.append("first")  # the next point is the second call: interrupted before any finished
    with pytest.raises(KeyboardInterrupt):
        sweep_run.run_sweep(spec, tmp_path / "none", workers=0, console=quiet)
    assert not (tmp_path / "none" / "results.csv").exists()


def test_reproduce_checks_its_sweep_before_the_model_pipeline(capsys, tmp_path, mixed_trace, monkeypatch):
    from agos.reproduce import run as reproduce_run

    def pipeline(*args, **kwargs):
        raise AssertionError("the model pipeline ran before the sweep spec was checked")

    monkeypatch.setattr(reproduce_run, "_run", pipeline)
    out = tmp_path / "r"
    common = ("reproduce", "--out", str(out), "--models", MODEL, "--quick", "--trained", "none")
    unknown = _grid(tmp_path, mixed_trace, "  pe_array.rowz: [8, 16]\n", "unknown.yaml")
    _refused(capsys, *common, "--sweep", str(unknown), says="field 'axes.pe_array.rowz'")
    zero = _grid(tmp_path, mixed_trace, "  pe_array.rows: [8, 0]\n", "zero.yaml")
    _refused(capsys, *common, "--sweep", str(zero), says="pe_array.rows=0")
    missing = tmp_path / "missing.yaml"
    missing.write_text(f"traces: [{tmp_path / 'nowhere'}]\narchs: [agos@systolic]\n")
    _refused(capsys, *common, "--sweep", str(missing), says="is not a trace directory")
    huge = _grid(tmp_path, mixed_trace, HUGE_AXES, "huge.yaml")
    line = _refused(capsys, *common, "--sweep", str(huge), says="167,772,160,000 points")
    assert "--max-points" not in line  # reproduce has no such flag: the line says what to change instead
    assert not out.exists()


@pytest.mark.slow  # about a minute: three local clusters started and interrupted
@pytest.mark.ci
def test_ctrl_c_on_a_dask_sweep_is_one_line_and_exit_130_every_time(tmp_path, mixed_trace):
    """A terminal's Ctrl-C reaches the whole process group: agos and its Dask workers. It printed
    34–36 lines (a distributed ERROR line, worker tracebacks) and once in six tries was lost."""
    spec = _grid(tmp_path, mixed_trace, "  pe_array.rows: {start: 4, stop: 400, step: 1}\n")
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", "AGOS_PROGRESS": "0"}
    # the moments: as the cluster starts, while it starts its workers, once points are being stored
    for trial, (wait, after_a_point) in enumerate(((0.0, False), (2.0, False), (0.0, True))):
        out = tmp_path / f"o{trial}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "agos", "sweep", str(spec), "--out", str(out), "--workers", "2"],
            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT, start_new_session=True,
            preexec_fn=_terminal_sigint,
        )  # fmt: skip
        first = proc.stderr.readline()
        assert first.startswith("sweep: 397 points"), first + proc.communicate(timeout=60)[1]
        time.sleep(wait)
        deadline = time.monotonic() + 120
        while after_a_point and not list(out.glob("cache/point-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep ended before it was interrupted"
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130 and err.splitlines() == ["agos: interrupted"], (trial, err)
        table = out / "results.csv"
        assert table.exists() == after_a_point, trial  # the rows it finished, or no table at all
