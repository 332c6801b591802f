"""Scheduling work items onto PE rows (DESIGN.md §4 "scheduling").

Rows are grouped into units of `sync_rows` rows. A unit runs one *work group* at a time: that many
consecutive items start together and the group lasts as long as its longest item, plus the
pipeline fill/drain. Groups reach units either statically (dealt round-robin, in order) or
dynamically (each group goes to the unit that frees a queue slot first; with queue depth 1 this is
greedy list scheduling). DESIGN.md's "lockstep" is sync_rows = rows with one unit, "row queues" is
sync_rows = 1 static, "greedy" is sync_rows = 1 dynamic with depth 1.
"""

from __future__ import annotations

import numba
import numpy as np

from agos.arch.schema import Scheduling


@numba.njit(cache=True)
def _dynamic_makespan(durations: np.ndarray, units: int, depth: int) -> int:
    """Groups in order; each goes to the unit whose earliest held group completes first (ties: the
    lower unit). A unit holds up to `depth` groups and runs them back to back."""
    n = durations.shape[0]
    finish = np.zeros(units, np.int64)
    slots = units * depth
    ev_time = np.empty(slots, np.int64)
    ev_unit = np.empty(slots, np.int64)
    count = 0
    i = 0
    for _slot in range(depth):  # initial dealing, round-robin by slot
        for u in range(units):
            if i < n:
                finish[u] += durations[i]
                ev_time[count] = finish[u]
                ev_unit[count] = u
                count += 1
                i += 1
    while i < n:
        best = 0
        for j in range(1, count):
            if ev_time[j] < ev_time[best] or (ev_time[j] == ev_time[best] and ev_unit[j] < ev_unit[best]):
                best = j
        u = ev_unit[best]
        finish[u] += durations[i]
        ev_time[best] = finish[u]
        i += 1
    return finish.max() if n > 0 else 0


def group_durations(item_durations: np.ndarray, sched: Scheduling) -> np.ndarray:
    """Durations of the work groups formed by `sync_rows` consecutive items."""
    d = np.asarray(item_durations, dtype=np.int64)
    if d.size == 0:
        return d
    size = sched.sync_rows
    if size > 1:
        pad = (-d.size) % size
        if pad:
            d = np.concatenate([d, np.zeros(pad, np.int64)])
        d = d.reshape(-1, size).max(axis=1)
    return d + sched.fill_drain_cycles


def makespan(segments: list[np.ndarray], sched: Scheduling, rows: int) -> int:
    """Cycles from the first item's start to the last item's end, all rows starting idle. Work
    groups are formed within each segment (items sharing a conv group and channel tile)."""
    parts = [group_durations(seg, sched) for seg in segments if seg.size]
    groups = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if groups.size == 0:
        return 0
    units = rows // sched.sync_rows
    if units == 1:
        return int(groups.sum())
    if sched.dispatch == "static":
        pad = (-groups.size) % units
        if pad:
            groups = np.concatenate([groups, np.zeros(pad, np.int64)])
        return int(groups.reshape(-1, units).sum(axis=0).max())
    return int(_dynamic_makespan(groups, units, sched.queue_depth))
