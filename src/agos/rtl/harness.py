"""Run a sequence of items through the RTL row in Amaranth's simulator and read back, per item, the
cycles it took and the PE results.

The row sits in a harness of asynchronous memories — the item descriptors, the stream (bit and
value per position) and the column operands (per lane, bank and position; and each PE's own bit for
two-sided joins) — that answer the row's bus requests in the same cycle, as the buffer and the
columns would. Items run back to back, exactly as one row runs its items (one per fold on a
one-row array, docs/cost-model.md §3): the row takes the next item in the last cycle of the current
one, so an item's cycles are the cycles between its take and the next. All the items of a batch
run in one simulation (elaborating the simulator costs more than most items).
"""

import itertools
from dataclasses import dataclass, field

import numpy as np
from amaranth import Cat, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from agos.rtl.pe import ACC_BITS, VALUE_BITS
from agos.rtl.row import Row, RowConfig

VALUE_MASK = (1 << VALUE_BITS) - 1


@dataclass
class RtlItem:
    """One item as the row sees it: its stream and, per lane (and bank), its column operands."""

    bits: np.ndarray  # bool [T]: the stream entry is nonzero
    values: np.ndarray  # int [T]: stream values (16-bit patterns; 0 where bits is False)
    operands: np.ndarray  # int [C, D, T]: column operands per lane and bank (16-bit patterns)
    own: np.ndarray | None = None  # bool [C, T]: two-sided joins, each PE's own operand is nonzero
    mode: int = 0  # mode bits (agos.rtl.row.MODE_*): the features this item runs with
    fields: dict[str, int] = field(default_factory=dict)  # the output-skip descriptor fields

    @property
    def length(self) -> int:
        return int(self.bits.size)


@dataclass
class RowRun:
    cycles: list[int]  # per item
    results: list[list[int]]  # per item, per PE slot: the accumulator (raw 32-bit pattern)
    total: int  # cycles from the first take to the last item's end


class Harness(Elaboratable):
    def __init__(self, cfg: RowConfig, items: list[RtlItem]):
        if not items:
            raise ValueError("no items to run")
        self.cfg, self.items = cfg, items
        self.row = Row(cfg)
        C, D = cfg.cols, cfg.banks
        n = len(items)
        bases = np.cumsum([0] + [it.length for it in items])
        self.bases = bases
        self.pos_bits = max(1, int(bases[-1]).bit_length())
        field_widths = self.row.skip.fields(C, D)
        self.field_layout = list(field_widths.items())
        words = []
        for i, it in enumerate(items):
            if it.length < 1 or it.length >= 1 << cfg.len_bits:
                raise ValueError(f"item {i}: stream length {it.length} out of range")
            word = int(bases[i]) | it.length << self.pos_bits | it.mode << (self.pos_bits + cfg.len_bits)
            shift = self.pos_bits + cfg.len_bits + 3
            for name, width in self.field_layout:
                word |= (it.fields.get(name, 0) & ((1 << width) - 1)) << shift
                shift += width
            words.append(word)
        self.item_width = shift
        stream, ops = [], []
        for it in items:
            vals = np.asarray(it.values, np.int64) & VALUE_MASK
            stream += [int(v) << 1 | int(b) for b, v in zip(it.bits, vals, strict=True)]
            o = np.asarray(it.operands, np.int64) & VALUE_MASK  # [C, D, T]
            if o.shape != (C, D, it.length):
                raise ValueError(f"operands of shape {o.shape}, expected {(C, D, it.length)}")
            own = it.own if it.own is not None else np.zeros((C, it.length), bool)
            for t in range(it.length):
                word = 0
                for c in range(C):
                    for k in range(D):
                        word |= int(o[c, k, t]) << (VALUE_BITS * (c * D + k))
                    word |= int(own[c, t]) << (VALUE_BITS * C * D + c)
                ops.append(word)
        self.item_mem = Memory(shape=self.item_width, depth=n, init=words)
        self.stream_mem = Memory(shape=VALUE_BITS + 1, depth=len(stream), init=stream)
        self.ops_mem = Memory(shape=VALUE_BITS * C * D + C, depth=len(ops), init=ops)
        self.stamp_mem = Memory(shape=32, depth=n, init=[])
        self.result_mem = Memory(shape=ACC_BITS * C, depth=n, init=[])
        self.finished = Signal()
        self.cycle = Signal(32)

    def _item(self, word):
        pb, lb = self.pos_bits, self.cfg.len_bits
        out = {"base": word[0:pb], "len": word[pb : pb + lb], "mode": word[pb + lb : pb + lb + 3]}
        shift = pb + lb + 3
        for name, width in self.field_layout:
            out[name] = word[shift : shift + width]
            shift += width
        return out

    def elaborate(self, platform) -> Module:
        cfg, row = self.cfg, self.row
        C, D, W = cfg.cols, cfg.banks, cfg.window
        n = len(self.items)
        m = Module()
        m.submodules.row = row
        for name in ("item_mem", "stream_mem", "ops_mem", "stamp_mem", "result_mem"):
            m.submodules[name] = getattr(self, name)
        nxt = Signal(range(n + 1))
        cur_base, cur_len = Signal(self.pos_bits), Signal(cfg.len_bits)
        rd = self.item_mem.read_port(domain="comb")
        m.d.comb += rd.addr.eq(Mux(nxt < n, nxt, 0))
        nxt_item = self._item(rd.data)
        m.d.comb += [
            row.item_valid.eq(nxt < n),
            row.item_len.eq(nxt_item["len"]),
            row.item_mode.eq(nxt_item["mode"]),
        ]
        m.d.comb += [sig.eq(nxt_item[k]) for k, sig in row.item_fields.items()]
        with m.If(row.item_take):
            m.d.sync += [nxt.eq(nxt + 1), cur_base.eq(nxt_item["base"]), cur_len.eq(nxt_item["len"])]
        # the bus: bank s carries entry fill_base + ((s − fill_base) mod W) of the addressed item
        base = Mux(row.fill_next, nxt_item["base"], cur_base)
        length = Mux(row.fill_next, nxt_item["len"], cur_len)
        offset = row.fill_base % W if W > 1 else Const(0, 1)
        for s in range(W):
            x = Signal(cfg.len_bits + 2, name=f"bus_pos{s}")
            m.d.comb += x.eq(row.fill_base + Mux(offset > s, s + W - offset, s - offset))
            addr = Mux(x < length, base + x, 0)
            sp = self.stream_mem.read_port(domain="comb")
            op = self.ops_mem.read_port(domain="comb")
            m.d.comb += [sp.addr.eq(addr), op.addr.eq(addr)]
            m.d.comb += [row.s_bit[s].eq(sp.data[0]), row.s_val[s].eq(sp.data[1:])]
            for c in range(C):
                for k in range(D):
                    lo = VALUE_BITS * (c * D + k)
                    m.d.comb += row.o_val[c][k][s].eq(op.data[lo : lo + VALUE_BITS])
                if cfg.join:
                    m.d.comb += row.o_bit[c][s].eq(op.data[VALUE_BITS * C * D + c])
        # stamps of every item's last cycle, and its results two cycles later
        m.d.sync += self.cycle.eq(self.cycle + 1)
        done_count, res_count = Signal(range(n + 1)), Signal(range(n + 1))
        wp = self.stamp_mem.write_port()
        m.d.comb += [wp.addr.eq(done_count), wp.data.eq(self.cycle), wp.en.eq(row.done)]
        with m.If(row.done):
            m.d.sync += done_count.eq(done_count + 1)
        rp = self.result_mem.write_port()
        m.d.comb += [rp.addr.eq(res_count), rp.data.eq(Cat(*row.res)), rp.en.eq(row.res_valid)]
        with m.If(row.res_valid):
            m.d.sync += res_count.eq(res_count + 1)
        m.d.comb += self.finished.eq(res_count == n)
        return m


def run_row(cfg: RowConfig, items: list[RtlItem], max_cycles: int | None = None) -> RowRun:
    """Simulate the row over `items`, back to back; per-item cycles and results."""
    h = Harness(cfg, items)
    n = len(items)
    limit = max_cycles or 8 + sum(it.length * cfg.banks * cfg.group + 1 for it in items)
    got: dict = {}

    async def bench(ctx):
        await ctx.tick().until(h.finished | (h.cycle >= limit))
        got["finished"] = ctx.get(h.finished)
        got["stamps"] = [ctx.get(h.stamp_mem.data[i]) for i in range(n)]
        got["results"] = [ctx.get(h.result_mem.data[i]) for i in range(n)]

    sim = Simulator(h)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    if not got["finished"]:
        raise RuntimeError(f"the row did not finish {n} items within {limit} cycles")
    stamps = got["stamps"]
    cycles = [stamps[0]] + [b - a for a, b in itertools.pairwise(stamps)]
    mask = (1 << ACC_BITS) - 1
    results = [[(word >> (ACC_BITS * c)) & mask for c in range(cfg.cols)] for word in got["results"]]
    return RowRun(cycles, results, stamps[-1])
