"""Output-skip realizations: how the PE slots of a row get their operands and which of them compute.

A realization is the stage between the row's operand windows (one per column lane, and per bank
of a compaction domain) and the PE slots. The row calls `route` once per elaboration with a
`RouteIn`; the realization returns a `RouteOut`. Everything a realization needs per item comes in
its own descriptor fields (`fields`), which the row registers when it takes the item; a
realization may hold the current step over several cycles (`RouteOut.done` low) and the row then
repeats the step — same stream entry, same window — until it is done.

Shipped: `none` (lane c feeds PE c), `static` (as `none`, masked slots idle: docs/cost-model.md
§2.3 `static`), `compacted` (the §2.3 slots through a C × C crossbar, channel c on lane c mod C; a
lane with λ channels of the slot's set serialises the step over λ cycles). A new realization —
store assignment, per-row queues — subclasses `OutputSkip`, is registered in `OUTPUT_SKIPS`, and
gets its timing rule in `agos.rtl.timing`.
"""

import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce

from amaranth import Array, Cat, Const, Module, Mux, Signal, Value

from agos.rtl.pe import VALUE_BITS


@dataclass
class RouteIn:
    """What the row hands a realization for the current cycle."""

    cols: int
    banks: int  # channels per lane in a compaction domain (1 unless compacted)
    issue: Value  # the step issues a stream entry this cycle (its group is nonempty)
    step_end: Value  # the row ends the step this cycle (the realization's own `done` included)
    valid: list[Value]  # per PE slot: the row would multiply this cycle (join, group) before routing
    operand: Callable[[int, Value], Value]  # (lane, bank) → that lane's operand at the issued entry
    fields: dict[str, Signal]  # the item's descriptor fields this realization declared, registered
    enabled: Value  # the feature's mode bit (1 when the row has no bypass)


@dataclass
class RouteOut:
    b: list[Value]  # per PE slot: its operand
    valid: list[Value]  # per PE slot: it multiplies this cycle
    done: Value  # the step may end this cycle


def lowest(m: Module, bits: Value, name: str) -> tuple[Signal, Value]:
    """(index of the lowest set bit, any bit set): a priority encoder."""
    width = len(bits)
    idx = Signal(range(max(2, width)), name=name)
    for i in reversed(range(width)):  # the lowest set bit is assigned last and wins
        with m.If(bits[i]):
            m.d.comb += idx.eq(i)
    return idx, bits.any()


class OutputSkip:
    name = "abstract"

    def fields(self, cols: int, banks: int) -> dict[str, int]:
        """Descriptor fields per item (name → bits)."""
        return {}

    def route(self, m: Module, rin: RouteIn) -> RouteOut:
        raise NotImplementedError


class NoOutputSkip(OutputSkip):
    """Every PE computes its own column's channel: lane c feeds PE c."""

    name = "none"

    def route(self, m: Module, rin: RouteIn) -> RouteOut:
        b = [rin.operand(c, Const(0, 1)) for c in range(rin.cols)]
        return RouteOut(b, list(rin.valid), Const(1, 1))


class StaticOutputs(NoOutputSkip):
    """As `none`; the item's slot mask (the needed channels of its tile) idles the other PEs."""

    name = "static"

    def fields(self, cols: int, banks: int) -> dict[str, int]:
        return {"slots": cols}

    def route(self, m: Module, rin: RouteIn) -> RouteOut:
        out = super().route(m, rin)
        slots = rin.fields["slots"] | ~rin.enabled.replicate(rin.cols)
        return RouteOut(out.b, [v & slots[c] for c, v in enumerate(out.valid)], out.done)


class CompactedOutputs(OutputSkip):
    """§2.3 compacted slots over a domain of `banks` × C channels (channel c on lane c mod C, bank
    c div C). The item's set S (its `set` field, at most C channels) goes to PE slots in ascending
    channel order: slot = rank of the channel in S (a prefix count over the domain). Each step,
    every lane serves the next channel of S it holds, through a C × C crossbar of one operand per
    lane; a lane holding λ channels of S needs λ cycles, so the step lasts max λ over the lanes.
    Bypass (mode bit off): S is the whole bank `bank` of the domain — a dense C-channel tile, one
    channel per lane, the crossbar the identity."""

    name = "compacted"

    def fields(self, cols: int, banks: int) -> dict[str, int]:
        return {"set": cols * banks, "bank": max(1, (banks - 1).bit_length())}

    def route(self, m: Module, rin: RouteIn) -> RouteOut:
        cols, banks = rin.cols, rin.banks
        dense = Signal(cols * banks, name="dense_tile")
        for k in range(banks):
            with m.If(rin.fields["bank"] == k):
                m.d.comb += dense.eq(Const((1 << cols) - 1, cols) << (k * cols))
        s_eff = Signal(cols * banks, name="set_eff")
        m.d.comb += s_eff.eq(Mux(rin.enabled, rin.fields["set"], dense))
        # rank of every channel of the domain in S: the PE slot it goes to (a prefix count)
        rank_bits = max(1, (cols - 1).bit_length())
        ranks = [Const(0, rank_bits)]
        for c in range(1, cols * banks):
            r = Signal(rank_bits + 1, name=f"rank{c}")
            m.d.comb += r.eq(ranks[-1] + s_eff[c - 1])
            ranks.append(r[:rank_bits])
        sel = [[] for _ in range(cols)]  # sel[slot]: (lane's select, lane's operand) pairs
        lane_last = []
        served = []
        for lane in range(cols):
            mine = Cat(*(s_eff[lane + cols * k] for k in range(banks)))
            cleared = Signal(banks, name=f"lane_cleared{lane}")
            pending = Signal(banks, name=f"lane_pending{lane}")
            m.d.comb += pending.eq(mine & ~cleared)
            bank, active = lowest(m, pending, f"lane_bank{lane}")
            first = Signal(banks, name=f"lane_first{lane}")
            m.d.comb += first.eq(Const(1, banks) << bank)
            lane_last.append((pending & ~first) == 0)
            served.append((cleared, first))
            dest = Array(ranks[lane + cols * k] for k in range(banks))[bank] if banks > 1 else ranks[lane]
            operand = Signal(VALUE_BITS, name=f"lane_operand{lane}")
            m.d.comb += operand.eq(rin.operand(lane, bank if banks > 1 else Const(0, 1)))
            for i in range(cols):  # the crossbar: each lane drives the slot of its current channel
                s = Signal(name=f"xbar_sel{lane}_{i}")
                m.d.comb += s.eq(active & (dest == i))
                sel[i].append((s, operand))
        b_out, hit = [], []
        for i in range(cols):  # AND-OR: at most one lane selects a slot (ranks are distinct)
            b = Signal(VALUE_BITS, name=f"xbar_b{i}")
            m.d.comb += b.eq(reduce(operator.or_, [s.replicate(VALUE_BITS) & op for s, op in sel[i]]))
            b_out.append(b)
            hit.append(Cat(*(s for s, _ in sel[i])).any())
        done = Cat(*lane_last).all()
        for cleared, first in served:  # banks served so far in this step
            if len(cleared) > 1:
                with m.If(rin.step_end):
                    m.d.sync += cleared.eq(0)
                with m.Elif(rin.issue):
                    m.d.sync += cleared.eq(cleared | first)
        valid = [rin.valid[i] & hit[i] for i in range(cols)]
        return RouteOut(b_out, valid, done)


OUTPUT_SKIPS: dict[str, type[OutputSkip]] = {
    "none": NoOutputSkip,
    "static": StaticOutputs,
    "compacted": CompactedOutputs,
}
