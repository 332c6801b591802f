"""agos's dense `systolic` against ZigZag 3.9.1 on a few resnet18 convs (issue 10, item 4).

ZigZag (KU Leuven's analytical DSE framework) is given a hardware description as close to agos's
`systolic` organisation as it allows: 32×32 MACs (bf16 × bf16 → fp32 accumulated in a one-output
register per MAC: output stationary, spatial mapping D1 = K 32 output channels, D2 = 8 images × 4
output columns = 32 positions), a 2 MiB global buffer holding I, W and O with 256 B/cycle of
reads (split between two read ports — rows' inputs and columns' weights enter from separate edges
in a systolic array; one shared port makes ZigZag serialise the two operands) and 256 B/cycle of
writes, and DRAM at 256 B/cycle. Access energies are agos's own table (horowitz45: 2.0 pJ a bf16
MAC, 12.5 pJ/B buffer, 243.75 pJ/B DRAM; the accumulator register is free, as in agos), so energy
differences come from the access counts, not the prices (ZigZag prices an access of a port's full
width, bandwidth_max bits, so each memory's r_cost/w_cost is agos's per-byte price × that width).
ZigZag searches its temporal mapping (LOMA, optimising latency) and charges the pipeline fill/drain
once per layer (data on/offloading); agos pays T + R + C − 2 per fold. agos's dynamic energy excludes
its static energy (ZigZag has none).

    .venv/bin/pip install -e '.[validate]'
    .venv/bin/python benchmarks/zigzag.py [--trace DIR] [--image-size 224 --batch-size 8]
        [--layers conv1 layer1.0.conv1 layer2.0.conv1 layer2.0.downsample.0]
        [--out benchmarks/results/zigzag.json]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "zigzag.json"
# this file's name is ZigZag's package name: keep its folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

VERSION = "3.9.1"
INSTALL = "pip install -e '.[validate]'  (zigzag-dse==3.9.1 and six, which it imports undeclared)"
LAYERS = ["conv1", "layer1.0.conv1", "layer2.0.conv1", "layer2.0.downsample.0"]
SPATIAL_B, SPATIAL_OX = 8, 4  # D2 = 8 images × 4 output columns


def _memory(name, size_bits, operands, ports, served, r_pj, w_pj) -> str:
    lines = [
        f"  {name}:",
        f"    size: {size_bits}",
        f"    r_cost: {r_pj}",
        f"    w_cost: {w_pj}",
        "    area: 0",
        "    latency: 1",
        f"    operands: [{', '.join(operands)}]",
        "    ports:",
    ]
    for pname, kind, bw_min, bw_max, alloc in ports:
        lines += [
            f"      - name: {pname}",
            f"        type: {kind}",
            f"        bandwidth_min: {bw_min}",
            f"        bandwidth_max: {bw_max}",
            "        allocation:",
            *[f"          - {a}" for a in alloc],
        ]
    lines.append(f"    served_dimensions: [{', '.join(served)}]")
    return "\n".join(lines)


def hardware_yaml(loaded) -> str:
    """The ZigZag accelerator closest to agos's `systolic` organisation (module docstring)."""
    a = loaded.arch
    o = a.organisation
    e = loaded.energy
    bw_bits = o.memory.buffer_banks * o.memory.bank_width_bytes * 8
    dram_bits = int(o.dram_bytes_per_cycle * 8)
    word = 64  # smallest access (bits); ZigZag counts accesses in words of a port's bandwidth_max
    acc_bits = 8 * o.precision.accumulate_bytes
    acc_ports = [
        (f"{kind[0]}_port_{i}", kind, acc_bits, acc_bits, [f"O, {d}"])
        for kind, i, d in [("read", 1, "tl"), ("read", 2, "th"), ("write", 1, "fh"), ("write", 2, "fl")]
    ]
    acc = _memory("rf_acc", acc_bits, ["O"], acc_ports, [], 0, 0)
    gb = _memory(
        "global_buffer", 8 * o.memory.global_buffer_bytes, ["I1", "I2", "O"],
        [("r_port_1", "read", word, bw_bits // 2, ["I1, tl", "O, tl", "O, th"]),
         ("r_port_2", "read", word, bw_bits // 2, ["I2, tl"]),
         ("w_port_1", "write", word, bw_bits, ["I1, fh", "I2, fh", "O, fh", "O, fl"])],
        ["D1", "D2"], e.buffer_read_per_byte * bw_bits // 2 / 8, e.buffer_write_per_byte * bw_bits / 8,
    )  # fmt: skip
    dram = _memory(
        "dram", 10**12, ["I1", "I2", "O"],
        [("rw_port_1", "read_write", word, dram_bits,
          ["I1, fh", "I1, tl", "I2, fh", "I2, tl", "O, fh", "O, tl", "O, fl", "O, th"])],
        ["D1", "D2"], e.dram_per_byte * dram_bits / 8, e.dram_per_byte * dram_bits / 8,
    )  # fmt: skip
    mac = e.mac_pj(a.precision.multiply, a.precision.accumulate)
    return (
        f"name: agos_{o.name}\nmemories:\n{acc}\n{gb}\n{dram}\noperational_array:\n"
        f"  unit_energy: {mac}\n  unit_area: 1\n  dimensions: [D1, D2]\n"
        f"  sizes: [{o.pe_array.rows}, {o.pe_array.cols}]\n"
    )


MAPPING = f"""- name: default
  spatial_mapping:
    D1:
      - K, 32
    D2:
      - B, {SPATIAL_B}
      - OX, {SPATIAL_OX}
  memory_operand_links:
    O: O
    W: I2
    I: I1
"""


def workload_yaml(g, name: str) -> str:
    sh, sw = g.stride
    dh, dw = g.dilation
    ph, pw = g.padding
    after_h = (g.p - 1) * sh + (g.r - 1) * dh + 1 - g.h - ph
    after_w = (g.q - 1) * sw + (g.s - 1) * dw + 1 - g.w - pw
    return f"""- id: 0
  name: {name}
  operator_type: Conv
  equation: O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]
  dimension_relations: [ix={sw}*ox+{dw}*fx, iy={sh}*oy+{dh}*fy]
  loop_dims: [B, K, C, OY, OX, FY, FX]
  loop_sizes: [{g.n}, {g.k}, {g.c}, {g.p}, {g.q}, {g.r}, {g.s}]
  operand_precision: {{W: 16, I: 16, O: 32, O_final: 16}}
  operand_source: {{I: 0}}
  pr_loop_dims: [IX, IY]
  pr_loop_sizes: [{g.w}, {g.h}]
  padding: [[{pw}, {max(0, after_w)}], [{ph}, {max(0, after_h)}]]
"""


def run_zigzag(g, name: str, hardware: str, tmp: Path) -> dict:
    from zigzag.api import get_hardware_performance_zigzag
    from zigzag.cost_model.cost_model import CostModelEvaluation

    d = tmp / name.replace(".", "_")
    d.mkdir()
    (d / "hw.yaml").write_text(hardware, encoding="utf-8")
    (d / "map.yaml").write_text(MAPPING, encoding="utf-8")
    (d / "wl.yaml").write_text(workload_yaml(g, name), encoding="utf-8")
    logging.disable(logging.CRITICAL)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            energy, latency, cmes = get_hardware_performance_zigzag(
                str(d / "wl.yaml"), str(d / "hw.yaml"), str(d / "map.yaml"),
                opt="latency", dump_folder=str(d / "out"), loma_show_progress_bar=False,
            )  # fmt: skip
    finally:
        logging.disable(logging.NOTSET)

    def layer_cmes(x) -> list:
        if isinstance(x, CostModelEvaluation):
            return [x]
        if isinstance(x, list | tuple):
            return [c for y in x for c in layer_cmes(y)]
        return []

    (cme,) = layer_cmes(cmes)
    return {
        "latency_cycles": float(cme.latency_total2),
        "ideal_cycles": float(cme.ideal_cycle),
        "ideal_temporal_cycles": float(cme.ideal_temporal_cycle),
        "stall_cycles": float(cme.stall_slack_comb),
        "onloading_cycles": float(cme.data_onloading_cycle),
        "offloading_cycles": float(cme.data_offloading_cycle),
        "mac_spatial_utilization": float(cme.mac_spatial_utilization),
        "spatial_mapping": str(cme.spatial_mapping_dict_int),
        "temporal_mapping": str(cme.temporal_mapping),
        "energy_pj": float(cme.energy_total),
        "mac_energy_pj": float(cme.mac_energy),
        "memory_energy_pj": float(cme.mem_energy),
        "memory_energy_breakdown_pj": {
            str(k): [float(x) for x in v] for k, v in cme.mem_energy_breakdown.items()
        },
        "api_energy_pj": float(energy),
        "api_latency_cycles": float(latency),
    }


def agos_side(masks, loaded) -> dict:
    from agos.cost.model import LayerContext, layer_area, simulate_pass
    from agos.validate.gemm import compute_cycles
    from agos.workload.counts import layer_work

    cost = simulate_pass("fwd", LayerContext(masks, layer_work(masks)), loaded, layer_area(loaded))
    static = cost.energy_breakdown["static"]
    return {
        "latency_cycles": cost.cycles,
        "compute_cycles": compute_cycles(cost),
        "components": cost.components,
        "mac_bound": cost.mac_bound,
        "energy_pj": cost.energy_pj,
        "dynamic_energy_pj": cost.energy_pj - static,
        "energy_breakdown_pj": cost.energy_breakdown,
        "macs": cost.dense_macs,
        "dram_bytes": cost.dram_bytes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trace", type=Path, help="reuse this trace (resnet18)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", nargs="+", default=LAYERS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    try:
        from importlib import metadata

        import zigzag  # noqa: F401

        found = metadata.version("zigzag-dse")
    except ImportError as exc:
        print(f"error: ZigZag cannot be imported ({exc}): {INSTALL}", file=sys.stderr)
        return 2
    if found != VERSION:
        print(
            f"error: zigzag-dse {found} is installed; this compares with {VERSION}: {INSTALL}",
            file=sys.stderr,
        )
        return 2

    from agos.api import trace as capture_trace
    from agos.arch.load import load_arch
    from agos.capture.trace import load_trace
    from agos.cost.network import MaskSource
    from agos.errors import AgosError
    from agos.fileio import atomic_file
    from agos.inputs.options import RunOptions
    from agos.validate.gemm import DESIGN

    loaded = load_arch(DESIGN)
    hardware = hardware_yaml(loaded)
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="agos-zigzag-") as tmp:
            trace_dir = args.trace
            if trace_dir is None:
                trace_dir = Path(tmp) / "trace"
                options = RunOptions(
                    model="resnet18", batch_size=args.batch_size, image_size=args.image_size, seed=args.seed,
                    device="cpu",
                )  # fmt: skip
                capture_trace(options, trace_dir)
            prov = load_trace(trace_dir).provenance
            wanted = set(args.layers)
            found_layers = {}
            for _, masks in MaskSource(str(trace_dir)).layers():
                if masks.name in wanted:
                    found_layers[masks.name] = masks
            missing = [n for n in args.layers if n not in found_layers]
            if missing:
                raise AgosError(f"layers not in the trace: {', '.join(missing)}")
            for name in args.layers:
                masks = found_layers[name]
                g = masks.geometry
                if g.kind != "conv" or g.groups != 1 or g.n % SPATIAL_B or g.q % SPATIAL_OX:
                    raise AgosError(
                        f"layer {name}: the ZigZag mapping needs an ungrouped conv with batch a multiple of "
                        f"{SPATIAL_B} and output width a multiple of {SPATIAL_OX}"
                    )
                t = time.perf_counter()
                zz = run_zigzag(g, name, hardware, Path(tmp))
                seconds = time.perf_counter() - t
                ours = agos_side(masks, loaded)
                rows.append(
                    {
                        "layer": name,
                        "pass": "fwd",
                        "geometry": g.to_dict(),
                        "agos": ours,
                        "zigzag": zz,
                        "zigzag_seconds": seconds,
                        "latency_ratio_agos_over_zigzag": ours["latency_cycles"] / zz["latency_cycles"],
                        "dynamic_energy_ratio_agos_over_zigzag": ours["dynamic_energy_pj"] / zz["energy_pj"],
                    }
                )
                r = rows[-1]
                lat, en = r["latency_ratio_agos_over_zigzag"], r["dynamic_energy_ratio_agos_over_zigzag"]
                print(
                    f"{name:24} agos {ours['latency_cycles']:10d} cyc (compute {ours['compute_cycles']:10d})"
                    f"  ZigZag {zz['latency_cycles']:12.0f} cyc  ratio {lat:.3f}   energy agos "
                    f"{ours['dynamic_energy_pj'] / 1e6:9.2f} µJ  ZigZag {zz['energy_pj'] / 1e6:9.2f} µJ"
                    f"  ratio {en:.3f}"
                )
    except AgosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    tot = {
        k: sum(r[side][key] for r in rows)
        for k, side, key in [
            ("agos_latency_cycles", "agos", "latency_cycles"),
            ("agos_compute_cycles", "agos", "compute_cycles"),
            ("zigzag_latency_cycles", "zigzag", "latency_cycles"),
            ("agos_dynamic_energy_pj", "agos", "dynamic_energy_pj"),
            ("zigzag_energy_pj", "zigzag", "energy_pj"),
        ]
    }
    tot["latency_ratio"] = tot["agos_latency_cycles"] / tot["zigzag_latency_cycles"]
    tot["dynamic_energy_ratio"] = tot["agos_dynamic_energy_pj"] / tot["zigzag_energy_pj"]
    print(
        f"total: latency ratio agos/ZigZag {tot['latency_ratio']:.3f}, "
        f"energy {tot['dynamic_energy_ratio']:.3f}"
    )
    doc = {
        "what": "agos dense@systolic FWD vs ZigZag 3.9.1 (LOMA, latency-optimal), closest ZigZag hardware",
        "provenance": {
            "command": " ".join(["benchmarks/zigzag.py", *sys.argv[1:]]),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "design": DESIGN,
            "design_sha256": loaded.sha256,
            "zigzag": found,
            "python": platform.python_version(),
            "trace": prov.model_dump(mode="json", include={"model", "image_size", "batch_size", "seed"}),
            "trace_weights_sha256": prov.weights.sha256,
        },
        "zigzag_hardware_yaml": hardware,
        "zigzag_mapping_yaml": MAPPING,
        "totals": tot,
        "rows": rows,
    }
    with atomic_file(args.out) as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
