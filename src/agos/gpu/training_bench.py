"""`agos gpu-bench`: dense training time and energy of a local CUDA GPU, measured the way the shipped
H200 anchors were (data/gpu_dense_training_h200.md):

torchvision models at default initialisation, random 224×224 inputs (299×299 for inception_v3),
batch 64, SGD with momentum, one full step (forward, loss, backward, update) repeated for a few
seconds after 5 warm-up steps, cuDNN benchmark mode on, fp32 and bf16 autocast. Power is the mean of
`nvidia-smi` power.draw samples taken every 0.1 s during the timed steps (pynvml when nvidia-smi is
missing); joules_per_iter = mean power × time per iteration.

The timing loop takes the device and the power sampler as arguments, so it runs on a CPU in tests.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.table import Table

from agos.errors import AgosError
from agos.gpu.anchors import GpuAnchor, anchor_for, image_size_for, load_anchors, write_anchors

PRECISIONS = ("fp32", "bf16-autocast")
NO_GPU_MESSAGE = (
    "no CUDA GPU here: gpu-bench measures a local NVIDIA GPU; "
    "the report uses the shipped H200 anchors instead"
)
SAMPLE_INTERVAL_S = 0.1


class NoGpuError(AgosError):
    """No CUDA device: nothing to measure (exit code 3)."""

    exit_code = 3


def default_models() -> list[str]:
    """The models of the shipped anchors, in their order."""
    return list(dict.fromkeys(a.model for a in load_anchors()))


# ---------------------------------------------------------------- power samplers

Sample = tuple[float, float]  # (unix time in seconds, board power in watts)


class PowerSampler:
    """Collects (time, watts) samples in the background between start() and stop()."""

    source = "unavailable"

    def start(self) -> None:
        pass

    def stop(self) -> list[Sample]:
        return []


class NoPowerSampler(PowerSampler):
    def __init__(self, reason: str) -> None:
        self.source = f"unavailable: {reason}"


def _nvidia_smi_time(text: str) -> float | None:
    """nvidia-smi's timestamp column ('2026/11/27 06:16:53.432', local time) as unix time."""
    for fmt in ("%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S"):
        with contextlib.suppress(ValueError):
            return dt.datetime.strptime(text.strip(), fmt).timestamp()
    return None


def parse_nvidia_smi_line(line: str, received: float) -> Sample | None:
    """One line of `--query-gpu=timestamp,power.draw --format=csv,noheader,nounits`; None for
    '[N/A]', '[Not Supported]' and anything else that is not a number. Uses the line's own
    timestamp when it parses (immune to output buffering), else the time it was received."""
    parts = [p.strip() for p in line.strip().split(",")]
    if len(parts) != 2:
        return None
    try:
        watts = float(parts[1])
    except ValueError:
        return None
    stamp = _nvidia_smi_time(parts[0])
    return (stamp if stamp is not None else received, watts)


class NvidiaSmiSampler(PowerSampler):
    """`nvidia-smi --loop-ms=100` in the background, its output read through a pseudo-terminal so
    that each sample arrives as it is printed (a pipe would be block-buffered)."""

    source = "nvidia-smi"

    def __init__(self, gpu_id: str, interval_s: float = SAMPLE_INTERVAL_S, executable: str = "nvidia-smi"):
        self.command = [
            executable,
            "--query-gpu=timestamp,power.draw",
            "--format=csv,noheader,nounits",
            f"--id={gpu_id}",
            f"--loop-ms={round(interval_s * 1000)}",
        ]
        self._samples: list[Sample] = []
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        import pty

        master, slave = pty.openpty()
        self._proc = subprocess.Popen(
            self.command,
            stdout=slave,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        self._thread = threading.Thread(target=self._read, args=(master,), daemon=True)
        self._thread.start()

    def _read(self, fd: int) -> None:
        buffer = b""
        try:
            while True:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                now = time.time()
                for raw in lines:
                    sample = parse_nvidia_smi_line(raw.decode(errors="replace"), now)
                    if sample is not None:
                        self._samples.append(sample)
        finally:
            os.close(fd)

    def stop(self) -> list[Sample]:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
        if self._thread is not None:
            self._thread.join(timeout=3)
            self._thread = None
        return list(self._samples)


class PynvmlSampler(PowerSampler):
    """NVML's board power every 0.1 s in a thread (when nvidia-smi is not on PATH)."""

    source = "pynvml"

    def __init__(self, gpu_id: str, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        import pynvml

        self._nvml = pynvml
        pynvml.nvmlInit()
        if gpu_id.startswith(("GPU-", "MIG-")):
            self._handle = pynvml.nvmlDeviceGetHandleByUUID(gpu_id)
        else:
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(int(gpu_id))
        self._interval = interval_s
        self._samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _poll(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                watts = self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0
                self._samples.append((time.time(), watts))
            if self._stop.wait(self._interval):
                return

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)
            self._thread = None
        return list(self._samples)


def nvidia_id(device: torch.device) -> str:
    """How nvidia-smi / NVML name the GPU behind a CUDA device: its UUID when torch knows it (CUDA
    and nvidia-smi may number GPUs differently), else the index after CUDA_VISIBLE_DEVICES."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    with contextlib.suppress(Exception):
        uuid = str(torch.cuda.get_device_properties(index).uuid)
        if uuid:
            return uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return visible[index] if index < len(visible) else str(index)


def choose_sampler(device: torch.device) -> PowerSampler:
    """nvidia-smi, else pynvml, else a sampler that records why power is unavailable."""
    gpu_id = nvidia_id(device)
    if shutil.which("nvidia-smi"):
        return NvidiaSmiSampler(gpu_id)
    try:
        return PynvmlSampler(gpu_id)
    except ImportError:
        return NoPowerSampler("nvidia-smi not found and pynvml not installed")
    except Exception as exc:
        return NoPowerSampler(f"nvidia-smi not found and NVML failed ({type(exc).__name__}: {exc})")


# ---------------------------------------------------------------- the timing loop


@dataclass(frozen=True)
class StepTiming:
    steps: int  # timed steps
    seconds: float  # wall time of the timed steps, synchronised at both ends
    iter_ms: float
    power_samples: int  # samples that fell inside the timed window
    avg_power_w: float | None


def synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def time_steps(
    step: Callable[[], None],
    device: torch.device,
    seconds: float,
    warmup: int = 5,
    sampler: PowerSampler | None = None,
    sync: Callable[[], None] | None = None,
) -> StepTiming:
    """Run `warmup` steps, then enough steps to fill about `seconds`, and time them.

    CUDA launches are asynchronous, so the clock is read only after a device synchronisation: once
    before the timed steps (the warm-up, cuDNN autotuning included, is done) and once after the last
    one. The last warm-up step is timed on its own to decide how many steps fill `seconds`; the timed
    steps then run back to back with no synchronisation between them, as in training. Power samples
    count only when their timestamps fall between the two synchronisations."""
    if warmup < 1:
        raise ValueError("time_steps needs at least one warm-up step (it sizes the timed run)")
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    sync = sync or synchronizer(device)
    sampler = sampler or PowerSampler()
    sampler.start()  # early, so that a slow-starting nvidia-smi is sampling by the timed window
    try:
        for _ in range(warmup - 1):
            step()
        sync()
        probe_start = time.perf_counter()
        step()
        sync()
        probe = max(time.perf_counter() - probe_start, 1e-6)
        steps = max(1, round(seconds / probe))
        # the power window is on the sampler's clock (wall time), the duration on the monotonic one
        wall_start, start = time.time(), time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        elapsed = time.perf_counter() - start
        wall_end = time.time()
    finally:
        samples = sampler.stop()
    inside = [w for t, w in samples if wall_start <= t <= wall_end]
    return StepTiming(
        steps=steps,
        seconds=elapsed,
        iter_ms=1000 * elapsed / steps,
        power_samples=len(inside),
        avg_power_w=sum(inside) / len(inside) if inside else None,
    )


def make_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    precision: str,
) -> Callable[[], None]:
    """One full training step: forward, loss (auxiliary heads included), backward, update."""
    from agos.inputs.training import loss_of

    if precision not in PRECISIONS:
        raise AgosError(f"unknown precision '{precision}' (choose from {', '.join(PRECISIONS)})")
    device_type = images.device.type

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16-autocast"):
            loss = loss_of(model(images), labels)
        loss.backward()
        optimizer.step()

    return step


def bench_model(
    model_ref: str,
    batch: int,
    precision: str,
    device: torch.device,
    seconds: float,
    warmup: int = 5,
    sampler: PowerSampler | None = None,
    image_size: int | None = None,
    seed: int = 0,
) -> GpuAnchor:
    """Measure one model at one precision; the row has the anchors' columns and provenance."""
    from agos.inputs.models import build_model, resolve_model
    from agos.inputs.options import WarmUp
    from agos.inputs.training import num_classes_of

    spec = resolve_model(model_ref)
    size = image_size or image_size_for(model_ref)
    model = build_model(spec, seed).to(device).train()
    hyper = WarmUp()
    optimizer = torch.optim.SGD(
        model.parameters(), lr=hyper.lr, momentum=hyper.momentum, weight_decay=hyper.weight_decay
    )
    generator = torch.Generator(device="cpu").manual_seed(seed)
    classes = num_classes_of(model, size, device)
    images = torch.randn(batch, 3, size, size, generator=generator).to(device)
    labels = torch.randint(0, classes, (batch,), generator=generator).to(device)
    sampler = sampler or PowerSampler()
    timing = time_steps(
        make_step(model, optimizer, images, labels, precision), device, seconds, warmup, sampler
    )
    joules = None if timing.avg_power_w is None else timing.avg_power_w * timing.iter_ms / 1000
    power_source = sampler.source
    if timing.avg_power_w is None and not power_source.startswith("unavailable"):
        power_source = f"unavailable: {power_source} gave no samples during the timed steps"
    return GpuAnchor(
        model=spec.name,
        batch=batch,
        precision=precision,
        iter_ms=timing.iter_ms,
        img_per_s=1000 * batch / timing.iter_ms,
        avg_power_w=timing.avg_power_w,
        joules_per_iter=joules,
        device=device_name(device),
        source="agos gpu-bench",
        torch=torch.__version__,
        cuda=torch.version.cuda if device.type == "cuda" else None,
        steps=timing.steps,
        seconds=timing.seconds,
        power_source=power_source,
        image_size=size,
    )


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} (not a GPU)"


# ---------------------------------------------------------------- the command


def parse_list(text: str, what: str) -> list[str]:
    items = [p.strip() for p in text.split(",") if p.strip()]
    if not items:
        raise AgosError(f"--{what} is empty")
    return items


def cuda_device(ref: str, no_gpu: str = NO_GPU_MESSAGE) -> torch.device:
    """The CUDA device to measure; NoGpuError (exit 3, saying `no_gpu`) when this machine has none."""
    try:
        device = torch.device(ref)
    except RuntimeError:
        raise AgosError(f"--device '{ref}' is not a device name (cuda or cuda:N)") from None
    if device.type != "cuda":
        raise AgosError(f"--device '{ref}': gpu-bench measures CUDA GPUs only (cuda or cuda:N)")
    if not torch.cuda.is_available():
        raise NoGpuError(no_gpu)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise AgosError(f"--device {ref}: this machine has {count} CUDA device(s)")
    return torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())


def _note(text: str) -> None:
    print(f"agos: {text}", file=sys.stderr)


def run_bench(
    models: list[str],
    precisions: list[str],
    batch: int,
    seconds: float,
    warmup: int,
    device_ref: str,
    out: Path | None,
) -> list[GpuAnchor]:
    from agos.inputs.models import resolve_model

    for p in precisions:
        if p not in PRECISIONS:
            raise AgosError(f"unknown precision '{p}' (choose from {', '.join(PRECISIONS)})")
    if batch < 1:
        raise AgosError("--batch-size must be at least 1")
    if seconds <= 0:
        raise AgosError("--seconds must be positive")
    if warmup < 1:
        raise AgosError("--warmup must be at least 1 (the last warm-up step sizes the timed run)")
    for m in models:
        resolve_model(m)  # unknown names fail here, before anything runs
    device = cuda_device(device_ref)
    if "bf16-autocast" in precisions and not torch.cuda.is_bf16_supported():
        _note(f"{device_name(device)} has no bf16 support: bf16-autocast skipped")
        precisions = [p for p in precisions if p != "bf16-autocast"]

    sampler_probe = choose_sampler(device)
    if sampler_probe.source.startswith("unavailable"):
        _note(f"power not measured ({sampler_probe.source}): avg_power_w and joules_per_iter left empty")
    rows: list[GpuAnchor] = []
    saved_benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        for model in models:
            for precision in precisions:
                try:
                    row = bench_model(
                        model, batch, precision, device, seconds, warmup, choose_sampler(device)
                    )
                except torch.OutOfMemoryError:
                    _note(f"{model} {precision}: out of GPU memory at batch {batch}, skipped")
                    continue
                finally:
                    torch.cuda.empty_cache()
                rows.append(row)
                _note(
                    f"{model} {precision}: {row.iter_ms:.2f} ms/iter over {row.steps} steps"
                    + (f", {row.avg_power_w:.0f} W" if row.avg_power_w is not None else "")
                )
                if out is not None:
                    write_anchors(rows, out)  # after every row: an interrupted run keeps what it measured
    finally:
        torch.backends.cudnn.benchmark = saved_benchmark
    if not rows:
        raise AgosError("nothing was measured")
    return rows


def print_table(rows: list[GpuAnchor]) -> None:
    from agos.report.format import wide_console

    first = rows[0]
    title = (
        f"Dense training on {first.device} — torch {first.torch}, CUDA {first.cuda}, "
        f"power: {first.power_source}"
    )
    table = Table(title=title, title_justify="left")
    for col in (
        "model",
        "precision",
        "batch",
        "ms/iter",
        "img/s",
        "W",
        "J/iter",
        "ms/img",
        "mJ/img",
        "H200 ms/iter",
        "H200 J/iter",
    ):
        table.add_column(col, justify="left" if col in ("model", "precision") else "right")
    for r in rows:
        h200 = anchor_for(r.model, r.precision, r.batch)
        table.add_row(
            r.model,
            r.precision,
            str(r.batch),
            f"{r.iter_ms:.2f}",
            f"{r.img_per_s:.0f}",
            "—" if r.avg_power_w is None else f"{r.avg_power_w:.0f}",
            "—" if r.joules_per_iter is None else f"{r.joules_per_iter:.2f}",
            f"{r.ms_per_image:.3f}",
            "—" if r.joules_per_image is None else f"{1000 * r.joules_per_image:.1f}",
            "—" if h200 is None else f"{h200.iter_ms:.2f}",
            "—" if h200 is None or h200.joules_per_iter is None else f"{h200.joules_per_iter:.2f}",
        )
    table.caption = "H200 columns: the shipped anchors at the same model, batch and precision (±10%)"
    wide_console().print(table)
