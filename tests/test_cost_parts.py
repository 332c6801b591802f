"""Parts of the cost model with properties of their own: stream-block counts, halo rows, the
vector unit's record and prices, passes shared between layers of one geometry."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from agos.arch.load import load_arch
from agos.capture.trace import load_trace
from agos.cost.items import _packed, _slot_items, _slot_words
from agos.cost.layout import NeededChannels, Tile
from agos.cost.model import LayerContext, SharedPasses, layer_area, simulate_layer
from agos.cost.network import MaskSource, partition_layers, simulate_network
from agos.cost.tiling import PassTensors, Shares, split
from agos.cost.vector import op_work, vector_cost
from agos.density.real import iter_real_masks
from agos.workload.chunks import block_counts, store_chunks, uniform_blocks
from agos.workload.counts import layer_work
from agos.workload.layer import geometry_of
from tests.cost_cases import random_layer


@pytest.mark.parametrize("seed", range(1, 31))
def test_stream_blocks_sum_to_the_whole_stream(seed):
    """Per-block T_j and s_j, summed over the blocks of any partition, are the whole-stream counts
    of agos.workload.counts (an independent computation)."""
    masks = random_layer(seed)
    if masks is None:
        pytest.skip("kernel larger than the padded input")
    work = layer_work(masks)
    g = masks.geometry
    whole = {
        "fwd": (work.fwd_dense.numpy(), work.fwd_nonzero.numpy()),
        "bwd_data": (work.bwd_data_dense.numpy(), work.bwd_data_nonzero.numpy()),
        "bwd_weight": (work.bwd_weight_dense.numpy(), work.bwd_weight_nonzero.numpy()),
    }
    r = random.Random(seed)
    for pass_, (dense, nonzero) in whole.items():
        for part in (uniform_blocks(pass_, g, r.choice([1, 2, 3, 8])), store_chunks(pass_, masks, 9 * 4)):
            bc = block_counts(pass_, masks, part)
            length, s = bc.length.sum(axis=0), bc.nonzero.sum(axis=0)  # [pos], [G, pos]
            if pass_ == "fwd" or pass_ == "bwd_data":
                assert np.array_equal(length, np.tile(dense.reshape(-1), g.n))
                assert np.array_equal(s, nonzero.transpose(1, 0, 2, 3).reshape(g.groups, -1))
            else:
                assert np.array_equal(length, np.tile(dense.reshape(-1), g.c_per_group))
                assert np.array_equal(s, nonzero.reshape(g.groups, -1))
            assert sum(part.entries) >= length.max(initial=0)


@pytest.mark.parametrize("seed", range(40))
def test_slots_by_word_are_the_slots_by_channel(seed):
    """With C dividing 64 the compaction slots are cut with word operations (`_slot_words`); they are
    exactly the per-channel kernel's — the items in order, their slots, channel counts, channel sets
    and lane loads — for both slot rules, any domain width, density and work sets."""
    rng = np.random.default_rng(seed)
    for _ in range(8):
        cols = int(rng.choice([1, 2, 4, 8, 16, 32, 64]))
        ch = int(rng.integers(1, 200))
        n = int(rng.integers(0, 40))
        mask = rng.random((n, ch)) < rng.random()
        set_id = np.sort(rng.integers(0, 3, n)).astype(np.int64)
        for by_store in (False, True):
            expected = _slot_items(mask.view(np.uint8), set_id, cols, by_store)
            got = _slot_words(_packed(mask.view(np.uint8), 0, ch), set_id, cols, by_store)
            for name, a, b in zip(("pos", "slot", "channels", "bits", "load"), expected, got, strict=True):
                assert a.shape == b.shape and (a == b).all(), (name, cols, ch, n, by_store)


@pytest.mark.parametrize("seed", range(10))
def test_a_domains_words_hold_its_needed_channels(seed):
    """A domain's needed channels packed into words (from the layer's packed rows, or byte by byte)
    hold channel lo + c at bit c & 63 of word c >> 6, and nothing else."""
    rng = np.random.default_rng(seed)
    for _ in range(10):
        ch = int(rng.choice([8, 16, 24, 64, 72, 128, 200, 5, 13]))
        rows = rng.random((2, int(rng.integers(1, 30)), ch)) < rng.random()
        lo = int(rng.integers(0, ch))
        hi = int(rng.integers(lo + 1, ch + 1))
        group = int(rng.integers(0, 2))
        expected = np.zeros((rows.shape[1], -(-(hi - lo) // 64)), np.uint64)
        for p, c in zip(*np.nonzero(rows[group, :, lo:hi]), strict=True):
            expected[p, c >> 6] |= np.uint64(1) << np.uint64(c & 63)
        words = NeededChannels(rows).words(group, lo, hi)
        assert words is None if ch % 8 or lo % 8 else (words == expected).all(), (ch, lo, hi)
        assert (_packed(rows[group].view(np.uint8), lo, hi) == expected).all(), (ch, lo, hi)


def test_halo_rows_of_every_block_equal_their_definition():
    """The vectorised count of input rows a block of output rows reads (and of dY rows reaching a
    block of input rows) equals the set it is defined by, enumerated."""
    bad = []
    for seed in range(600):
        r = random.Random(seed)
        k, st, pad = r.choice([1, 2, 3, 5, 7]), r.choice([1, 2, 3, 4]), r.choice([0, 1, 2, 3])
        h, n = r.randint(max(1, k - 2 * pad), 14), r.randint(1, 3)
        conv = torch.nn.Conv2d(1, 1, k, stride=st, padding=pad)
        x = torch.zeros(n, 1, h, h)
        try:
            g = geometry_of(conv, x, conv(x), "c")
        except RuntimeError:
            continue
        for pass_, rows in (("fwd", g.n * g.p), ("bwd_data", g.n * g.h)):
            sh = Shares(PassTensors(pass_, g, 1, 1, 1, 1, rows, 1, False), [Tile((0,), 0, 1)])
            for a in sorted({1, 2, 4, rows} & set(range(1, rows + 1))):
                fast = sh.block_rows(a)
                for (lo, hi), got in zip(split(rows, a), fast, strict=True):
                    per = g.p if pass_ == "fwd" else g.h
                    want = 0
                    for img in range(lo // per, (hi - 1) // per + 1):
                        a0, a1 = max(lo, img * per) - img * per, min(hi, (img + 1) * per) - img * per
                        if pass_ == "fwd":
                            hs = {p * st + t - pad for p in range(a0, a1) for t in range(k)}
                            want += len({v for v in hs if 0 <= v < g.h})
                        else:
                            want += sum(
                                1 for p in range(g.p) if any(a0 <= p * st + t - pad < a1 for t in range(k))
                            )
                    if got != want:
                        bad.append((seed, pass_, a, lo, hi, got, want))
    assert not bad, bad[:3]


def test_capture_records_the_non_convolution_work(resnet18_trace):
    manifest = load_trace(resnet18_trace).manifest
    ops = {(v.op, v.kind) for v in manifest.vector_ops}
    assert ("BatchNorm2d", "other") in ops and ("ReLU", "band") in ops and ("add", "other") in ops
    assert manifest.parameters == sum(
        p.numel() for p in __import__("torchvision").models.resnet18().parameters()
    )
    assert manifest.logits_numel == 2 * 1000
    cost = vector_cost(manifest, load_arch("dense@systolic").arch)
    assert cost.note is None and cost.cycles > 0
    assert {"norm", "relu", "add", "loss", "sgd"} <= set(cost.by_class)


def test_vector_unit_prices():
    bn = op_work("BatchNorm2d", "other", 100, 100)
    assert (bn.reads, bn.writes, bn.adds, bn.mults) == (500, 200, 700, 700)
    assert op_work("flatten", "shape", 100, 100).reads == 0  # a layout change moves nothing
    assert op_work("add", "other", 100, 200).reads == 200 and op_work("add", "other", 100, 200).writes == 100

    class Old:  # a trace of an older agos: no record, and the report says so
        vector_ops = None

    assert "iteration excludes it" in vector_cost(Old(), load_arch("agos@rows").arch).note


def test_layers_of_one_geometry_share_passes_that_do_not_depend_on_masks(resnet18_trace):
    trace = load_trace(resnet18_trace)
    designs = [load_arch(d) for d in ("dense@systolic", "zero-gate@rows", "agos@systolic")]
    layers = list(iter_real_masks(trace))
    shared = SharedPasses()
    for masks in layers:
        work = layer_work(masks)
        for d in designs:
            alone = simulate_layer(LayerContext(masks, work), d, layer_area(d))
            together = simulate_layer(LayerContext(masks, work), d, layer_area(d), shared)
            for p, cost in alone.items():
                assert cost == together[p], (masks.name, d.name, p)
    geometries = {(m.geometry, m.needs_bwd_data) for m in layers}
    assert len(geometries) < len(layers)  # the net repeats geometries, so sharing is possible
    # dense and zero-gate time every pass mask-independently; agos shares none
    assert len(shared.passes) == 2 * 3 * len(geometries)


@pytest.mark.slow  # 8 s of worker start-up (spawned processes import torch); CI runs the real-mask case
@pytest.mark.parametrize("density", [pytest.param("real", marks=pytest.mark.ci), "uniform:0.6"])
def test_worker_processes_give_the_serial_result(resnet18_trace, density):
    """Layers dealt to two processes by geometry give every cycle and joule of one process."""
    trace = load_trace(resnet18_trace)
    designs = [load_arch(d) for d in ("agos@systolic", "input-skip@rows")]
    source = MaskSource(str(resnet18_trace), density, 3)
    serial = simulate_network(source, designs, trace.manifest, workers=1)
    parallel = simulate_network(source, designs, trace.manifest, workers=2)
    assert serial.designs.keys() == parallel.designs.keys()
    for name, d in serial.designs.items():
        other = parallel.designs[name]
        assert [layer.name for layer in d.layers] == [layer.name for layer in other.layers]
        for a, b in zip(d.layers, other.layers, strict=True):
            assert a.passes == b.passes, (name, a.name)
    assert sorted(i for part in partition_layers(trace.manifest) for i in part) == list(
        range(len(trace.manifest.layers))
    )
