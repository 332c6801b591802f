"""`agos export --to scalesim`: every pass of every layer as the GEMMs SCALE-Sim runs, with a config
of the design's organisation (docs/export.md).

Each layer pass is the im2col GEMM of `agos.workload.gemm.layer_gemm` — the conventions of the
peer agreement (docs/validation.md): FWD, BWD-D (transposed conv, stride holes counted) and BWD-W
(written dWᵀ), a Linear layer as the 1×1 case, a grouped layer as `copies` GEMMs (one topology row
each) or, when its groups pack across the columns, one GEMM of the packed columns. A layer whose
input needs no gradient (the network's first) runs no BWD-D, as in every agos design.

Files written:
- `topology.csv`: SCALE-Sim's GEMM topology (`Layer, M, N, K,`), one row per GEMM copy, in trace
  order and pass order (fwd, bwd_data, bwd_weight); names `LAYER:PASS`, `LAYER:PASS:copyI/G`;
- `layout.csv`: SCALE-Sim's layout file (one default row per topology row; SCALE-Sim reads it and,
  custom layouts off, does not use it);
- `scale.cfg`: the design's array (rows × columns), dataflow `os`, its global buffer split into
  SCALE-Sim's three SRAMs, and its DRAM bandwidth (`InterfaceBandwidth = USER`);
- `gemms.csv`: the topology's rows with what they are in agos: layer, pass, copy, M, N, K, the
  GEMM's MACs (padding taps and stride holes included) and agos's valid-tap MACs of the pass.

SCALE-Sim counts one-byte words; the export makes one word one value (bf16 values: 2 bytes), so
its "kB" of SRAM are 1024 values and its bandwidth is values per cycle.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from agos.arch.load import LoadedArch, load_arch
from agos.capture.trace import LayerRecord, Trace
from agos.errors import AgosError
from agos.export.folder import StagedFolder
from agos.workload.gemm import Gemm, layer_gemm
from agos.workload.passes import PASSES

VERSION = "3.0.0"  # the SCALE-Sim whose files these are (validate.scalesim runs this one)
DESIGN = "dense@systolic"  # whose organisation the config takes unless --arch names another
TOPOLOGY = "topology.csv"
LAYOUT = "layout.csv"
CONFIG = "scale.cfg"
GEMMS = "gemms.csv"
LAYOUT_FIELDS = 20  # SCALE-Sim 3.0.0's layout columns after the layer name

_CONFIG = """# SCALE-Sim {version} config written by agos export: design {design}
# ({source}); one word = one {vb}-byte value: "kB" are 1024 values, bandwidth is values per cycle.
[general]
run_name = agos_export

[run_presets]
InterfaceBandwidth = USER
UseRamulatorTrace = False

[architecture_presets]
ArrayHeight = {rows}
ArrayWidth = {cols}
ifmapsramszkB = {sram_kb}
filtersramszkB = {sram_kb}
ofmapsramszkB = {sram_kb}
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Dataflow = os
ReadRequestBuffer = 32
WriteRequestBuffer = 32
Bandwidth = {bandwidth}

[layout]
IfmapCustomLayout = False
FilterCustomLayout = False
IfmapSRAMBankBandwidth = {bandwidth}
IfmapSRAMBankNum = 1
IfmapSRAMBankPort = 2
FilterSRAMBankBandwidth = {bandwidth}
FilterSRAMBankNum = 1
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = False
SparseRep = ellpack_block
OptimizedMapping = False
BlockSize = 8
RandomNumberGeneratorSeed = 40
"""


@dataclass(frozen=True)
class ScaleSimConfig:
    """The organisation of a design in SCALE-Sim's terms."""

    design: str
    source: str
    rows: int
    cols: int
    value_bytes: int
    sram_kb: int  # each of SCALE-Sim's three SRAMs, in units of 1024 values
    bandwidth: int  # DRAM values per cycle
    notes: tuple[str, ...]

    def text(self) -> str:
        return _CONFIG.format(
            version=VERSION,
            design=self.design,
            source=self.source,
            vb=self.value_bytes,
            rows=self.rows,
            cols=self.cols,
            sram_kb=self.sram_kb,
            bandwidth=self.bandwidth,
        )

    def to_dict(self) -> dict:
        return {
            "design": self.design,
            "source": self.source,
            "array": [self.rows, self.cols],
            "dataflow": "os",
            "sram_kvalues_each": self.sram_kb,
            "dram_values_per_cycle": self.bandwidth,
            "value_bytes": self.value_bytes,
        }


def scalesim_config(loaded: LoadedArch) -> ScaleSimConfig:
    """The design's organisation as a SCALE-Sim config; what SCALE-Sim cannot express is refused
    (independent rows) or said in a note (skipping features, fill/drain, buffering, bandwidth)."""
    arch = loaded.arch
    org = arch.organisation
    name = arch.name
    if org.sync != "lockstep":
        raise AgosError(
            f"--arch {name}: SCALE-Sim models lockstep systolic arrays; organisation {org.name} runs "
            "independent rows, which it cannot express (choose a systolic design)"
        )
    vb = org.precision.value_bytes
    values = org.memory.global_buffer_bytes // vb
    sram_kb = values // 3 // 1024
    if sram_kb < 1:
        raise AgosError(
            f"--arch {name}: a {org.memory.global_buffer_bytes}-byte buffer is less than SCALE-Sim's "
            "smallest SRAMs (three of 1024 values)"
        )
    per_cycle = org.dram_bytes_per_cycle / vb
    bandwidth = max(1, int(per_cycle))
    notes = []
    if not arch.is_dense:
        notes.append(
            f"{name} skips work; SCALE-Sim runs the dense GEMMs on its organisation (it models no "
            "activation sparsity: the masks are in --to timeloop and --to npz)"
        )
    if org.fill_drain != "per_fold":
        notes.append(f"{name} fills and drains once per buffer tile; SCALE-Sim counts it once per fold")
    if org.fd != org.pe_array.rows + org.pe_array.cols - 2:
        notes.append(f"{name} fills and drains in {org.fd} cycles; SCALE-Sim's array takes R + C − 2")
    if not org.memory.double_buffering:
        notes.append(f"{name} does not double-buffer; SCALE-Sim double-buffers each of its SRAMs")
    if bandwidth != per_cycle:
        notes.append(
            f"{name}'s DRAM delivers {per_cycle:g} values a cycle; SCALE-Sim takes whole values: {bandwidth}"
        )
    return ScaleSimConfig(
        name, loaded.source, org.pe_array.rows, org.pe_array.cols, vb, sram_kb, bandwidth, tuple(notes)
    )


@dataclass(frozen=True)
class TopologyRow:
    name: str  # the topology's layer name
    layer: str
    pass_: str
    copy: int  # 1-based
    gemm: Gemm
    agos_macs: int  # valid-tap MACs of the whole pass (all copies)


def _topology_name(layer: str, pass_: str, copy: int, copies: int) -> str:
    base = f"{layer}:{pass_}" + (f":copy{copy}/{copies}" if copies > 1 else "")
    return base.replace(",", ";")  # SCALE-Sim splits its rows at commas


def topology_rows(layers: list[LayerRecord], cols: int) -> list[TopologyRow]:
    """Every GEMM copy of every pass of every layer, in trace and pass order."""
    rows = []
    for layer in layers:
        g = layer.geometry
        for pass_ in PASSES:
            if pass_ == "bwd_data" and not layer.needs_bwd_data:
                continue
            gemm = layer_gemm(g, pass_, layer.name, cols)
            for copy in range(1, gemm.copies + 1):
                name = _topology_name(layer.name, pass_, copy, gemm.copies)
                rows.append(TopologyRow(name, layer.name, pass_, copy, gemm, g.macs))
    return rows


def _csv(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def topology_text(rows: list[TopologyRow]) -> str:
    """SCALE-Sim's GEMM topology format: a header, then `name, M, N, K,` (trailing comma: SCALE-Sim
    drops the field after the last comma)."""
    lines = ["Layer, M, N, K,"]
    lines += [f"{r.name}, {r.gemm.m}, {r.gemm.n}, {r.gemm.k}," for r in rows]
    return "\n".join(lines) + "\n"


def layout_text(rows: list[TopologyRow]) -> str:
    head = "Layer," + ",".join(f"f{i}" for i in range(LAYOUT_FIELDS)) + ","
    return "\n".join([head] + [f"{r.name}," + ",".join(["1"] * LAYOUT_FIELDS) + "," for r in rows]) + "\n"


def gemms_text(rows: list[TopologyRow]) -> str:
    header = [
        "row",
        "topology_name",
        "layer",
        "pass",
        "copy",
        "copies",
        "M",
        "N",
        "K",
        "gemm_macs",
        "agos_macs_of_pass",
    ]
    body = [
        [
            i,
            r.name,
            r.layer,
            r.pass_,
            r.copy,
            r.gemm.copies,
            r.gemm.m,
            r.gemm.n,
            r.gemm.k,
            r.gemm.m * r.gemm.n * r.gemm.k,
            r.agos_macs,
        ]
        for i, r in enumerate(rows)
    ]
    return _csv(header, body)


def export(trace: Trace, folder: StagedFolder, arch: str | None) -> tuple[dict, list[str]]:
    """Write the SCALE-Sim files into `folder`; returns (provenance fields, notes)."""
    loaded = load_arch(arch or DESIGN)
    config = scalesim_config(loaded)
    rows = topology_rows(trace.layers, config.cols)
    if not rows:
        raise AgosError(f"trace {trace.path} has no conv or linear layers to export")
    folder.write_text(TOPOLOGY, topology_text(rows))
    folder.write_text(LAYOUT, layout_text(rows))
    folder.write_text(CONFIG, config.text())
    folder.write_text(GEMMS, gemms_text(rows))
    notes = list(config.notes)
    no_bwd_data = [layer.name for layer in trace.layers if not layer.needs_bwd_data]
    if no_bwd_data:
        notes.append(
            f"{len(no_bwd_data)} layer(s) run no BWD-D (their input needs no gradient), so it is not "
            f"exported: {', '.join(no_bwd_data)}"
        )
    fields = {
        "scalesim": VERSION,
        "config": config.to_dict(),
        "topology_rows": len(rows),
        "gemm_macs": sum(r.gemm.m * r.gemm.n * r.gemm.k for r in rows),
        "run": f"python -m scalesim.scale -c {CONFIG} -t {TOPOLOGY} -l {LAYOUT} -i gemm -p OUT",
    }
    return fields, notes

