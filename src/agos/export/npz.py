"""`agos export --to npz`: the masks themselves, bit-packed, with a tiny reader (docs/export.md).

`masks.npz` (NumPy's zip of arrays, read lazily by `np.load`) holds, for every layer of the trace
and each of its three masks — `x_nonzero` (X ≠ 0, shape [N, C, H, W]), `dy_nonzero` (dY ≠ 0,
[N, K, P, Q]) and `dx_needed` (the dX entries training needs, [N, C, H, W]) — two arrays:

- `LAYER/MASK`: uint8, the mask in C order packed 8 elements a byte, most significant bit first
  (`np.packbits`), the last byte padded with zero bits;
- `LAYER/MASK.shape`: int64, its shape.

A Linear layer's masks are [rows, features, 1, 1]. `layers.json` lists the layers in trace order
with their geometry, whether the layer runs a BWD-D, whether its dX mask is the conservative
all-needed one (no mask recorded) and each mask's count of true elements; `provenance.json` says
where the masks came from (the trace, or a statistical density source applied to it).

Reading one mask needs only NumPy:

    z = np.load("masks.npz")
    bits, shape = z["layer1.0.conv1/x_nonzero"], z["layer1.0.conv1/x_nonzero.shape"]
    mask = np.unpackbits(bits, count=int(np.prod(shape))).astype(bool).reshape(shape)

which is what `load_masks(path, layer)` does for the three masks of a layer.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from agos.capture.trace import Trace
from agos.errors import AgosError
from agos.export.folder import StagedFolder
from agos.workload.masks import LayerMasks

MASKS = "masks.npz"
LAYERS = "layers.json"
MASK_NAMES = ("x_nonzero", "dy_nonzero", "dx_needed")


def load_masks(path: str | Path, layer: str) -> dict[str, np.ndarray]:
    """The three masks of `layer` (bool arrays: x_nonzero, dy_nonzero, dx_needed) from an export
    folder or its masks.npz, unpacked on demand."""
    path = Path(path)
    file = path / MASKS if path.is_dir() else path
    try:
        with np.load(file, allow_pickle=False) as z:
            if f"{layer}/x_nonzero" not in z.files:
                known = sorted({k.rsplit("/", 1)[0] for k in z.files})
                more = "…" if len(known) > 8 else ""
                raise AgosError(f"no layer {layer!r} in {file} (it has {', '.join(known[:8])}{more})")
            out = {}
            for name in MASK_NAMES:
                shape = tuple(int(v) for v in z[f"{layer}/{name}.shape"])
                bits = z[f"{layer}/{name}"]
                out[name] = np.unpackbits(bits, count=int(np.prod(shape))).astype(bool).reshape(shape)
            return out
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise AgosError(f"cannot read {file}: {exc}") from None


def _packed(mask) -> tuple[np.ndarray, np.ndarray]:
    arr = np.ascontiguousarray(mask.detach().cpu().numpy() if hasattr(mask, "detach") else mask, dtype=bool)
    return np.packbits(arr.reshape(-1)), np.asarray(arr.shape, dtype=np.int64)


def export(trace: Trace, masks: Iterable[LayerMasks], folder: StagedFolder) -> tuple[dict, list[str]]:
    """Write masks.npz and layers.json into `folder`."""
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for record, m in zip(trace.layers, masks, strict=True):
        if record.name != m.name:
            raise AgosError(f"masks of {m.name} arrived for layer {record.name}")
        counts = {}
        for name in MASK_NAMES:
            bits, shape = _packed(getattr(m, name))
            arrays[f"{m.name}/{name}"] = bits
            arrays[f"{m.name}/{name}.shape"] = shape
            counts[name] = int(np.bitwise_count(bits).sum(dtype=np.int64))
        layers.append(
            {
                "layer": m.name,
                "geometry": m.geometry.to_dict(),
                "needs_bwd_data": m.needs_bwd_data,
                "dx_all_needed": m.dx_all_needed,
                "dx_reason": record.dx_reason,
                "true_counts": counts,
                "source": m.source,
            }
        )
    if not layers:
        raise AgosError(f"trace {trace.path} has no conv or linear layers to export")
    with open(folder.path(MASKS), "wb") as f:
        np.savez_compressed(f, **arrays)
    folder.write_text(LAYERS, json.dumps(layers, indent=1) + "\n")
    notes = []
    conservative = [entry["layer"] for entry in layers if entry["dx_all_needed"] and entry["needs_bwd_data"]]
    if conservative:
        notes.append(
            f"{len(conservative)} layer(s) have no needed-dX mask; their dx_needed is all true "
            "(conservative): " + ", ".join(conservative)
        )
    return {"layers": len(layers), "masks_file": MASKS, "bit_order": "big (np.packbits)"}, notes
