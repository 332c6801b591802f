"""The RTL row's timing and results, written as plain rules (no Amaranth): what `agos.rtl.row`
must do, item by item, and the yardstick that explains every difference from the cost model.

Per item, the row walks its stream with a front p (docs/rtl.md, "The row"):

    while p < T:
        window = the nonzero entries among [p, p+L) (all entries when stream skip is off)
        group  = its first min(G, |window|) entries (G = B_w with the join on, else 1)
        if group is empty: 1 cycle, p += L
        else: max(hold, λ) cycles, p = the next nonzero of the window after the group, or p + L
    hold = max(1, the most matches one PE has in the group) (two-sided join; 1 otherwise)
    λ    = the largest number of the item's compacted channels on one lane (1 otherwise)

Without stream-skip hardware the window is one entry (L = 1). The cost model's item duration (§2.3)
is max(s, ⌈T/L⌉) (stream skip), max(max_k b_k, ⌈s/B_w⌉, ⌈T/L⌉) (join), and the lockstep fold adds
the lane-conflict bound K = ⌈T·λ/L⌉ (compacted, §3): throughput bounds, which a row meets only when
no window passes empty and no group or lane holds the step (`gaps`)."""

from dataclasses import dataclass

import numpy as np

from agos.rtl.harness import RtlItem
from agos.rtl.pe import ACC_BITS
from agos.rtl.row import MODE_COMPACT, MODE_JOIN, MODE_STREAM, RowConfig


def active(cfg: RowConfig, item: RtlItem) -> tuple[bool, bool, bool]:
    """(stream skip, join, compaction) as the item runs them: present and, with bypass, its mode bit on."""

    def on(present: bool, bit: int) -> bool:
        return present and (not cfg.bypass or bool(item.mode & bit))

    return on(cfg.stream, MODE_STREAM), on(cfg.join, MODE_JOIN), on(cfg.outputs == "compacted", MODE_COMPACT)


def channel_set(cfg: RowConfig, item: RtlItem) -> list[tuple[int, int]]:
    """(lane, bank) of each PE slot's channel, slot by slot: compacted, the item's set in ascending
    channel order (channel c = bank·C + lane); otherwise lane c in slot c."""
    _, _, compact = active(cfg, item)
    C = cfg.cols
    if cfg.outputs != "compacted":
        return [(c, 0) for c in range(C)]
    if compact:
        bits = item.fields["set"]
        chans = [c for c in range(C * cfg.banks) if bits >> c & 1]
    else:
        chans = [item.fields.get("bank", 0) * C + c for c in range(C)]
    return [(c % C, c // C) for c in chans]


def lane_load(cfg: RowConfig, item: RtlItem) -> int:
    """λ: the most channels of the item's set on one lane (1 without compaction)."""
    if cfg.outputs != "compacted":
        return 1
    lanes = [lane for lane, _ in channel_set(cfg, item)]
    return max((lanes.count(x) for x in set(lanes)), default=1)


@dataclass
class Walk:
    cycles: int
    issues: int  # steps that issued a group
    empty: int  # cycles of a window with no nonzero entry
    held: int  # cycles a group or lane held the step beyond its first


def walk(cfg: RowConfig, item: RtlItem) -> Walk:
    """The row's cycles on one item, by the rules above."""
    stream, join, _ = active(cfg, item)
    T = item.length
    bits = item.bits if stream else np.ones(T, bool)
    L = cfg.window
    G = cfg.group if join else 1
    lam = lane_load(cfg, item)
    p = cycles = issues = empty = held = 0
    while p < T:
        win = [i for i in range(L) if p + i < T and bits[p + i]]
        group, rest = win[:G], win[G:]
        if not group:
            cycles, empty, p = cycles + 1, empty + 1, p + L
            continue
        hold = 1
        if join and G > 1:
            hold = max(1, max(int(sum(item.own[c, p + q] for q in group)) for c in range(cfg.cols)))
        step = max(hold, lam)
        cycles, issues, held = cycles + step, issues + 1, held + step - 1
        p += rest[0] if rest else L
    return Walk(cycles, issues, empty, held)


def expected_results(cfg: RowConfig, item: RtlItem) -> list[int]:
    """Each PE slot's accumulator after the item (int PE): the dense dot product of the stream and
    its channel's operands, as 32-bit two's complement — skipping must not change it."""
    values = _signed16(np.asarray(item.values, np.int64))
    out = [0] * cfg.cols
    slots = channel_set(cfg, item)
    static = cfg.outputs == "static"
    for slot, (lane, bank) in enumerate(slots):
        if static and not item.fields.get("slots", 0) >> slot & 1:
            continue
        ops = _signed16(np.asarray(item.operands[lane, bank], np.int64))
        out[slot] = int((values * ops).sum()) & ((1 << ACC_BITS) - 1)
    return out


def _signed16(x: np.ndarray) -> np.ndarray:
    x = x & 0xFFFF
    return np.where(x >= 0x8000, x - 0x10000, x)


def model_duration(cfg: RowConfig, item: RtlItem) -> int:
    """docs/cost-model.md §2.3's d, with §3's K on a one-row fold, from the item's own bits: the
    spec's rule written out, for the explanation of differences (the comparison itself runs the
    cost model and the reference)."""
    stream, join, compact = active(cfg, item)
    T = item.length
    s = int(np.count_nonzero(item.bits))
    L = cfg.window
    if not stream:
        d = T
    elif join:
        b = max((int(np.count_nonzero(item.bits & item.own[c])) for c in range(cfg.cols)), default=0)
        d = max(b, -(-s // cfg.broadcast), -(-T // L))
    else:
        d = max(s, -(-T // L))
    if compact:  # §2.3: the row's crossbar moves one operand per lane per cycle, λ per walked entry
        d = max(d, (s if stream else T) * lane_load(cfg, item))
    return d


def decoupled_cycles(bits: np.ndarray, lookahead: int, queue: int) -> int:
    """A what-if front end, not in the RTL: a scanner that reads one aligned block of L bits per
    cycle into a queue of at most `queue` waiting nonzero entries (a block waits while it would
    overflow), the row multiplying the queue's head each cycle (a block's entries can issue in the
    cycle it is read). It passes empty windows without costing an issue cycle, so it comes closer
    to the model's max(s, ⌈T/L⌉); its operand windows must hold every queued entry."""
    T, L = len(bits), lookahead
    blocks = [int(np.count_nonzero(bits[i : i + L])) for i in range(0, T, L)]
    k = waiting = cycles = 0
    while k < len(blocks) or waiting:
        if k < len(blocks) and (waiting == 0 or waiting + blocks[k] <= queue + 1):
            waiting += blocks[k]
            k += 1
        waiting = max(0, waiting - 1)
        cycles += 1
    return cycles
