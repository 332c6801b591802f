"""One PE row of a lockstep (`systolic`) array: C PEs sharing the row's broadcast stream, with the
skipping features of docs/cost-model.md §2.3 and §9 as hardware, each behind a bypass mode bit.

An item (one position × one slot, §2.3) is a stream of T entries — the row's shared stream (a bit:
nonzero; a value) and, per PE column lane, the column operand of each entry (and, for two-sided
joins, the PE's own bit). The row walks the stream with a **front** p:

- dense (no stream skip, or its mode bit off): one entry per cycle, p += 1; T cycles.
- stream skip (window L): the row holds the L entries [p, p+L) — per row the stream bits and
  values, per PE its column operands — in rings of L registers, refilled from an L-wide bus of the
  entries [p+L, p+2L) in position-mod-L banks. Each cycle a priority encoder over the window's
  bits issues the first nonzero entry q; the front then moves to the next nonzero after q in the
  window, or to p+L when there is none (a window with no nonzero: nothing issues, p += L). This is
  TensorDash's lookahead (a front that never passes an unissued nonzero, advancing at most L).
  The item ends when the front passes T.
- two-sided join (broadcast width B_w, BWD-W): the issued group is the first up to B_w nonzero
  entries of the window (their stream values broadcast along the row); each PE joins them with
  its own bits and multiplies one match per cycle (B_w:1 mux); the group holds until every PE has
  taken its matches, then the front moves past it. B_w = 1: each PE multiplies or idles.
- output skip (`agos.rtl.outputs`): between the operand windows and the PE slots.

The mode bits (`MODE_*`, one per feature present, when `bypass`) turn a feature off so that the row
runs as its dense twin: all stream bits taken as 1 (one entry per cycle), all own bits as 1, the
compaction set replaced by a dense tile. The PE arithmetic is in `agos.rtl.pe`.

Item descriptor and buses are plain signals (`Row.ports()`); `agos.rtl.harness` drives them from
memories in simulation.
"""

from dataclasses import dataclass

from amaranth import (
    Array,
    Cat,
    ClockSignal,
    Const,
    Elaboratable,
    Instance,
    Module,
    Mux,
    ResetSignal,
    Signal,
    Value,
)

from agos.rtl.outputs import OUTPUT_SKIPS, OutputSkip, RouteIn, lowest
from agos.rtl.pe import ACC_BITS, PE, PE_KINDS, VALUE_BITS

MODE_STREAM, MODE_JOIN, MODE_COMPACT = 1, 2, 4


@dataclass(frozen=True)
class RowConfig:
    cols: int = 8  # C
    stream: bool = False  # stream-skip hardware (a window of `lookahead` entries)
    lookahead: int = 3  # L
    join: bool = False  # two-sided join hardware (BWD-W)
    broadcast: int = 1  # B_w
    outputs: str = "none"  # output-skip realization (agos.rtl.outputs.OUTPUT_SKIPS)
    domain: int = 64  # compaction domain, channels (banks = domain // C)
    bypass: bool = True  # mode bits that turn each feature off
    pe: str = "int"  # PE arithmetic (agos.rtl.pe.PE_KINDS)
    len_bits: int = 16  # stream positions
    pe_instance: bool = False  # synthesis: every PE an instance of one module `agos_pe`

    def __post_init__(self):
        if self.cols < 1 or self.lookahead < 1 or self.broadcast < 1:
            raise ValueError("cols, lookahead and broadcast must be ≥ 1")
        if self.outputs not in OUTPUT_SKIPS:
            raise ValueError(f"outputs {self.outputs!r}: expected one of {tuple(OUTPUT_SKIPS)}")
        if self.pe not in PE_KINDS:
            raise ValueError(f"pe {self.pe!r}: expected one of {PE_KINDS}")
        if self.join and not self.stream:
            raise ValueError("the two-sided join walks the nonzero stream: it needs stream skip")

    @property
    def window(self) -> int:
        """Entries the row holds: L with stream skip, else 1 (the current entry, from the bus)."""
        return self.lookahead if self.stream else 1

    @property
    def windowed(self) -> bool:
        return self.stream

    @property
    def group(self) -> int:
        return self.broadcast if self.join else 1

    @property
    def banks(self) -> int:
        return max(1, self.domain // self.cols) if self.outputs == "compacted" else 1


class Row(Elaboratable):
    def __init__(self, cfg: RowConfig):
        self.cfg = cfg
        C, W, D = cfg.cols, cfg.window, cfg.banks
        self.skip: OutputSkip = OUTPUT_SKIPS[cfg.outputs]()
        # item port
        self.item_valid = Signal()
        self.item_take = Signal()
        self.item_len = Signal(cfg.len_bits)
        self.item_mode = Signal(3)
        self.item_fields = {k: Signal(w, name=f"item_{k}") for k, w in self.skip.fields(C, D).items()}
        # fill port: the bus carries, in bank s, the entry at fill_base + ((s − fill_base) mod W) of
        # the current item, or of the item being taken when fill_next
        self.fill_base = Signal(cfg.len_bits + 1)
        self.fill_next = Signal()
        self.s_bit = [Signal(name=f"s_bit{s}") for s in range(W)]
        self.s_val = [Signal(VALUE_BITS, name=f"s_val{s}") for s in range(W)]
        self.o_val = [
            [[Signal(VALUE_BITS, name=f"o_val{c}_{k}_{s}") for s in range(W)] for k in range(D)]
            for c in range(C)
        ]
        self.o_bit = [[Signal(name=f"o_bit{c}_{s}") for s in range(W)] for c in range(C)] if cfg.join else []
        # status and results
        self.busy = Signal()
        self.done = Signal()  # the current item's last cycle
        self.res_valid = Signal()  # res holds the results of the item that ended two cycles ago
        self.res = [Signal(ACC_BITS, name=f"res{c}") for c in range(C)]

    def ports(self) -> list[Signal]:
        out = [self.item_valid, self.item_take, self.item_len, self.item_mode, *self.item_fields.values()]
        out += [self.fill_base, self.fill_next, *self.s_bit, *self.s_val]
        out += [v for lane in self.o_val for bank in lane for v in bank]
        out += [b for lane in self.o_bit for b in lane]
        return [*out, self.busy, self.done, self.res_valid, *self.res]

    def _enabled(self, bit: int, present: bool, mode: Value) -> Value:
        if not present:
            return Const(0, 1)
        return mode[bit.bit_length() - 1] if self.cfg.bypass else Const(1, 1)

    def elaborate(self, platform) -> Module:
        cfg = self.cfg
        C, W, D, G = cfg.cols, cfg.window, cfg.banks, cfg.group
        m = Module()
        busy, length, mode = Signal(), Signal(cfg.len_bits), Signal(3)
        p = Signal(cfg.len_bits + 1)
        head = Signal(range(max(2, W)))  # p mod W: the bank of the window's first entry
        fresh = Signal()  # the item's first cycle
        fields = {k: Signal(len(v), name=f"cur_{k}") for k, v in self.item_fields.items()}
        stream_on = self._enabled(MODE_STREAM, cfg.stream, mode)
        join_on = self._enabled(MODE_JOIN, cfg.join, mode)
        compact_on = self._enabled(MODE_COMPACT, cfg.outputs == "compacted", mode)

        # ---- the window: entry i of it is the stream position p + i --------------------------------
        def bank_of(i: Value | int) -> Value:
            if W == 1:
                return Const(0, 1)
            t = head + i
            return Mux(t >= W, t - W, t)[: max(1, (W - 1).bit_length())]

        if cfg.windowed:
            rbit = [Signal(name=f"ring_bit{s}") for s in range(W)]
            rval = [Signal(VALUE_BITS, name=f"ring_val{s}") for s in range(W)]
            oval = [[[Signal(VALUE_BITS, name=f"ring_op{c}_{k}_{s}") for s in range(W)] for k in range(D)]
                    for c in range(C)]  # fmt: skip
            obit = [[Signal(name=f"ring_own{c}_{s}") for s in range(W)] for c in range(C)] if cfg.join else []
        else:  # the current entry straight from the bus
            rbit, rval, oval, obit = self.s_bit, self.s_val, self.o_val, self.o_bit
        in_item = [(p + i) < length for i in range(W)]
        wbit = Signal(W, name="window_bits")
        for i in range(W):
            bit = Array(rbit)[bank_of(i)] if W > 1 else rbit[0]
            m.d.comb += wbit[i].eq((bit | ~stream_on) & in_item[i])

        # ---- the issued group: the first ≤ G set bits of the window, then the next set bit -------
        masks = [wbit]
        qs, vs = [], []
        for j in range(G):
            q, v = lowest(m, masks[-1], f"group_q{j}")
            qs.append(q)
            vs.append(v if j == 0 else v & join_on)
            nxt_mask = Signal(W, name=f"group_rest{j}")
            m.d.comb += nxt_mask.eq(masks[-1] & ~(Const(1, W) << q))
            masks.append(nxt_mask)
        rest = Mux(join_on, masks[G], masks[1]) if G > 1 else masks[1]
        nxt, more = lowest(m, rest, "front_next")
        issue = vs[0]
        advance = Signal(range(W + 1), name="advance")
        m.d.comb += advance.eq(Mux(issue & more, nxt, W))

        def entry_val(q: Value) -> Value:
            return Array(rval)[bank_of(q)] if W > 1 else rval[0]

        # ---- per PE: the join, and the window index of its operand --------------------------------
        step_end = Signal()
        pe_q, pe_a, pe_valid = [], [], []
        join_done = Const(1, 1)
        if cfg.join:
            group_vals = [entry_val(q) for q in qs]  # the B_w-wide broadcast
            lasts = []
            for c in range(C):
                own = Cat(*((Array(obit[c])[bank_of(q)] | ~join_on) & v for q, v in zip(qs, vs, strict=True)))
                if G == 1:
                    pe_q.append(qs[0])
                    pe_a.append(group_vals[0])
                    pe_valid.append(own[0])
                    continue
                taken = Signal(G, name=f"join_taken{c}")
                pend = Signal(G, name=f"join_pending{c}")
                m.d.comb += pend.eq(own & ~taken)
                j, any_ = lowest(m, pend, f"join_pick{c}")
                pe_q.append(Array(qs)[j])
                pe_a.append(Array(group_vals)[j])
                pe_valid.append(any_)
                onehot = Signal(G, name=f"join_onehot{c}")
                m.d.comb += onehot.eq(Const(1, G) << j)
                lasts.append((pend & ~onehot) == 0)
                with m.If(step_end):
                    m.d.sync += taken.eq(0)
                with m.Elif(busy):
                    m.d.sync += taken.eq(taken | onehot)
            if G > 1:
                join_done = Cat(*lasts).all()
        else:
            a0 = entry_val(qs[0])
            pe_q = [qs[0]] * C
            pe_a = [a0] * C
            pe_valid = [issue] * C

        def operand(lane: int, bank: Value) -> Value:
            q = pe_q[lane]
            if W == 1:
                return Array(x[0] for x in oval[lane])[bank] if D > 1 else oval[lane][0][0]
            at = bank_of(q)
            if D == 1:
                return Array(oval[lane][0])[at]
            return Array(Array(ring) for ring in oval[lane])[bank][at]

        enabled = compact_on if cfg.outputs == "compacted" else Const(1, 1)
        route = self.skip.route(m, RouteIn(C, D, issue, step_end, pe_valid, operand, fields, enabled))
        m.d.comb += step_end.eq(busy & (~issue | (join_done & route.done)))

        # ---- the front, the item boundary, the refill ----------------------------------------------
        take = Signal()
        done = Signal()
        m.d.comb += [
            done.eq(step_end & ((p + advance) >= length)),
            take.eq(self.item_valid & (~busy | done)),
            self.item_take.eq(take),
            self.done.eq(done),
            self.busy.eq(busy),
        ]
        with m.If(take):
            m.d.sync += [busy.eq(1), length.eq(self.item_len), mode.eq(self.item_mode), p.eq(0), head.eq(0)]
            m.d.sync += [fields[k].eq(v) for k, v in self.item_fields.items()]
        with m.Elif(done):
            m.d.sync += busy.eq(0)
        with m.Elif(step_end):
            m.d.sync += p.eq(p + advance)
            if W > 1:
                h = head + advance
                m.d.sync += head.eq(Mux(h >= W, h - W, h))
        m.d.sync += fresh.eq(take)
        if cfg.windowed:
            m.d.comb += [self.fill_next.eq(~busy | done), self.fill_base.eq(Mux(~busy | done, 0, p + W))]
            for s in range(W):
                rel = Signal(range(W), name=f"ring_rel{s}")  # (s − head) mod W: the entry's window index
                t = Const(s, range(W + 1)) - head
                m.d.comb += rel.eq(Mux(head > s, t + W, t))
                refill = take | (step_end & ~done & (rel < advance))
                with m.If(refill):
                    m.d.sync += [rbit[s].eq(self.s_bit[s]), rval[s].eq(self.s_val[s])]
                    for c in range(C):
                        m.d.sync += [oval[c][k][s].eq(self.o_val[c][k][s]) for k in range(D)]
                        if cfg.join:
                            m.d.sync += obit[c][s].eq(self.o_bit[c][s])
        else:
            m.d.comb += [self.fill_next.eq(0), self.fill_base.eq(p)]

        # ---- the PEs and the results ----------------------------------------------------------------
        done1, done2 = Signal(), Signal()
        m.d.sync += [done1.eq(done), done2.eq(done1)]
        m.d.comb += self.res_valid.eq(done2)
        for c in range(C):
            a, b = Signal(VALUE_BITS, name=f"pe_a{c}"), Signal(VALUE_BITS, name=f"pe_b{c}")
            v = Signal(name=f"pe_valid{c}")
            m.d.comb += [a.eq(pe_a[c]), b.eq(route.b[c]), v.eq(busy & route.valid[c])]
            if cfg.pe_instance:
                acc = Signal(ACC_BITS, name=f"pe_acc{c}")
                m.submodules[f"pe{c}"] = Instance(
                    "agos_pe", i_clk=ClockSignal("sync"), i_rst=ResetSignal("sync"),
                    i_a=a, i_b=b, i_valid=v, i_clear=fresh, o_acc=acc,
                )  # fmt: skip
            else:
                pe = m.submodules[f"pe{c}"] = PE(cfg.pe)
                m.d.comb += [pe.a.eq(a), pe.b.eq(b), pe.valid.eq(v), pe.clear.eq(fresh)]
                acc = pe.acc
            m.d.comb += self.res[c].eq(acc)
        return m

