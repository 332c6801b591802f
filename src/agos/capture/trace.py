"""The trace store: a directory with `manifest.json` (provenance, geometry, mask index) and
`masks.bin` (bit-packed masks, identical masks stored once). Written atomically; validated on load.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from agos import __version__
from agos.capture.recorder import CaptureResult
from agos.errors import AgosError
from agos.fileio import atomic_dir
from agos.inputs.provenance import Provenance
from agos.progress import progress_status
from agos.workload.bits import PackedMask, packed_nbytes
from agos.workload.layer import LayerGeometry

FORMAT = "agos-trace"
SCHEMA_VERSION = 3  # 2: manifest_sha256 covers the whole manifest; 3: typed provenance
MANIFEST = "manifest.json"
MASKS = "masks.bin"
MASK_NAMES = ("x_nonzero", "dy_nonzero", "dx_needed")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MaskRef(_Strict):
    offset: int
    nbytes: int
    shape: list[int]
    count: int

    @model_validator(mode="after")
    def _sizes(self) -> MaskRef:
        numel = int(np.prod(self.shape)) if self.shape else 1
        if self.offset < 0 or self.nbytes != packed_nbytes(numel):
            raise ValueError(f"{self.nbytes} bytes cannot hold a mask of shape {self.shape}")
        if not 0 <= self.count <= numel:
            raise ValueError(f"count {self.count} outside [0, {numel}]")
        return self

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape))


class Correlation(_Strict):
    act_zero_dy_zero: int
    act_zero_dy_nonzero: int
    act_nonzero_dy_zero: int
    act_nonzero_dy_nonzero: int


class LayerRecord(_Strict):
    name: str
    geometry: LayerGeometry
    macs: int
    x_producer: str
    y_consumer: str
    needs_bwd_data: bool
    x_nonzero: MaskRef
    dy_nonzero: MaskRef | None
    dx_needed: MaskRef | None
    dx_reason: str | None
    w_nonzero: int
    w_numel: int
    correlation: Correlation | None = None
    x_acts: list[str] = []  # graph names of the ReLU-like ops whose outputs reach X
    y_act: str | None = None  # the ReLU-like op that Y reaches through BN/add only

    @model_validator(mode="after")
    def _consistent(self) -> LayerRecord:
        g = self.geometry
        x_numel, y_numel = g.x_numel, g.y_numel
        for label, ref, numel in (
            ("x_nonzero", self.x_nonzero, x_numel),
            ("dx_needed", self.dx_needed, x_numel),
            ("dy_nonzero", self.dy_nonzero, y_numel),
        ):
            if ref is not None and ref.numel != numel:
                raise ValueError(f"{label} has {ref.numel} elements, the geometry says {numel}")
        if self.dx_needed is None and not self.dx_reason:
            raise ValueError("a layer without a dX mask must say why")
        if self.macs != g.macs:
            raise ValueError(f"macs {self.macs} disagree with the geometry ({g.macs})")
        return self

    @property
    def kind(self) -> str:
        return self.geometry.kind


class ActivationRecord(_Strict):
    name: str
    op: str
    shape: list[int]
    clamped: int


class VectorOpRecord(_Strict):
    name: str
    op: str
    kind: str
    out_numel: int
    in_numel: int


class Manifest(_Strict):
    format: Literal["agos-trace"]
    schema_version: int
    agos_version: str
    created: str
    provenance: Provenance  # model, its code, weights, data, batch, image size, seed, warm-up, device
    loss: float
    graph: str
    skipped_layers: list[str]
    masks_bytes: int
    masks_sha256: str
    manifest_sha256: str = ""  # of every other field (`manifest_digest`): geometry, counts, provenance
    mask_elements: int  # total elements over all mask references (before deduplication)
    layers: list[LayerRecord]
    activations: list[ActivationRecord] = []  # every ReLU-like op of the forward pass, in order
    # non-convolution work of the step (agos.cost.vector); absent in traces of agos < 0.2
    vector_ops: list[VectorOpRecord] | None = None
    vector_note: str | None = None
    parameters: int | None = None
    logits_numel: int | None = None
    notes: list[str] = []  # what this trace leaves out (unmodelled layers, untraced graph), one line each


class Trace:
    """A loaded, validated trace; masks are read lazily from a memory map."""

    def __init__(self, path: Path, manifest: Manifest, blob: np.ndarray):
        self.path = path
        self.manifest = manifest
        self._blob = blob

    @property
    def layers(self) -> list[LayerRecord]:
        return self.manifest.layers

    @property
    def provenance(self) -> Provenance:
        return self.manifest.provenance

    def layer(self, name: str) -> LayerRecord:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def mask(self, layer: LayerRecord, which: str) -> PackedMask | None:
        ref: MaskRef | None = getattr(layer, which)
        if ref is None:
            return None
        bits = np.asarray(self._blob[ref.offset : ref.offset + ref.nbytes])
        return PackedMask(shape=tuple(ref.shape), bits=bits, count=ref.count)


# -- writing ----------------------------------------------------------------------------------


def manifest_digest(manifest: Manifest) -> str:
    """SHA-256 of the manifest's canonical JSON without its own digest: an edited count, geometry or
    provenance line is caught, not only damaged masks."""
    body = manifest.model_dump(mode="json", exclude={"manifest_sha256"})
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _fsync_write(path: Path, data: bytes | None = None, chunks=None) -> None:
    with open(path, "wb") as f:
        if data is not None:
            f.write(data)
        for chunk in chunks or ():
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


def _is_trace_dir(path: Path) -> bool:
    try:
        return json.loads((path / MANIFEST).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def write_trace(
    out: Path, result: CaptureResult, provenance: Provenance, created: str | None = None
) -> Manifest:
    """Write atomically (`fileio.atomic_dir`): a reader never sees half a trace."""
    out = Path(out)
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or _is_trace_dir(out))):
        raise AgosError(f"{out} exists and is not an agos trace; choose another --out")

    blobs: list[np.ndarray] = []
    index: dict[bytes, int] = {}
    offset = 0
    mask_elements = 0

    def ref(mask: PackedMask | None) -> dict | None:
        nonlocal offset, mask_elements
        if mask is None:
            return None
        mask_elements += mask.numel
        key = hashlib.blake2b(mask.bits.tobytes(), digest_size=20).digest() + str(mask.shape).encode()
        if key not in index:
            index[key] = offset
            blobs.append(mask.bits)
            offset += mask.bits.nbytes
        return {
            "offset": index[key],
            "nbytes": int(mask.bits.nbytes),
            "shape": list(mask.shape),
            "count": mask.count,
        }

    records = []
    for layer in result.layers:
        records.append(
            {
                "name": layer.name,
                "geometry": layer.geometry,
                "macs": layer.geometry.macs,
                "x_producer": layer.x_producer,
                "y_consumer": layer.y_consumer,
                "needs_bwd_data": layer.needs_bwd_data,
                "x_nonzero": ref(layer.x_nonzero),
                "dy_nonzero": ref(layer.dy_nonzero),
                "dx_needed": ref(layer.dx_needed),
                "dx_reason": layer.dx_reason,
                "w_nonzero": layer.w_nonzero,
                "w_numel": layer.w_numel,
                "correlation": layer.correlation,
                "x_acts": layer.x_acts,
                "y_act": layer.y_act,
            }
        )
    digest = hashlib.sha256()
    for b in blobs:
        digest.update(memoryview(b))
    manifest = Manifest(
        format=FORMAT,
        schema_version=SCHEMA_VERSION,
        agos_version=__version__,
        created=created or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        provenance=provenance,
        loss=result.loss,
        graph=result.graph,
        skipped_layers=result.skipped,
        masks_bytes=offset,
        masks_sha256=digest.hexdigest(),
        mask_elements=mask_elements,
        layers=records,
        activations=[asdict(a) for a in result.activations],
        vector_ops=[asdict(v) for v in result.vector_ops],
        vector_note=result.vector_note,
        parameters=result.parameters,
        logits_numel=result.logits_numel,
        notes=list(getattr(result, "notes", [])),
    )
    manifest = manifest.model_copy(update={"manifest_sha256": manifest_digest(manifest)})
    try:
        with atomic_dir(out, replace=True, what="the trace") as tmp:
            _fsync_write(tmp / MASKS, chunks=(memoryview(b) for b in blobs))
            _fsync_write(tmp / MANIFEST, manifest.model_dump_json(indent=1).encode())
    except OSError as exc:  # a full disk while writing: one line (the swap's own failure is one already)
        raise AgosError(f"cannot write the trace {out}: {exc.strerror or exc}") from None
    return manifest


# -- reading ----------------------------------------------------------------------------------


def load_trace(path: Path | str, verify: bool = True) -> Trace:
    """Load and validate; every problem becomes one AgosError line naming the file."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not path.is_dir():
        raise AgosError(f"trace {path} does not exist or is not a directory")
    if not manifest_path.is_file():
        raise AgosError(f"{path} is not an agos trace (no {MANIFEST})")
    try:
        raw = json.loads(manifest_path.read_text())
    except (UnicodeDecodeError, ValueError) as exc:
        raise AgosError(f"{manifest_path} is not valid JSON (truncated or corrupt): {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise AgosError(f"{manifest_path} is not an agos trace manifest")
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise AgosError(
            f"{manifest_path} has schema version {raw.get('schema_version')}; this agos reads "
            f"version {SCHEMA_VERSION}: capture the trace again"
        )
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise AgosError(f"{manifest_path} is invalid at {where}: {first['msg']}") from None
    if verify and manifest.manifest_sha256 != manifest_digest(manifest):
        raise AgosError(f"{manifest_path} does not match its checksum (edited or corrupt)")
    masks_path = path / MASKS
    if not masks_path.is_file():
        raise AgosError(f"trace {path} has no {MASKS}")
    size = masks_path.stat().st_size
    if size != manifest.masks_bytes:
        raise AgosError(
            f"{masks_path} has {size} bytes, the manifest says {manifest.masks_bytes} (truncated or corrupt)"
        )
    for layer in manifest.layers:
        for which in MASK_NAMES:
            ref = getattr(layer, which)
            if ref is not None and ref.offset + ref.nbytes > size:
                raise AgosError(f"{masks_path}: mask {which} of {layer.name} lies beyond the end of the file")
    blob = np.memmap(masks_path, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
    if verify:
        digest = hashlib.sha256()
        step = 1 << 26
        with (
            progress_status(f"checking {masks_path} ({size / 2**20:.0f} MiB)")
            if size > 4 * step
            else nullcontext()
        ):
            for start in range(0, size, step):
                digest.update(memoryview(np.ascontiguousarray(blob[start : start + step])))
        if digest.hexdigest() != manifest.masks_sha256:
            raise AgosError(f"{masks_path} does not match its checksum (corrupt)")
    return Trace(path, manifest, blob)
