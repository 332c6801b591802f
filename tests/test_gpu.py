"""GPU figures: the shipped H200 anchors, per-image scaling, user CSVs, and `agos gpu-bench` (its
timing loop and samplers exercised on the CPU; no GPU is needed)."""

from __future__ import annotations

import math
import stat
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from agos.cli import main
from agos.errors import AgosError
from agos.gpu import training_bench as bench
from agos.gpu.anchors import (
    SHIPPED_DEVICE,
    GpuAnchor,
    anchor_for,
    compare_per_image,
    joules_per_image,
    load_anchors,
    mac_scale,
    ms_per_image,
    write_anchors,
)

SHARED_ANCHORS = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "gpu_dense_training_h200.csv"
SHIPPED = (
    Path(__file__).resolve().parents[1] / "src" / "agos" / "gpu" / "data" / "gpu_dense_training_h200.csv"
)


def test_shipped_anchors_load_and_scale_per_image():
    anchors = load_anchors()
    assert len(anchors) == 14
    assert list(dict.fromkeys(a.model for a in anchors)) == [
        "alexnet",
        "vgg16",
        "resnet18",
        "resnet50",
        "googlenet",
        "mobilenet_v2",
        "inception_v3",
    ]
    assert {a.precision for a in anchors} == {"fp32", "bf16-autocast"}
    assert all(a.batch == 64 and a.device == SHIPPED_DEVICE for a in anchors)
    r50 = anchor_for("resnet50")
    assert r50 is not None and r50.precision == "fp32"
    assert r50.iter_ms == 32.15 and r50.ms_per_image == pytest.approx(32.15 / 64)
    assert r50.joules_per_image == pytest.approx(16.37 / 64)
    bf16 = anchor_for("resnet50", "bf16-autocast")
    assert bf16 is not None and bf16.ms_per_image == pytest.approx(28.72 / 64)
    assert anchor_for("densenet121") is None
    assert anchor_for("resnet50", batch=32) is None
    assert ms_per_image(10.0, 4) == 2.5 and joules_per_image(3.0, 4) == 0.75
    with pytest.raises(ValueError):
        ms_per_image(1.0, 0)


def test_shipped_anchors_are_self_consistent():
    """img/s = batch / time and J/iter = W × time, within the rounding of the published table."""
    for a in load_anchors():
        assert a.img_per_s == pytest.approx(1000 * a.batch / a.iter_ms, rel=0.01), a
        assert a.joules_per_iter == pytest.approx(a.avg_power_w * a.iter_ms / 1000, rel=0.01), a


@pytest.mark.skipif(not SHARED_ANCHORS.is_file(), reason="../shared/anchors is not beside this clone")
def test_shipped_copy_is_the_shared_file():
    assert SHIPPED.read_bytes() == SHARED_ANCHORS.read_bytes()


def test_compare_per_image_states_the_scaling():
    r50 = anchor_for("resnet50")
    assert r50.px == 224 and anchor_for("inception_v3").px == 299
    cmp = compare_per_image(
        sim_iter_ms=10.0, sim_joules_per_iter=0.8, sim_batch=16, sim_image_size=224, anchor=r50
    )
    assert cmp.sim_ms_per_image == pytest.approx(0.625)
    assert cmp.gpu_ms_per_image == pytest.approx(32.15 / 64)
    assert cmp.speedup == pytest.approx((32.15 / 64) / 0.625)
    assert cmp.energy_ratio == pytest.approx((16.37 / 64) / 0.05)
    assert "batch 16, 224 px" in cmp.note and "batch 64, 224 px" in cmp.note and "NVIDIA H200" in cmp.note
    assert cmp.to_dict()["gpu_batch"] == 64 and cmp.to_dict()["gpu_image_size"] == 224
    assert "per image at 224 px" in cmp.note
    no_power = GpuAnchor("m", 8, "fp32", 4.0, 2000.0, None, None, "GPU", "test", image_size=32)
    assert compare_per_image(2.0, 1.0, 8, 32, no_power).energy_ratio is None


def test_gpu_comparison_sets_per_image_work_at_the_gpus_image_size():
    """DESIGN.md §4 "GPU comparison": a 160-px simulation is not set against a GPU measured at
    224 px per image as it is; its per-image figures are scaled by the MACs at 224 over those at
    160, or the comparison is refused (one line), and the note names both sides' batch and size."""
    r18 = anchor_for("resnet18")
    with pytest.raises(AgosError, match=r"160 px.*224 px.*refused"):
        compare_per_image(10.0, 0.8, 8, 160, r18)
    cmp = compare_per_image(10.0, 0.8, 8, 160, r18, scale=2.0)
    assert cmp.sim_ms_per_image == pytest.approx(2 * 10.0 / 8)
    assert cmp.sim_joules_per_image == pytest.approx(2 * 0.8 / 8)
    assert cmp.energy_ratio == pytest.approx((5.99 / 64) / (2 * 0.8 / 8))
    assert "batch 8, 160 px" in cmp.note and "batch 64, 224 px" in cmp.note and "× 2.000" in cmp.note
    d = cmp.to_dict()
    assert (d["sim_image_size"], d["gpu_image_size"], d["mac_scale"]) == (160, 224, 2.0)


def test_mac_scale_counts_the_model_at_both_sizes(resnet18_trace):
    """The shape pass on the meta device gives the trace's own dense MACs at the trace's size (so
    it can be trusted at the GPU's), and refuses, in one line, a count it cannot reproduce."""
    from agos.capture.shapes import dense_macs_per_image
    from agos.capture.trace import load_trace

    trace = load_trace(resnet18_trace)
    n = trace.manifest.layers[0].geometry.n
    traced = sum(layer.geometry.macs * (3 if layer.needs_bwd_data else 2) for layer in trace.manifest.layers)
    assert dense_macs_per_image("resnet18", 64) * n == traced
    at_224 = dense_macs_per_image("resnet18", 224)
    assert mac_scale("resnet18", 64, traced / n, 224) == pytest.approx(at_224 / (traced / n))
    assert 12.25 < at_224 / (traced / n) < 16  # above (224 / 64)²: at 64 px more taps fall on padding
    assert mac_scale("resnet18", 224, 1.0, 224) == 1.0
    with pytest.raises(AgosError, match="cannot set resnet18's work at 224 px"):
        mac_scale("resnet18", 64, traced / n + 1, 224)
    with pytest.raises(AgosError, match="cannot count the MACs of inception_v3 at 64 px"):
        dense_macs_per_image("inception_v3", 64)


def _row(model: str, power: float | None) -> GpuAnchor:
    return GpuAnchor(
        model=model,
        batch=32,
        precision="bf16-autocast",
        iter_ms=12.3456,
        img_per_s=1000 * 32 / 12.3456,
        avg_power_w=power,
        joules_per_iter=None if power is None else power * 12.3456 / 1000,
        device="NVIDIA Test GPU",
        source="agos gpu-bench",
        torch="2.14.1",
        cuda="13.0",
        steps=321,
        seconds=3.963,
        power_source="nvidia-smi" if power is not None else "unavailable: no tools",
    )


def test_user_csv_round_trips(tmp_path):
    rows = [_row("resnet18", 350.25), _row("mymodels:net", None)]
    path = tmp_path / "mine.csv"
    write_anchors(rows, path)
    header = path.read_text().splitlines()[0].split(",")
    assert header[:7] == [
        "model",
        "batch",
        "precision",
        "iter_ms",
        "img_per_s",
        "avg_power_w",
        "joules_per_iter",
    ]
    back = load_anchors(path)
    assert [b.model for b in back] == ["resnet18", "mymodels:net"]
    for a, b in zip(rows, back, strict=True):
        assert b.device == "NVIDIA Test GPU" and b.batch == 32 and b.precision == a.precision
        assert b.iter_ms == pytest.approx(a.iter_ms, abs=1e-3)
        assert b.img_per_s == pytest.approx(a.img_per_s, abs=0.1)
        assert (
            b.torch == "2.14.1" and b.cuda == "13.0" and b.steps == 321 and b.power_source == a.power_source
        )
        assert b.source == f"measured: {path}"
    assert back[0].avg_power_w == pytest.approx(350.2, abs=0.06)
    assert back[0].joules_per_image == pytest.approx(350.25 * 12.3456 / 1000 / 32, rel=1e-3)
    assert (
        back[1].avg_power_w is None and back[1].joules_per_iter is None and back[1].joules_per_image is None
    )
    assert anchor_for("resnet18", "bf16-autocast", anchors=back) is back[0]


def test_anchor_csv_without_device_column_is_labelled_by_file(tmp_path):
    path = tmp_path / "a100.csv"
    path.write_text(
        "# my own measurements\nmodel,batch,precision,iter_ms,img_per_s,avg_power_w,joules_per_iter\n"
        "vgg16,64,fp32,80.0,800,300,24.0\n"
    )
    (row,) = load_anchors(path)
    assert row.device == "GPU of a100.csv" and row.ms_per_image == pytest.approx(80 / 64)
    assert row.px == 224 and "no image_size column" in row.image_size_note  # assumed, and said so
    assert "no image_size column" in compare_per_image(8.0, 1.0, 8, 224, row).note
    sized = tmp_path / "sized.csv"
    write_anchors([replace(row, image_size=128, image_size_note=None)], sized)
    (back,) = load_anchors(sized)
    assert back.px == 128 and back.image_size_note is None and "128 px" in back.label


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty file"),
        ("model,batch,precision,iter_ms\nvgg16,64,fp32,1\n", "missing column(s) img_per_s, avg_power_w"),
        (
            "model,batch,precision,iter_ms,img_per_s,avg_power_w,joules_per_iter\nvgg16,64,fp32,fast,1,,\n",
            "row 2: iter_ms 'fast' is not a float",
        ),
        (
            "model,batch,precision,iter_ms,img_per_s,avg_power_w,joules_per_iter\nvgg16,0,fp32,1,1,,\n",
            "must be positive",
        ),
        ("model,batch,precision,iter_ms,img_per_s,avg_power_w,joules_per_iter\n", "a header but no rows"),
    ],
)
def test_bad_anchor_files_are_one_line_errors(tmp_path, text, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(AgosError) as info:
        load_anchors(path)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_missing_anchor_file(tmp_path):
    with pytest.raises(AgosError, match="does not exist"):
        load_anchors(tmp_path / "nope.csv")


# ---------------------------------------------------------------- gpu-bench


def test_gpu_bench_without_cuda_is_one_line_and_exit_3(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "gpu.csv"
    code = main(["gpu-bench", "--models", "resnet18", "--seconds", "0.1", "--out", str(out)])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 3
    assert len(lines) == 1 and "Traceback" not in captured.err
    assert (
        "no CUDA GPU here: gpu-bench measures a local NVIDIA GPU; the report uses the shipped H200 anchors"
        in lines[0]
    )
    assert not out.exists() and captured.out == ""


def test_gpu_bench_rejects_bad_arguments_before_looking_for_a_gpu(capsys):
    assert main(["gpu-bench", "--precision", "fp16"]) == 2
    assert "unknown precision 'fp16'" in capsys.readouterr().err
    assert main(["gpu-bench", "--models", "resnet5"]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert main(["gpu-bench", "--device", "cpu"]) == 2
    assert "CUDA GPUs only" in capsys.readouterr().err


class ListSampler(bench.PowerSampler):
    """Hands back the samples a test put in `samples`."""

    source = "test-sampler"

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.started = self.stopped = 0

    def start(self) -> None:
        self.started += 1

    def stop(self):
        self.stopped += 1
        return list(self.samples)


def test_timing_loop_synchronises_and_keeps_only_samples_of_the_timed_steps():
    sampler = ListSampler()
    calls: list[str] = []
    warmup = 3

    def step():
        calls.append("step")
        n = calls.count("step")
        time.sleep(0.004)
        # warm-up and probe steps draw 100 W, timed steps 300 W: only 300 W may be averaged
        sampler.samples.append((time.time(), 100.0 if n <= warmup else 300.0))

    def sync():
        calls.append("sync")

    sampler.samples.append((time.time() + 3600, 999.0))  # a sample after the window: ignored
    timing = bench.time_steps(
        step, torch.device("cpu"), seconds=0.04, warmup=warmup, sampler=sampler, sync=sync
    )
    assert sampler.started == sampler.stopped == 1
    assert timing.steps >= 1 and calls.count("step") == warmup + timing.steps
    # sync after the warm-up, around the probe step, and after the last timed step; none in between
    assert calls == ["step"] * (warmup - 1) + ["sync", "step", "sync"] + ["step"] * timing.steps + ["sync"]
    assert timing.iter_ms >= 4.0 and timing.iter_ms == pytest.approx(1000 * timing.seconds / timing.steps)
    assert timing.power_samples == timing.steps and timing.avg_power_w == 300.0
    with pytest.raises(ValueError):
        bench.time_steps(step, torch.device("cpu"), seconds=0.01, warmup=0)


class ConstantSampler(bench.PowerSampler):
    source = "constant-150W"

    def start(self) -> None:
        self.t0 = time.time()

    def stop(self):
        t1 = time.time()
        return [(self.t0 + (t1 - self.t0) * i / 2000, 150.0) for i in range(2001)]


@pytest.mark.parametrize("precision", ["fp32", "bf16-autocast"])
def test_bench_model_runs_a_real_training_step_on_cpu(tmp_path, precision):
    row = bench.bench_model(
        "tests.models:mixed",
        batch=2,
        precision=precision,
        device=torch.device("cpu"),
        seconds=0.03,
        warmup=1,
        sampler=ConstantSampler(),
        image_size=16,
    )
    assert row.model == "tests.models:mixed" and row.batch == 2 and row.precision == precision
    assert row.steps >= 1 and row.iter_ms > 0 and row.seconds > 0
    assert row.img_per_s == pytest.approx(2000 / row.iter_ms)
    assert row.avg_power_w == pytest.approx(150.0)
    assert row.joules_per_iter == pytest.approx(150.0 * row.iter_ms / 1000)
    assert row.device == "cpu (not a GPU)" and row.torch == torch.__version__ and row.cuda is None
    assert row.power_source == "constant-150W"
    write_anchors([row], tmp_path / "cpu.csv")
    (back,) = load_anchors(tmp_path / "cpu.csv")
    assert back.model == row.model and back.iter_ms == pytest.approx(row.iter_ms, abs=1e-3)


def test_bench_model_step_updates_the_weights():
    from agos.inputs.models import build_model, resolve_model

    model = build_model(resolve_model("tests.models:mixed"), seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    images, labels = torch.randn(2, 3, 16, 16), torch.tensor([0, 1])
    bench.make_step(model, opt, images, labels, "fp32")()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    with pytest.raises(AgosError):
        bench.make_step(model, opt, images, labels, "fp16")


def test_power_unavailable_is_recorded_not_invented():
    row = bench.bench_model(
        "tests.models:mixed",
        batch=1,
        precision="fp32",
        device=torch.device("cpu"),
        seconds=0.01,
        warmup=1,
        sampler=bench.NoPowerSampler("nvidia-smi not found and pynvml not installed"),
        image_size=16,
    )
    assert row.avg_power_w is None and row.joules_per_iter is None
    assert row.power_source == "unavailable: nvidia-smi not found and pynvml not installed"
    silent = bench.bench_model(
        "tests.models:mixed", 1, "fp32", torch.device("cpu"), 0.01, 1, ListSampler(), image_size=16
    )
    assert silent.avg_power_w is None and silent.power_source.startswith(
        "unavailable: test-sampler gave no samples"
    )


def test_choose_sampler_without_nvidia_smi_or_pynvml(monkeypatch):
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    sampler = bench.choose_sampler(torch.device("cuda", 0))
    assert isinstance(sampler, bench.NoPowerSampler)
    assert sampler.source == "unavailable: nvidia-smi not found and pynvml not installed"


def test_parse_nvidia_smi_lines():
    t, w = bench.parse_nvidia_smi_line("2026/11/27 06:16:53.432, 454.12", received=0.0)
    assert w == 454.12 and t != 0.0 and time.localtime(t).tm_year == 2026
    assert bench.parse_nvidia_smi_line("garbage, 12.5", received=7.0) == (7.0, 12.5)
    assert bench.parse_nvidia_smi_line("2026/11/27 06:16:53.432, [N/A]", received=0.0) is None
    assert bench.parse_nvidia_smi_line("", received=0.0) is None


def test_nvidia_smi_sampler_reads_a_looping_process(tmp_path):
    """A stand-in nvidia-smi that prints like the real one: samples arrive while it runs, and the
    command line asks for timestamped power.draw every 100 ms of the chosen GPU."""
    args_file = tmp_path / "args"
    fake = tmp_path / "nvidia-smi"
    fake.write_text(  # Python, not date(1): %N is a GNU extension
        f"#!{sys.executable}\n"
        "import datetime, sys, time\n"
        f"open({str(args_file)!r}, 'w').write(' '.join(sys.argv[1:]))\n"
        "stamp = lambda: datetime.datetime.now().strftime('%Y/%m/%d %H:%M:%S.%f')[:-3]\n"
        "print(f'{stamp()}, [N/A]', flush=True)\n"
        "while True:\n"
        "    print(f'{stamp()}, 321.50', flush=True)\n"
        "    time.sleep(0.05)\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    sampler = bench.NvidiaSmiSampler("GPU-1234", executable=str(fake))
    start = time.time()
    sampler.start()
    time.sleep(0.5)
    samples = sampler.stop()
    assert len(samples) >= 3 and all(w == 321.5 for _, w in samples)
    assert all(start - 1.0 <= t <= time.time() + 1.0 for t, _ in samples)
    args = args_file.read_text().split()
    assert args == [
        "--query-gpu=timestamp,power.draw",
        "--format=csv,noheader,nounits",
        "--id=GPU-1234",
        "--loop-ms=100",
    ]
    assert sampler._proc is None  # stopped: no process left behind


def test_image_size_follows_the_anchors():
    assert bench.image_size_for("inception_v3") == 299 and bench.image_size_for("resnet50") == 224
    assert bench.default_models()[0] == "alexnet" and len(bench.default_models()) == 7


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here: the real measurement cannot run")
def test_gpu_bench_on_a_real_gpu(tmp_path, capsys):
    out = tmp_path / "gpu.csv"
    code = main(["gpu-bench", "--models", "resnet18", "--precision", "fp32", "--batch-size", "8",
                 "--seconds", "0.5", "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    (row,) = load_anchors(out)
    assert row.model == "resnet18" and row.iter_ms > 0 and not math.isnan(row.img_per_s)
    assert row.device == torch.cuda.get_device_name(0) and row.cuda == torch.version.cuda


def test_report_gpu_rows_are_at_the_gpus_image_size(resnet18_trace):
    """`agos reproduce`'s GPU rows: a 64-px run of resnet18 against the H200's 224-px rows, per
    image scaled by dense MACs (the twin's ratio likewise); a trace whose MACs the shape pass
    cannot reproduce gets no rows and one line saying why."""
    from agos.capture.shapes import dense_macs_per_image
    from agos.capture.trace import load_trace
    from agos.reproduce.results import _gpu

    layers = load_trace(resnet18_trace).manifest.layers
    traced = sum(layer.geometry.macs * (3 if layer.needs_bwd_data else 2) for layer in layers)

    def design(iteration_ms: float, energy_j: float, twin: str | None) -> SimpleNamespace:
        return SimpleNamespace(
            time_ms=SimpleNamespace(iteration=iteration_ms), energy_j=energy_j, twin=twin, precision="bf16"
        )

    def entry(macs: int) -> SimpleNamespace:  # what `_gpu` reads of a model's `records.Figures`
        designs = {
            "agos@systolic": design(4.0, 0.02, "dense@systolic"),
            "dense@systolic": design(5.0, 0.03, None),
        }
        return SimpleNamespace(designs=designs, dense_macs_per_iteration=macs)

    prov = SimpleNamespace(model="resnet18", batch_size=2, image_size=64)
    rows, note = _gpu("resnet18", entry(traced), prov)
    rows = {name: r.model_dump() for name, r in rows.items()}
    scale = dense_macs_per_image("resnet18", 224) / (traced / 2)
    gpu = anchor_for("resnet18", "bf16-autocast")
    assert note is None and set(rows) == {"agos@systolic", "dense@systolic"}
    a = rows["agos@systolic"]
    assert (a["sim_image_size"], a["gpu_image_size"], a["gpu_batch"]) == (64, 224, 64)
    assert a["sim_joules_per_image"] == pytest.approx(0.02 / 2 * scale)
    assert a["energy_ratio"] == pytest.approx(gpu.joules_per_image / (0.02 / 2 * scale))
    assert a["twin_energy_ratio"] == pytest.approx(gpu.joules_per_image / (0.03 / 2 * scale))
    assert "64 px" in a["note"] and "224 px" in a["note"]
    rows, note = _gpu("resnet18", entry(traced + 2), prov)
    assert rows == {} and note.startswith("resnet18: no GPU comparison: cannot set resnet18's work at 224 px")
