"""`agos export --to timeloop`: one Timeloop problem per layer and pass, with the density of each
tensor taken from the masks — the workload format of Timeloop and Sparseloop (docs/export.md).

Every pass is written as Timeloop's convolution problem (`CNN_Layer`: dimensions C, M, R, S, N, P,
Q; coefficients Wstride, Hstride, Wdilation, Hdilation; data spaces Weights[C, M, R, S],
Inputs[N, C, R·Wdilation + P·Wstride, S·Hdilation + Q·Hstride], Outputs[N, M, Q, P]), with a G
dimension added to every data space for a grouped layer. R, P, W… are the width axis, S, Q, H…
the height axis. With agos's geometry (n, c, h, w → k, p, q; kernel r × s; stride, padding,
dilation; G groups; C_g = c/G, K_g = k/G):

| pass | Inputs | Weights | Outputs | N | C | M | R, S | P, Q | W/Hstride | W/Hdilation |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
| FWD | X, padded | W | Y | n | C_g | K_g | s, r | q, p | stride | dilation |
| BWD-D | dY, stride holes inserted, padded | W (flipped) | dX | n | K_g | C_g | s, r | w, h | 1 | dilation |
| BWD-W | X, padded (n ↔ c) | dY (n as channel) | dW | C_g | n | K_g | q, p | s, r | dilation | stride |

BWD-D is the transposed convolution: a stride-1 convolution of the flipped kernel over dY with
(stride − 1) zeros inserted between its entries and (kernel − 1)·dilation − padding zeros around.
BWD-W is the convolution of X with dY as its kernel: batch and channel trade places, the kernel
offset becomes the output and the layer's stride becomes the dilation. A Linear layer is the
1 × 1 case (N = its rows). A layer whose input needs no gradient runs no BWD-D and has no file.

Timeloop has no padding: its Inputs tensor is the window the problem reads, (extent − 1)·stride +
(kernel − 1)·dilation + 1 along each axis, and the density written for it is the fraction of
nonzeros of that window — padding and stride holes count as zeros, a row the window never reads
is not counted. Densities: Inputs and the BWD-W Weights from the masks of X and dY, the BWD-D
Outputs from the needed-dX mask, W from the trace's count of nonzero weights, Y and dW dense (agos
records no mask of them). Each is written as Sparseloop reads it, `{distribution: hypergeometric,
density: d}` (the tensor's nonzeros placed at random), with d chosen so that Sparseloop's
nonzero count ⌈d·size⌉ is exactly the masks' count.

Files written: `timeloop/NNN-LAYER-PASS.yaml` (the problem, a comment block saying what each data
space holds and its count), `accelforge/NNN-LAYER-PASS.yaml` (the same pass as an AccelForge
Einsum, `export.accelforge`) and `index.json` (every file's instance and tensor counts as data).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import yaml

from agos.capture.trace import LayerRecord, Trace
from agos.errors import AgosError
from agos.export import accelforge
from agos.export.folder import StagedFolder
from agos.workload.layer import LayerGeometry
from agos.workload.masks import LayerMasks
from agos.workload.passes import PASSES

INDEX = "index.json"
TIMELOOP = "timeloop"
ACCELFORGE = "accelforge"
VERSION = 0.4
DIMENSIONS = ["C", "M", "R", "S", "N", "P", "Q"]
COEFFICIENTS = ["Wstride", "Hstride", "Wdilation", "Hdilation"]
DATA_SPACES = ["Weights", "Inputs", "Outputs"]
DISTRIBUTIONS = ("fixed", "fixed-structured", "hypergeometric")
ROLES = {  # what each of Timeloop's data spaces holds, per pass
    "fwd": {"Inputs": "X", "Weights": "W", "Outputs": "Y"},
    "bwd_data": {"Inputs": "dY", "Weights": "W", "Outputs": "dX"},
    "bwd_weight": {"Inputs": "X", "Weights": "dY", "Outputs": "dW"},
}


def problem_shape(grouped: bool) -> dict:
    """Timeloop's convolution problem shape (with a G dimension when `grouped`)."""

    def g() -> list:  # a fresh list at each use: no YAML anchors in the file
        return [[["G"]]] if grouped else []

    return {
        "name": "CNN_Layer" + ("_grouped" if grouped else ""),
        "dimensions": (["G"] if grouped else []) + DIMENSIONS,
        "coefficients": [{"name": c, "default": 1} for c in COEFFICIENTS],
        "data_spaces": [
            {"name": "Weights", "projection": [*g(), [["C"]], [["M"]], [["R"]], [["S"]]]},
            {
                "name": "Inputs",
                "projection": [
                    [["N"]],
                    *g(),
                    [["C"]],
                    [["R", "Wdilation"], ["P", "Wstride"]],
                    [["S", "Hdilation"], ["Q", "Hstride"]],
                ],
            },
            {
                "name": "Outputs",
                "projection": [[["N"]], *g(), [["M"]], [["Q"]], [["P"]]],
                "read_write": True,
            },
        ],
    }


@dataclass(frozen=True)
class Axis:
    """Where entry i of a tensor axis lands in Timeloop's window of that axis: i·step + offset,
    kept when inside [0, extent)."""

    size: int
    step: int
    offset: int
    extent: int

    def kept(self) -> torch.Tensor:
        at = torch.arange(self.size) * self.step + self.offset
        return (at >= 0) & (at < self.extent)


def instance(g: LayerGeometry, pass_: str) -> dict[str, int]:
    """The problem's dimensions and coefficients for one pass (module docstring's table)."""
    (sh, sw), (dh, dw) = g.stride, g.dilation
    if pass_ == "fwd":
        dims = dict(C=g.c_per_group, M=g.k_per_group, R=g.s, S=g.r, N=g.n, P=g.q, Q=g.p)
        coef = dict(Wstride=sw, Hstride=sh, Wdilation=dw, Hdilation=dh)
    elif pass_ == "bwd_data":
        dims = dict(C=g.k_per_group, M=g.c_per_group, R=g.s, S=g.r, N=g.n, P=g.w, Q=g.h)
        coef = dict(Wstride=1, Hstride=1, Wdilation=dw, Hdilation=dh)
    elif pass_ == "bwd_weight":
        dims = dict(C=g.n, M=g.k_per_group, R=g.q, S=g.p, N=g.c_per_group, P=g.s, Q=g.r)
        coef = dict(Wstride=dw, Hstride=dh, Wdilation=sw, Hdilation=sh)
    else:
        raise AgosError(f"unknown pass '{pass_}' (expected one of {', '.join(PASSES)})")
    return ({"G": g.groups} if g.groups > 1 else {}) | dims | coef


def _extent(inst: dict[str, int], axis: str) -> int:
    """Timeloop's Inputs window along the width (R, P) or height (S, Q) axis."""
    k, o, dil, stride = (
        ("R", "P", "Wdilation", "Wstride") if axis == "w" else ("S", "Q", "Hdilation", "Hstride")
    )
    return (inst[k] - 1) * inst[dil] + (inst[o] - 1) * inst[stride] + 1


def input_axes(g: LayerGeometry, pass_: str) -> tuple[Axis, Axis]:
    """(height, width) placement of the Inputs tensor's entries in Timeloop's window: X shifted by
    the padding (FWD, BWD-W), or dY spread by the stride and shifted by (kernel − 1)·dilation −
    padding (BWD-D)."""
    inst = instance(g, pass_)
    eh, ew = _extent(inst, "h"), _extent(inst, "w")
    (ph, pw), (sh, sw), (dh, dw) = g.padding, g.stride, g.dilation
    if pass_ == "bwd_data":
        return (
            Axis(g.p, sh, (g.r - 1) * dh - ph, eh),
            Axis(g.q, sw, (g.s - 1) * dw - pw, ew),
        )
    return Axis(g.h, 1, ph, eh), Axis(g.w, 1, pw, ew)


@dataclass(frozen=True)
class TensorDensity:
    holds: str  # X, dY, dX, W, Y, dW
    nonzero: int
    size: int  # elements of Timeloop's tensor (the window, for Inputs)
    source: str  # where the count comes from

    @property
    def density(self) -> float:
        return sparseloop_density(self.nonzero, self.size)


def sparseloop_density(nonzero: int, size: int) -> float:
    """The largest float d with ⌈d·size⌉ = nonzero in floating point (Sparseloop's hypergeometric
    count), so the workload carries the masks' exact count."""
    if not 0 <= nonzero <= size or size < 1:
        raise AgosError(f"a tensor of {size} elements cannot hold {nonzero} nonzeros")
    d = nonzero / size
    while d > 0 and math.ceil(d * size) > nonzero:
        d = math.nextafter(d, 0.0)
    while d < 1 and math.ceil(d * size) < nonzero:
        d = math.nextafter(d, 1.0)
    return d


def _window_count(mask: torch.Tensor, axes: tuple[Axis, Axis]) -> int:
    h, w = (a.kept() for a in axes)
    return int(mask[:, :, h][:, :, :, w].sum())


def input_window(mask: torch.Tensor, axes: tuple[Axis, Axis]) -> torch.Tensor:
    """The Inputs tensor's nonzeros as Timeloop's window holds them, [N, C, height, width] (for
    checks: the export counts them without building the window)."""
    (ah, aw), (kh, kw) = axes, (a.kept() for a in axes)
    out = torch.zeros(mask.shape[0], mask.shape[1], ah.extent, aw.extent, dtype=torch.bool)
    at_h = (torch.arange(ah.size) * ah.step + ah.offset)[kh]
    at_w = (torch.arange(aw.size) * aw.step + aw.offset)[kw]
    out[:, :, at_h[:, None], at_w[None, :]] = mask[:, :, kh][:, :, :, kw]
    return out


def densities(layer: LayerRecord, masks: LayerMasks, pass_: str) -> dict[str, TensorDensity]:
    """Per data space: what it holds, its nonzeros and size in Timeloop's terms."""
    g = masks.geometry
    inst = instance(g, pass_)
    window = _extent(inst, "h") * _extent(inst, "w")
    axes = input_axes(g, pass_)
    weights = TensorDensity("W", layer.w_nonzero, layer.w_numel, "the trace's nonzero weights")
    if pass_ == "fwd":
        x = TensorDensity("X", _window_count(masks.x_nonzero, axes), g.n * g.c * window, masks.source)
        return {"Inputs": x, "Weights": weights, "Outputs": TensorDensity("Y", g.y_numel, g.y_numel, "dense")}
    if pass_ == "bwd_data":
        dy = TensorDensity("dY", _window_count(masks.dy_nonzero, axes), g.n * g.k * window, masks.source)
        source = "conservative: every dX needed (no mask recorded)" if masks.dx_all_needed else masks.source
        dx = TensorDensity("dX", masks.dx_count, g.x_numel, source)
        return {"Inputs": dy, "Weights": weights, "Outputs": dx}
    x = TensorDensity("X", _window_count(masks.x_nonzero, axes), g.n * g.c * window, masks.source)
    dy = TensorDensity("dY", masks.dy_count, g.y_numel, masks.source)
    return {"Inputs": x, "Weights": dy, "Outputs": TensorDensity("dW", g.w_numel, g.w_numel, "dense")}


def problem(g: LayerGeometry, pass_: str, tensors: dict[str, TensorDensity]) -> dict:
    inst = instance(g, pass_)
    inst["densities"] = {
        name: {"distribution": "hypergeometric", "density": tensors[name].density} for name in DATA_SPACES
    }
    return {"problem": {"version": VERSION, "shape": problem_shape(g.groups > 1), "instance": inst}}


def check_problem(doc: object) -> list[str]:
    """What Timeloop's parser (workload.cpp, problem-shape.cpp) and Sparseloop's density models
    would reject in a problem file, one line each: the shape's names, every projection term naming
    a dimension (or a dimension and a coefficient), every dimension bounded by a positive integer,
    no instance key it does not know, a density map for every data space with a known distribution
    and a density in [0, 1]."""
    bad: list[str] = []
    if not isinstance(doc, dict) or set(doc) != {"problem"} or not isinstance(doc["problem"], dict):
        return ["the file must hold one mapping, `problem`"]
    prob = doc["problem"]
    if set(prob) - {"version", "shape", "instance"}:
        bad.append(f"unknown problem keys {sorted(set(prob) - {'version', 'shape', 'instance'})}")
    shape, inst = prob.get("shape"), prob.get("instance")
    if not isinstance(shape, dict) or not isinstance(inst, dict):
        return [*bad, "problem needs a `shape` and an `instance` mapping"]
    dims = shape.get("dimensions")
    if not isinstance(dims, list) or not dims or not all(isinstance(d, str) for d in dims):
        return [*bad, "shape.dimensions must be a list of names"]
    coefs = shape.get("coefficients", [])
    if not isinstance(coefs, list) or not all(
        isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("default"), int)
        for c in coefs
    ):
        return [*bad, "shape.coefficients must be a list of {name, default}"]
    coef_names = [c["name"] for c in coefs]
    if len(set(dims + coef_names)) != len(dims) + len(coef_names):
        bad.append("shape: a dimension or coefficient is named twice")
    spaces = shape.get("data_spaces")
    if not isinstance(spaces, list) or not spaces:
        return [*bad, "shape.data_spaces must be a non-empty list"]
    names = []
    for space in spaces:
        if not isinstance(space, dict) or not isinstance(space.get("name"), str):
            bad.append("every data space needs a name")
            continue
        names.append(space["name"])
        if set(space) - {"name", "projection", "read_write"}:
            bad.append(
                f"data space {space['name']}: unknown keys "
                f"{sorted(set(space) - {'name', 'projection', 'read_write'})}"
            )
        projection = space.get("projection")
        if not isinstance(projection, list) or not projection:
            bad.append(f"data space {space['name']}: projection must be a non-empty list")
            continue
        for rank in projection:
            terms = rank if isinstance(rank, list) and rank else None
            for term in terms or [None]:
                ok = isinstance(term, list) and 1 <= len(term) <= 2 and term[0] in dims
                ok = ok and (len(term) == 1 or term[1] in coef_names)
                if not ok:
                    bad.append(
                        f"data space {space['name']}: projection term {term!r} is not [DIM] or "
                        "[DIM, COEFFICIENT]"
                    )
    if sum(bool(s.get("read_write")) for s in spaces if isinstance(s, dict)) != 1:
        bad.append("exactly one data space (the output) must be read_write")
    for d in dims:
        v = inst.get(d)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            bad.append(f"instance.{d} must be a positive integer, got {v!r}")
    for c in coef_names:
        v = inst.get(c, 1)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            bad.append(f"instance.{c} must be a positive integer, got {v!r}")
    extra = set(inst) - set(dims) - set(coef_names) - {"densities"}
    if extra:
        bad.append(f"instance has keys Timeloop does not know: {sorted(extra)}")
    dens = inst.get("densities")
    if dens is not None:
        if not isinstance(dens, dict) or set(dens) != set(names):
            bad.append(f"instance.densities must give every data space ({', '.join(names)})")
        else:
            for name, spec in dens.items():
                ok = isinstance(spec, dict) and spec.get("distribution") in DISTRIBUTIONS
                d = spec.get("density") if isinstance(spec, dict) else None
                ok = ok and isinstance(d, float | int) and not isinstance(d, bool) and 0 <= d <= 1
                if not ok:
                    bad.append(
                        f"instance.densities.{name} must be {{distribution: one of {DISTRIBUTIONS}, "
                        f"density in [0, 1]}}, got {spec!r}"
                    )
    return bad


def _file_name(i: int, layer: str, pass_: str) -> str:
    return f"{i:03d}-{re.sub(r'[^A-Za-z0-9._#-]', '_', layer)}-{pass_}.yaml"


def _header(layer: str, pass_: str, g: LayerGeometry, tensors: dict[str, TensorDensity], label: str) -> str:
    what = {
        "fwd": "FWD: Y = X * W",
        "bwd_data": "BWD-D: dX = dY *T W (transposed conv)",
        "bwd_weight": "BWD-W: dW = X * dY",
    }[pass_]
    lines = [
        f"agos export --to timeloop: layer {layer}, {what}",
        f"from: {label}",
        f"layer: {g.kind} {g.c}->{g.k}, kernel {g.r}x{g.s}, stride {list(g.stride)}, "
        f"padding {list(g.padding)}, dilation {list(g.dilation)}, groups {g.groups}, "
        f"{g.h}x{g.w} -> {g.p}x{g.q}, batch {g.n}",
    ]
    for name in DATA_SPACES:
        t = tensors[name]
        lines.append(f"{name} holds {t.holds}: {t.nonzero} of {t.size} nonzero ({t.source})")
    return "".join(f"# {line}\n" for line in lines)


def workloads(
    trace: Trace, masks: Iterable[LayerMasks]
) -> Iterator[tuple[str, str, LayerRecord, dict, dict]]:
    """(file name, pass, layer, problem document, tensors) for every pass of every layer."""
    i = 0
    for layer, m in zip(trace.layers, masks, strict=True):
        if layer.name != m.name:
            raise AgosError(f"masks of {m.name} arrived for layer {layer.name}")
        for pass_ in PASSES:
            if pass_ == "bwd_data" and not layer.needs_bwd_data:
                continue
            tensors = densities(layer, m, pass_)
            doc = problem(m.geometry, pass_, tensors)
            yield _file_name(i, layer.name, pass_), pass_, layer, doc, tensors
            i += 1


def export(
    trace: Trace, masks: Iterable[LayerMasks], folder: StagedFolder, label: str
) -> tuple[dict, list[str]]:
    """Write one Timeloop problem (timeloop/) and one AccelForge workload (accelforge/) per layer
    pass, and `index.json`, into `folder`."""
    index = []
    for name, pass_, layer, doc, tensors in workloads(trace, masks):
        problems = check_problem(doc)
        if problems:  # agos's own file: a bug, said plainly
            raise AgosError(
                f"internal error: the Timeloop problem of {layer.name} {pass_} is malformed: {problems[0]}"
            )
        header = _header(layer.name, pass_, layer.geometry, tensors, label)
        text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=110)
        folder.write_text(f"{TIMELOOP}/{name}", header + text)
        forge = accelforge.workload(layer.name, layer.geometry, pass_)
        note = (
            "# the same pass as an AccelForge Einsum: valid taps only, no density field (the densities\n"
            f"# above are those of the Timeloop problem ../{TIMELOOP}/{name})\n"
        )
        text = yaml.safe_dump(forge, sort_keys=False, default_flow_style=None, width=110)
        folder.write_text(f"{ACCELFORGE}/{name}", header + note + text)
        index.append(
            {
                "file": name,
                "timeloop": f"{TIMELOOP}/{name}",
                "accelforge": f"{ACCELFORGE}/{name}",
                "accelforge_einsum": forge["workload"]["einsums"][0]["name"],
                "agos_macs_per_group": layer.geometry.macs // layer.geometry.groups,
                "layer": layer.name,
                "pass": pass_,
                "instance": {k: v for k, v in doc["problem"]["instance"].items() if k != "densities"},
                "tensors": {
                    space: {
                        "holds": t.holds,
                        "nonzero": t.nonzero,
                        "size": t.size,
                        "density": t.density,
                        "source": t.source,
                    }
                    for space, t in tensors.items()
                },
            }
        )
    if not index:
        raise AgosError(f"trace {trace.path} has no conv or linear layers to export")
    folder.write_text(INDEX, json.dumps(index, indent=1) + "\n")
    notes = []
    no_bwd_data = [layer.name for layer in trace.layers if not layer.needs_bwd_data]
    if no_bwd_data:
        notes.append(
            f"{len(no_bwd_data)} layer(s) run no BWD-D (their input needs no gradient): "
            + ", ".join(no_bwd_data)
        )
    conservative = sorted(
        {
            e["layer"]
            for e in index
            if e["pass"] == "bwd_data" and e["tensors"]["Outputs"]["source"].startswith("conservative")
        }
    )
    if conservative:
        notes.append(
            f"{len(conservative)} layer(s) have no needed-dX mask; their BWD-D Outputs are dense "
            f"(conservative): {', '.join(conservative)}"
        )
    return {"problems": len(index), "timeloop_problem_version": VERSION}, notes
