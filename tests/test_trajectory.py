"""`agos trajectory`: sparsity, bounds and speedups along training, from the user's checkpoints or
from snapshots of agos's own training; resumable, consistent with `agos trace` + `agos simulate`."""

from __future__ import annotations

import json

import pytest
import torch

from agos.cli import main
from agos.inputs.options import RunOptions
from agos.inputs.session import prepare
from agos.trajectory.checkpoints import resolve_checkpoints, train_with_snapshots
from agos.trajectory.run import TrajectorySettings
from tests.cli_helpers import one_error_line, run_cli

MODEL = "tests.models:mixed"
SMALL = ("--model", MODEL, "--batch-size", "2", "--image-size", "16", "--arch", "agos@systolic")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("trajectory") / "t"
    assert main(["trajectory", "--out", str(out), "--train-steps", "4", "--every", "2", *SMALL]) == 0
    return out, json.loads((out / "trajectory.json").read_text())


def test_snapshots_every_k_steps_and_one_point_each(trained):
    out, result = trained
    assert [p["step"] for p in result["points"]] == [0, 2, 4]
    assert sorted(p.name for p in (out / "checkpoints").glob("*.pt")) == [
        "step-000000.pt",
        "step-000002.pt",
        "step-000004.pt",
    ]
    assert all(p["lossless"] is True for p in result["points"])
    assert len({p["sha256"] for p in result["points"]}) == 3  # training changed the weights
    assert result["points"][0]["loss"] != result["points"][-1]["loss"]
    for p in result["points"]:
        assert set(p["designs"]) == {"agos@systolic"}
        assert 0 <= p["sparsity"]["x_zero_frac"] <= 1
    assert (out / "trajectory.png").stat().st_size > 10_000
    lines = (out / "trajectory.csv").read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("step,loss")


def test_resumed_training_equals_training_in_one_go(trained, tmp_path):
    """Stopped after step 2, then asked for 4 steps: the momentum buffers come back from the
    snapshot, so step 4 holds the same bytes as the uninterrupted run's."""
    out, result = trained
    run = RunOptions.for_command("trajectory", model=MODEL, batch_size=2, image_size=16)
    settings = TrajectorySettings(run=run, train_steps=4, every=2)
    identity = json.loads((out / "checkpoints" / "training.json").read_text())
    part = tmp_path / "checkpoints"
    train_with_snapshots(prepare(settings.options()), 2, 2, part, identity)
    assert sorted(p.name for p in part.glob("*.pt")) == ["step-000000.pt", "step-000002.pt"]
    resumed = train_with_snapshots(prepare(settings.options()), 4, 2, part, identity)
    assert [c.sha256 for c in resumed] == [p["sha256"] for p in result["points"]]
    a = torch.load(out / "checkpoints" / "step-000004.pt", weights_only=True)
    b = torch.load(part / "step-000004.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_a_second_run_reuses_every_point(trained, capsys):
    out, result = trained
    assert main(["trajectory", "--out", str(out), "--train-steps", "4", "--every", "2", *SMALL]) == 0
    err = capsys.readouterr().err
    assert err.count("(cached)") == 6 and " …" not in err
    again = json.loads((out / "trajectory.json").read_text())
    assert again["points"] == result["points"]


def test_a_point_equals_trace_and_simulate_of_its_checkpoint(trained, tmp_path):
    """The user's-checkpoint path captures batch 0; `agos trace --weights FILE` does the same, and
    `agos simulate` on that trace must give the same masks and speedup."""
    out, _ = trained
    ckpt = out / "checkpoints" / "step-000002.pt"
    mine = tmp_path / "mine"
    assert main(["trajectory", "--out", str(mine), "--checkpoints", str(ckpt), *SMALL]) == 0
    point = json.loads((mine / "trajectory.json").read_text())["points"][0]
    assert point["step"] == 2 and point["step_source"] == "checkpoint key 'step'"
    trace = tmp_path / "trace"
    args = ["trace", "--out", str(trace), "--model", MODEL, "--weights", str(ckpt)]
    assert main([*args, "--batch-size", "2", "--image-size", "16"]) == 0
    theirs = json.loads((trace / "manifest.json").read_text())
    ours = json.loads((mine / "cache" / point["trace"].split("/cache/")[-1] / "manifest.json").read_text())
    counts = [(layer["name"], layer["x_nonzero"], layer["dy_nonzero"]) for layer in theirs["layers"]]
    assert [(layer["name"], layer["x_nonzero"], layer["dy_nonzero"]) for layer in ours["layers"]] == counts
    assert ours["masks_sha256"] == theirs["masks_sha256"]
    assert main(["simulate", str(trace), "--arch", "agos@systolic", "--json", str(tmp_path / "s.json")]) == 0
    sim = json.loads((tmp_path / "s.json").read_text())
    expected = sim["simulation"]["designs"]["agos@systolic"]["speedup_over_twin"]["backprop"]
    ours = point["designs"]["agos@systolic"]["speedup_over_twin"]["backprop"]
    assert ours == pytest.approx(expected, rel=1e-12)


def test_checkpoint_steps_from_keys_names_or_order(tmp_path):
    state = {"w": torch.zeros(1)}
    torch.save({"model": state, "epoch": 7}, tmp_path / "a.pt")
    torch.save({"model": state, "epoch": 3}, tmp_path / "b.pt")
    found = resolve_checkpoints(str(tmp_path / "*.pt"))
    assert [(c.path.name, c.step) for c in found] == [("b.pt", 3), ("a.pt", 7)]
    torch.save(state, tmp_path / "run-10.pt")
    torch.save(state, tmp_path / "run-9.pt")
    found = resolve_checkpoints(f"{tmp_path}/run-10.pt,{tmp_path}/run-9.pt")
    assert [c.step for c in found] == [9, 10] and found[0].step_source == "file name"
    torch.save({"model": state, "epoch": 9}, tmp_path / "c.pt")
    with pytest.raises(Exception, match="same step"):
        resolve_checkpoints(f"{tmp_path}/run-9.pt,{tmp_path}/c.pt")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give either --checkpoints"),
        (("--checkpoints", "/no/such/*.pt"), "no file matches"),
        (("--checkpoints", "/no/such.pt"), "does not exist"),
        (("--train-steps", "3", "--every", "5"), "--every must be between 1 and --train-steps"),
        (("--train-steps", "3", "--every", "1", "--arch", "dense"), "at least one skipping design"),
        (("--train-steps", "3", "--every", "1", "--lr", "nan"), "--lr must be a finite number"),
        (("--train-steps", "2", "--every", "1", "--image-size", "4"), "--image-size must be between"),
    ],
)
def test_bad_arguments_are_one_line_before_any_work(capsys, tmp_path, args, message):
    code, _, err = run_cli(capsys, "trajectory", "--out", str(tmp_path / "t"), "--model", MODEL, *args)
    assert code != 0 and message in one_error_line(err)
    assert not (tmp_path / "t" / "checkpoints").exists()


def test_another_runs_snapshots_are_not_mixed_in(trained, capsys):
    out, _ = trained
    args = ("trajectory", "--out", str(out), "--train-steps", "4", "--every", "2", *SMALL, "--lr", "0.02")
    code, _, err = run_cli(capsys, *args)
    assert code != 0 and "holds another agos trajectory run" in one_error_line(err)
    code, _, err = run_cli(capsys, *args, "--force")  # forced into the folder: still never mixed
    assert code != 0 and "snapshots of another training run" in one_error_line(err)


@pytest.mark.slow  # 2.5 s of report; CI runs it
@pytest.mark.ci
def test_the_report_shows_a_given_trajectory(trained, tmp_path, capsys):
    out, result = trained
    report = tmp_path / "r"
    args = ["reproduce", "--out", str(report), "--models", MODEL, "--batch-size", "2", "--image-size", "16"]
    args += ["--check-images", "0", "--arch", "dense,agos@systolic", "--trained", "none"]
    code, _, err = run_cli(capsys, *args, "--trajectory", str(tmp_path / "nowhere"))
    assert code != 0 and "no trajectory.json there" in one_error_line(err)
    assert not (report / "cache").exists() or not any((report / "cache").iterdir())
    assert main([*args, "--trajectory", str(out)]) == 0
    page = (report / "index.html").read_text()
    section = page.split('id="trajectory"')[1].split("<h2")[0]
    assert section.count("<tr><td>") == len(result["points"])
    assert "data:image/png;base64," in section and "capture batch 4" in section
    stored = json.loads((report / "results.json").read_text())["trajectory"]
    assert [p["step"] for p in stored["points"]] == [0, 2, 4]


def test_trajectory_json_is_a_valid_record_and_a_doctored_one_is_one_line(trained, tmp_path):
    import jsonschema

    from agos.errors import AgosError
    from agos.schemas import registry
    from agos.stages.records import read_trajectory

    out, result = trained
    jsonschema.validate(result, json.loads(registry()["trajectory"][1].read_text()))
    assert read_trajectory(out).plot == str(out / "trajectory.png")
    for doctor, message in (
        (lambda d: d.update(version=1), "agos-trajectory version 1; this agos reads version 2"),
        (lambda d: d["points"][0].update(unexpected=1), "points.0.unexpected"),
        (lambda d: d["settings"]["run"].update(batch_size="two"), "settings.run.batch_size"),
    ):
        data = json.loads(json.dumps(result))
        doctor(data)
        (tmp_path / "trajectory.json").write_text(json.dumps(data))
        with pytest.raises(AgosError) as caught:
            read_trajectory(tmp_path)
        assert message in str(caught.value) and "\n" not in str(caught.value)
