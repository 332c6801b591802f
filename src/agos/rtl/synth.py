"""Verilog and gate-level area of the row: Amaranth → RTLIL → Debian's yosys (0.23) → generic gates.

`synthesize(cfg)` runs `synth; dfflegalize; abc -g AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX;
stat -tech cmos` on the row with its PEs as instances of one module `agos_pe` (synthesised once,
counted C times), so the row's own logic and the PE are measured apart. Flip-flops are legalised
to plain D flip-flops first (`dfflegalize -cell $_DFF_P_ 01`): their enables and synchronous resets
become gates, so every figure counts them. Three measures per module:

- cells: yosys's generic gates and flip-flops;
- transistors: yosys's CMOS estimate (`stat -tech cmos`: NAND/NOR 4, AND/OR/ANDNOT/ORNOT 6,
  XOR/XNOR/MUX 12, NOT 2, D flip-flop 16);
- µm²: each generic cell priced at the NanGate FreePDK45 X1 cell of the same function, the cells
  agos's component table (arch/area/area45.yaml) itself prices its feature logic with (ANDNOT and
  ORNOT as an inverter plus AND2 or OR2). `NANGATE_X1_UM2` lists them.

The component table's figures for the same hardware come from `agos.arch.area.design_area` on a
one-row design with the same features (`table_area`).

The WASM yosys that ships with Amaranth on PyPI has no `synth`; Debian's `yosys` package does
(.ci/run installs it). Without it, `yosys_path()` is None and callers skip with that reason."""

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from amaranth.back import rtlil

from agos.arch.area import design_area
from agos.arch.load import load_arch
from agos.rtl.pe import PE
from agos.rtl.row import Row, RowConfig

GATES = "AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX"
# NanGate FreePDK45 Open Cell Library, X1 cells (width × 1.4 µm row height): INV 0.532, NAND2/NOR2
# 0.798, AND2/OR2 1.064, XOR2/XNOR2 1.596, MUX2 1.862, DFF 4.522 — the last four are area45.yaml's
# register_bit, mux2_bit and and2 figures.
NANGATE_X1_UM2 = {
    "$_NOT_": 0.532,
    "$_NAND_": 0.798,
    "$_NOR_": 0.798,
    "$_AND_": 1.064,
    "$_OR_": 1.064,
    "$_ANDNOT_": 0.532 + 1.064,
    "$_ORNOT_": 0.532 + 1.064,
    "$_XOR_": 1.596,
    "$_XNOR_": 1.596,
    "$_MUX_": 1.862,
    "$_DFF_P_": 4.522,
}
# yosys's CMOS transistor estimate per generic cell (`stat -tech cmos`, kernel/cost.h)
CMOS_TRANSISTORS = {
    "$_NOT_": 2,
    "$_NAND_": 4,
    "$_NOR_": 4,
    "$_AND_": 6,
    "$_OR_": 6,
    "$_ANDNOT_": 6,
    "$_ORNOT_": 6,
    "$_XOR_": 12,
    "$_XNOR_": 12,
    "$_MUX_": 12,
    "$_DFF_P_": 16,
}


def yosys_path() -> str | None:
    """Debian's yosys (with `synth`), or None."""
    return shutil.which("yosys")


@dataclass(frozen=True)
class Gates:
    cells: int
    transistors: int
    flops: int
    um2: float
    by_type: dict[str, int]

    def __add__(self, other: "Gates") -> "Gates":
        types = dict(self.by_type)
        for k, v in other.by_type.items():
            types[k] = types.get(k, 0) + v
        return Gates(
            self.cells + other.cells,
            self.transistors + other.transistors,
            self.flops + other.flops,
            self.um2 + other.um2,
            types,
        )

    def times(self, n: int) -> "Gates":
        return Gates(
            self.cells * n,
            self.transistors * n,
            self.flops * n,
            self.um2 * n,
            {k: v * n for k, v in self.by_type.items()},
        )


@dataclass(frozen=True)
class RowSynthesis:
    """The row's own logic (windows, scanner, joins, output-skip routing, control, mode bits): its
    PEs are instances of one module, measured once on their own (`synthesize_pe`)."""

    cfg: RowConfig
    row: Gates


def _gates(module: dict, exclude: str) -> Gates:
    types = {k: int(v) for k, v in module["num_cells_by_type"].items() if k.lstrip("\\") != exclude}
    unknown = sorted(set(types) - set(NANGATE_X1_UM2))
    if unknown:
        raise RuntimeError(f"yosys left cells agos cannot price: {unknown}")
    transistors = sum(CMOS_TRANSISTORS[k] * v for k, v in types.items())
    est = str(module["estimated_num_transistors"])
    if not est.endswith("+") and int(est) != transistors:  # complete where no instance is left
        raise RuntimeError(f"yosys estimates {est} transistors, agos's count of its cells {transistors}")
    return Gates(
        cells=sum(types.values()),
        transistors=transistors,
        flops=types.get("$_DFF_P_", 0),
        um2=sum(NANGATE_X1_UM2[k] * v for k, v in types.items()),
        by_type=types,
    )


def rtlil_text(cfg: RowConfig) -> tuple[str, str]:
    """(the PE module `agos_pe`, the row module `row` instancing it) as RTLIL."""
    row = Row(replace(cfg, pe_instance=True))
    return rtlil.convert(PE(cfg.pe), name="agos_pe"), rtlil.convert(row, ports=row.ports(), name="row")


def _script(top: str, flatten: str = "") -> str:
    return (
        f"hierarchy -top {top}\n{flatten}hierarchy -top {top}\nsynth -top {top}\n"
        f"dfflegalize -cell $_DFF_P_ 01\nabc -g {GATES}\nopt_clean\n"
        "tee -q -o stat.json stat -json -tech cmos\n"
    )


def verilog(cfg: RowConfig, yosys: str | None = None) -> str:
    """The row and its PE as Verilog (yosys `write_verilog` of Amaranth's RTLIL)."""
    pe, row = rtlil_text(cfg)
    script = "hierarchy -top row\nproc\nopt_clean\nwrite_verilog -noattr out.v\n"
    return _yosys(yosys, {"pe.il": pe, "row.il": row}, script, "out.v")


def synthesize(cfg: RowConfig, yosys: str | None = None) -> RowSynthesis:
    """The row's own logic, its PEs left as instances (checked: C of them)."""
    pe, row = rtlil_text(cfg)
    script = _script("row", "blackbox agos_pe\n")  # the PE is measured on its own
    stat = json.loads(_yosys(yosys, {"pe.il": pe, "row.il": row}, script, "stat.json"))
    mods = {k.lstrip("\\"): v for k, v in stat["modules"].items()}
    types = {k.lstrip("\\"): v for k, v in mods["row"]["num_cells_by_type"].items()}
    if int(types.get("agos_pe", 0)) != cfg.cols:
        raise RuntimeError(f"expected {cfg.cols} PE instances in the row, found {types.get('agos_pe', 0)}")
    return RowSynthesis(cfg, _gates(mods["row"], "agos_pe"))


def synthesize_pe(kind: str, yosys: str | None = None) -> Gates:
    """One PE (agos.rtl.pe), flattened."""
    il = rtlil.convert(PE(kind), name="agos_pe")
    stat = json.loads(_yosys(yosys, {"pe.il": il}, _script("agos_pe", "flatten\n"), "stat.json"))
    mods = {k.lstrip("\\"): v for k, v in stat["modules"].items()}
    return _gates(mods["agos_pe"], "")


def _yosys(yosys: str | None, files: dict[str, str], script: str, result: str) -> str:
    yosys = yosys or yosys_path()
    if yosys is None:
        raise RuntimeError("yosys not found: install Debian's yosys (apt-get install yosys)")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name, text in files.items():
            (d / name).write_text(text)
        reads = "".join(f"read_rtlil {name}\n" for name in files)
        (d / "script.ys").write_text(reads + script)
        done = subprocess.run([yosys, "-q", "-s", "script.ys"], cwd=d, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise RuntimeError("yosys failed: " + " | ".join(tail))
        return (d / result).read_text()


# ---- the component table's figures for the same hardware -----------------------------------------


def table_area(cfg: RowConfig) -> dict[str, float]:
    """µm² of a one-row design with the row's features, by component of agos's area table (the
    PE array, and each feature's components of docs/cost-model.md §9)."""
    skipping: dict = {"lookahead": cfg.lookahead, "broadcast_width": cfg.broadcast}
    skipping["compaction_domain"] = cfg.domain
    # the per-layer bypass (§11) only where the row has its mode bits: the design's default rule
    # would put the rule's unit into every variant and so into no feature's added area
    skipping["bypass"] = "rule" if cfg.bypass else "never"
    fwd: dict = {"stream": cfg.stream}
    bwd_weight: dict = {"stream": cfg.stream, "pe_operand": cfg.join}
    bwd_data: dict = {"stream": cfg.stream, "outputs": cfg.outputs}
    skipping.update(fwd=fwd, bwd_data=bwd_data, bwd_weight=bwd_weight)
    base = load_arch("dense@systolic")
    a = base.arch
    o = a.organisation
    org = o.model_copy(update={"pe_array": o.pe_array.model_copy(update={"rows": 1, "cols": cfg.cols})})
    arch = type(a).model_validate({**a.model_dump(), "organisation": org.model_dump(), "skipping": skipping})
    report = design_area(arch, base.area)
    keep = {k: v * 1e6 for k, v in report.components.items() if k not in ("vector unit", "global buffer")}
    return keep
