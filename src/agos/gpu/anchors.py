"""Measured GPU training figures ("anchors") and their per-image scaling.

The report compares a simulated accelerator with a real GPU. The two run different batches (a
trace is usually batch 32 or less, the GPU figures batch 64), so every comparison is made *per
image*: time and energy of one iteration divided by that iteration's batch, and stated as such.
They may also run different image sizes (a quick trace at 64 or 160 px, the GPU at 224 px), so the
per-image work is set at the size the GPU was measured at: the accelerator's per-image figures are
scaled by the model's dense MACs per image at the GPU's size over those at the trace's size
(DESIGN.md §4 "GPU comparison"), or the comparison is refused when that cannot be done.

Two sources, one format (the columns of `REQUIRED_COLUMNS`, optionally `EXTRA_COLUMNS`):
- the shipped anchors: dense training on one NVIDIA H200, `data/gpu_dense_training_h200.csv`
  (provenance in `data/gpu_dense_training_h200.md`);
- a user's own GPU: the CSV that `agos gpu-bench --out FILE.csv` writes.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from agos.errors import AgosError
from agos.fileio import atomic_file

REQUIRED_COLUMNS = (
    "model",
    "batch",
    "precision",
    "iter_ms",
    "img_per_s",
    "avg_power_w",
    "joules_per_iter",
)
EXTRA_COLUMNS = ("device", "torch", "cuda", "steps", "seconds", "power_source", "image_size")

SHIPPED_FILE = "gpu_dense_training_h200.csv"
SHIPPED_DEVICE = "NVIDIA H200"
SHIPPED_SOURCE = (
    "shipped anchors: NVIDIA H200, driver 580, PyTorch 2.11 + cu130, cuDNN benchmark, "
    "measured 2026-11-27, one run per row (±10%)"
)


def image_size_for(model: str) -> int:
    """The image size the shipped anchors were measured at, and `agos gpu-bench` measures at:
    224 px, 299 for inception_v3 (data/gpu_dense_training_h200.md)."""
    return 299 if model.rsplit(":", 1)[-1] == "inception_v3" else 224


def ms_per_image(iter_ms: float, batch: int) -> float:
    """Time of one iteration spread over its images."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    return iter_ms / batch


def joules_per_image(joules_per_iter: float, batch: int) -> float:
    """Energy of one iteration spread over its images."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    return joules_per_iter / batch


@dataclass(frozen=True)
class GpuAnchor:
    """One measured row: dense training of `model` at `batch` and `precision` on `device`."""

    model: str
    batch: int
    precision: str
    iter_ms: float
    img_per_s: float
    avg_power_w: float | None  # None: power was not measured
    joules_per_iter: float | None
    device: str
    source: str  # where the row came from: the shipped anchors or a file
    torch: str | None = None
    cuda: str | None = None
    steps: int | None = None  # timed steps behind iter_ms (gpu-bench rows)
    seconds: float | None = None  # length of the timed window (gpu-bench rows)
    power_source: str | None = None  # nvidia-smi | pynvml | why power is missing
    image_size: int | None = None  # px of the measured images; None: `image_size_for(model)`, assumed
    image_size_note: str | None = None  # where the image size came from, when the row does not say

    @property
    def px(self) -> int:
        """The image size the row was measured at."""
        return self.image_size if self.image_size is not None else image_size_for(self.model)

    @property
    def ms_per_image(self) -> float:
        return ms_per_image(self.iter_ms, self.batch)

    @property
    def joules_per_image(self) -> float | None:
        return None if self.joules_per_iter is None else joules_per_image(self.joules_per_iter, self.batch)

    @property
    def label(self) -> str:
        return f"{self.device}, {self.model}, batch {self.batch}, {self.px} px, {self.precision}"


@dataclass(frozen=True)
class PerImageComparison:
    """A simulated iteration against a measured GPU iteration, both divided by their own batch and
    both at the GPU's image size (the simulated figures scaled by `mac_scale`)."""

    model: str
    sim_batch: int
    sim_image_size: int
    mac_scale: float  # dense MACs per image at the GPU's size / at the simulated size (1 when equal)
    sim_ms_per_image: float  # at the GPU's image size
    sim_joules_per_image: float | None  # at the GPU's image size
    gpu: GpuAnchor
    gpu_ms_per_image: float
    gpu_joules_per_image: float | None
    speedup: float  # GPU time per image / simulated time per image (> 1: the simulation is faster)
    energy_ratio: float | None  # GPU energy per image / simulated energy per image
    note: str

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "sim_batch": self.sim_batch,
            "sim_image_size": self.sim_image_size,
            "mac_scale": self.mac_scale,
            "sim_ms_per_image": self.sim_ms_per_image,
            "sim_joules_per_image": self.sim_joules_per_image,
            "gpu_device": self.gpu.device,
            "gpu_batch": self.gpu.batch,
            "gpu_image_size": self.gpu.px,
            "gpu_precision": self.gpu.precision,
            "gpu_ms_per_image": self.gpu_ms_per_image,
            "gpu_joules_per_image": self.gpu_joules_per_image,
            "speedup": self.speedup,
            "energy_ratio": self.energy_ratio,
            "gpu_source": self.gpu.source,
            "note": self.note,
        }


def mac_scale(model_ref: str, sim_image_size: int, sim_macs_per_image: float, gpu_image_size: int) -> float:
    """Dense MACs per image at the GPU's size over those at the simulated size, from the model's
    geometry (a shape pass on the meta device, `agos.capture.shapes`). The shape pass must first
    give the simulated trace's own MACs at its own size; otherwise it cannot be trusted at another
    size and the comparison is refused (AgosError, one line)."""
    from agos.capture.shapes import dense_macs_per_image

    if sim_image_size == gpu_image_size:
        return 1.0
    here = dense_macs_per_image(model_ref, sim_image_size)
    if here != sim_macs_per_image:
        raise AgosError(
            f"cannot set {model_ref}'s work at {gpu_image_size} px: a shape pass at {sim_image_size} px "
            f"counts {here} MACs per image, the trace {sim_macs_per_image:.0f}"
        )
    return dense_macs_per_image(model_ref, gpu_image_size) / here


def compare_per_image(
    sim_iter_ms: float,
    sim_joules_per_iter: float | None,
    sim_batch: int,
    sim_image_size: int,
    anchor: GpuAnchor,
    scale: float | None = None,
) -> PerImageComparison:
    """Per-image time and energy of a simulated iteration against a GPU anchor, at the GPU's image
    size: the simulated figures times `scale` (`mac_scale`), which must be given when the sizes
    differ (else AgosError: the comparison is refused). The note states the scaling, batches and
    image sizes of both sides, as the report must print them beside the numbers."""
    gpu_px = anchor.px
    if scale is None:
        if sim_image_size != gpu_px:
            raise AgosError(
                f"{anchor.model}: simulated at {sim_image_size} px, {anchor.device} measured at {gpu_px} px, "
                "and no MAC scale between them: GPU comparison refused"
            )
        scale = 1.0
    sim_ms = ms_per_image(sim_iter_ms, sim_batch) * scale
    sim_j = None if sim_joules_per_iter is None else joules_per_image(sim_joules_per_iter, sim_batch) * scale
    gpu_j = anchor.joules_per_image
    scaled = (
        ""
        if sim_image_size == gpu_px
        else f" × {scale:.3f} (dense MACs per image at {gpu_px} px / at {sim_image_size} px; all of it "
        "scaled, the optimizer update and weight traffic too, which do not grow with the image: the "
        "accelerator's side is overstated, never flattered)"
    )
    note = (
        f"per image at {gpu_px} px: simulated iteration at batch {sim_batch}, {sim_image_size} px ÷ "
        f"{sim_batch}{scaled}; {anchor.device} {anchor.precision} iteration at batch {anchor.batch}, "
        f"{gpu_px} px ÷ {anchor.batch}" + (f" ({anchor.image_size_note})" if anchor.image_size_note else "")
    )
    return PerImageComparison(
        model=anchor.model,
        sim_batch=sim_batch,
        sim_image_size=sim_image_size,
        mac_scale=scale,
        sim_ms_per_image=sim_ms,
        sim_joules_per_image=sim_j,
        gpu=anchor,
        gpu_ms_per_image=anchor.ms_per_image,
        gpu_joules_per_image=gpu_j,
        speedup=anchor.ms_per_image / sim_ms if sim_ms > 0 else math.inf,
        energy_ratio=gpu_j / sim_j if (gpu_j is not None and sim_j) else None,
        note=note,
    )


# ---------------------------------------------------------------- reading and writing CSV files


def _number(raw: str, column: str, where: str, kind=float, optional: bool = False):
    text = (raw or "").strip()
    if not text:
        if optional:
            return None
        raise AgosError(f"{where}: column {column} is empty")
    try:
        value = kind(text)
    except ValueError:
        raise AgosError(f"{where}: {column} '{text}' is not a {kind.__name__}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise AgosError(f"{where}: {column} '{text}' is not finite")
    return value


def _text(raw: str | None) -> str | None:
    text = (raw or "").strip()
    return text or None


def _parse(
    lines: Iterable[str], name: str, default_device: str, source: str, size_note: str | None
) -> list[GpuAnchor]:
    """Rows of a CSV; a row without `image_size` was measured at `image_size_for(model)` (the
    shipped anchors say so in their provenance; for a user's file `size_note` says it is assumed)."""
    rows = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        raise AgosError(f"{name}: no GPU figures (empty file)")
    reader = csv.DictReader(rows)
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise AgosError(
            f"{name}: missing column(s) {', '.join(missing)} "
            f"(expected {','.join(REQUIRED_COLUMNS)}, as `agos gpu-bench --out` writes)"
        )
    anchors = []
    for number, row in enumerate(reader, start=2):
        where = f"{name} row {number}"
        model = _text(row.get("model"))
        precision = _text(row.get("precision"))
        if not model or not precision:
            raise AgosError(f"{where}: model and precision must not be empty")
        batch = _number(row["batch"], "batch", where, int)
        iter_ms = _number(row["iter_ms"], "iter_ms", where)
        img_per_s = _number(row["img_per_s"], "img_per_s", where)
        if batch < 1 or iter_ms <= 0 or img_per_s <= 0:
            raise AgosError(f"{where}: batch, iter_ms and img_per_s must be positive")
        power = _number(row["avg_power_w"], "avg_power_w", where, optional=True)
        joules = _number(row["joules_per_iter"], "joules_per_iter", where, optional=True)
        if (power is not None and power < 0) or (joules is not None and joules < 0):
            raise AgosError(f"{where}: avg_power_w and joules_per_iter must not be negative")
        size = _number(row.get("image_size", ""), "image_size", where, int, optional=True)
        if size is not None and size < 1:
            raise AgosError(f"{where}: image_size must be positive")
        anchors.append(
            GpuAnchor(
                model=model,
                batch=batch,
                precision=precision,
                iter_ms=iter_ms,
                img_per_s=img_per_s,
                avg_power_w=power,
                joules_per_iter=joules,
                device=_text(row.get("device")) or default_device,
                source=source,
                torch=_text(row.get("torch")),
                cuda=_text(row.get("cuda")),
                steps=_number(row.get("steps", ""), "steps", where, int, optional=True),
                seconds=_number(row.get("seconds", ""), "seconds", where, optional=True),
                power_source=_text(row.get("power_source")),
                image_size=size if size is not None else image_size_for(model),
                image_size_note=None if size is not None else size_note,
            )
        )
    if not anchors:
        raise AgosError(f"{name}: a header but no rows")
    return anchors


def load_anchors(path: Path | str | None = None) -> list[GpuAnchor]:
    """The shipped H200 anchors (no path), or a CSV in the same format (e.g. from gpu-bench)."""
    if path is None:
        text = resources.files("agos.gpu").joinpath("data", SHIPPED_FILE).read_text(encoding="utf-8")
        return _parse(text.splitlines(), SHIPPED_FILE, SHIPPED_DEVICE, SHIPPED_SOURCE, None)
    path = Path(path)
    if not path.is_file():
        raise AgosError(f"GPU figures file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AgosError(f"cannot read GPU figures file {path}: {exc}") from None
    assumed = f"{path.name} has no image_size column: gpu-bench's size assumed (224 px, 299 for inception_v3)"
    return _parse(text.splitlines(), str(path), f"GPU of {path.name}", f"measured: {path}", assumed)


def anchor_for(
    model: str,
    precision: str = "fp32",
    batch: int | None = None,
    anchors: list[GpuAnchor] | None = None,
) -> GpuAnchor | None:
    """The row for `model` at `precision` (and `batch`, when given); None when there is none.
    Defaults to the shipped H200 anchors."""
    for anchor in load_anchors() if anchors is None else anchors:
        if anchor.model == model and anchor.precision == precision and batch in (None, anchor.batch):
            return anchor
    return None


def _fmt(value: float | int | None, digits: int) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def write_anchors(anchors: Iterable[GpuAnchor], path: Path | str) -> None:
    """Write rows in the anchors' format plus the provenance columns (atomically)."""
    with atomic_file(path, "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(REQUIRED_COLUMNS + EXTRA_COLUMNS)
        for a in anchors:
            writer.writerow(
                [
                    a.model,
                    a.batch,
                    a.precision,
                    _fmt(a.iter_ms, 3),
                    _fmt(a.img_per_s, 1),
                    _fmt(a.avg_power_w, 1),
                    _fmt(a.joules_per_iter, 4),
                    a.device,
                    a.torch or "",
                    a.cuda or "",
                    _fmt(a.steps, 0),
                    _fmt(a.seconds, 3),
                    a.power_source or "",
                    a.px,
                ]
            )
