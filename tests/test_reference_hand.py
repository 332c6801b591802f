"""Hand-checkable cases of the cycle-stepping reference (agos.reference) alone.

Every expected integer is derived in the comments from docs/cost-model.md; the section numbers
name the rule used. vb = 2 (bf16), ab = 4 (fp32) throughout; D = dram_gbps (clock 1 GHz).
"""

from __future__ import annotations

import pytest
import torch

from agos.arch.schema import Arch, Memory, Organisation, PassSkipping, PEArray, Skipping, Storage
from agos.reference import ACTIONS, ReferenceModelError, reference_pass
from agos.workload.layer import LayerGeometry
from agos.workload.masks import LayerMasks


def organisation(
    rows=2, cols=2, sync="lockstep", buffer=256, banks=4, width=8, dram=4.0, **kw
) -> Organisation:
    memory = Memory(
        global_buffer_bytes=buffer,
        buffer_banks=banks,
        bank_width_bytes=width,
        dram_gbps=dram,
        double_buffering=kw.pop("double_buffering", True),
    )
    return Organisation(name="o", sync=sync, pe_array=PEArray(rows=rows, cols=cols), memory=memory, **kw)


def design(org: Organisation, skipping: Skipping | None = None, **kw) -> Arch:
    """The timing rules by hand: every feature on (`bypass: never`, §11 is tested in test_bypass)."""
    skipping = (skipping or Skipping()).model_copy(update={"bypass": "never"})
    return Arch(name="t", organisation=org, skipping=skipping, **kw)


def linear(n: int, c: int, k: int) -> LayerGeometry:
    return LayerGeometry("linear", n, c, 1, 1, k, 1, 1, 1, 1)


def conv(n, c, h, w, k, p, q, r, s, stride=(1, 1), padding=(0, 0), groups=1) -> LayerGeometry:
    return LayerGeometry("conv", n, c, h, w, k, p, q, r, s, stride, padding, (1, 1), groups)


def masks(g: LayerGeometry, x=None, dy=None, dx=None, needs_bwd_data=True) -> LayerMasks:
    def bits(values, shape):
        if values is None:
            return torch.ones(shape, dtype=torch.bool)
        return torch.tensor(values, dtype=torch.bool).reshape(shape)

    return LayerMasks(
        "layer", g, needs_bwd_data, bits(x, g.x_shape), bits(dy, g.y_shape), bits(dx, g.x_shape), dx is None
    )


# ---- lockstep ----------------------------------------------------------------------------------------


def test_dense_1x1_lockstep_is_folds_times_t_plus_fill_drain():
    # Linear 4 rows × 3 → 2 on a 2 × 2 array, dense. FWD: 4 positions (n), T = 3 taps each, ch = K = 2
    # = C: one channel tile of width 2 (§2.1). Folds of R = 2 items: 2 folds, F = 3.
    # Bf = 2 items × (stream T·vb = 6 + outputs 2·vb = 4) + columns T·W·vb = 3·2·2 = 12 → 32;
    # BW = 4 banks × 8 = 32 → ⌈32/32⌉ = 1 < F. fold = FD (R + C − 2 = 2) + 3 = 5 (§3).
    # Tile compute = 2 folds × (T + R + C − 2) = 2 × 5 = 10.
    # DRAM (§6): A = X 12·2 = 24, B = W 6·2 = 12, O = Y 8·2 = 16; 52 ≤ Cap 128 → a = b = 1.
    # D = 4: prologue ⌈36/4⌉ = 9, max(10, 0), epilogue ⌈16/4⌉ = 4 → 23.
    res = reference_pass("fwd", masks(linear(4, 3, 2)), design(organisation()))
    assert res.tile_compute == [10]
    assert res.cycles == 23
    assert (res.blocks, res.order, res.items) == ((1, 1), "channels", 4)
    assert (res.dram_a_bytes, res.dram_b_bytes, res.dram_o_bytes) == (24, 12, 16)
    assert set(res.actions) == set(ACTIONS)
    # §9: mac = T × 2 channels × 4 items = 24; reads: streams 4·6 + columns 2·12 + DRAM writes 16 = 64;
    # writes: outputs 4·4 + DRAM loads 36 = 52.
    assert res.actions == {
        "mac": 24,
        "mac_gated": 0,
        "buffer_read_bytes": 64,
        "buffer_write_bytes": 52,
        "store_read_bytes": 0,
        "store_write_bytes": 0,
        "metadata_bits": 0,
        "crossbar_bytes": 0,
        "dram_bytes": 52,
    }


def test_overlapped_fill_drain_is_paid_once_per_buffer_tile():
    # As above with fill_drain overlapped: folds are 3 + 3, plus FD = 2 once → 8; 9 + 8 + 4 = 21.
    res = reference_pass("fwd", masks(linear(4, 3, 2)), design(organisation(fill_drain="overlapped")))
    assert res.tile_compute == [8]
    assert res.cycles == 21


def test_stride2_bwd_data_folds_follow_the_stride_phases():
    # 3×1 kernel, stride (2, 1), pad (1, 0), H = 6 → P = (6 + 2 − 3)//2 + 1 = 3; one channel in and out.
    # Scatter form (§2): input row h gets dY row p = (h + 1 − r)/2 for r with h + 1 − r even, 0 ≤ p < 3:
    #   h=0: r=1 (p=0) → T=1;  h=1: r=0 (p=1), r=2 (p=0) → 2;  h=2: r=1 (p=1) → 1;
    #   h=3: r=0 (p=2), r=2 (p=1) → 2;  h=4: r=1 (p=2) → 1;  h=5: r=0 gives p=3 (out), r=2 (p=2) → 1.
    # Work sets (§2.2): phase (h + 1) mod 2 = 0: h = 1, 3, 5 (T 2, 2, 1); phase 1: h = 0, 2, 4 (T 1, 1, 1).
    # R = 2, C = 1, FD = 1: folds {1,3} 1+2, {5} 1+1, {0,2} 1+1, {4} 1+1 → 9 (raster folds would give 8).
    g = conv(1, 1, 6, 1, 1, 3, 1, 3, 1, stride=(2, 1), padding=(1, 0))
    res = reference_pass("bwd_data", masks(g), design(organisation(rows=2, cols=1)))
    assert res.tile_compute == [9]
    assert res.items == 6
    # MACs: Σ T = 8 valid (tap, output) pairs, never the stride holes.
    assert res.actions["mac"] == 8 == g.macs


def test_packed_depthwise_groups_are_bandwidth_bound():
    # Depthwise 4 channels, 1×3 kernel over W = 3 → Q = 1, N = 2. ch = K_g = 1 < C = 4: P = 4 groups
    # packed side by side, one tile of width 4 (§2.1). 2 positions, T = 3 per group; one fold, F = 3.
    # Bf (§5): per item Σ over 4 groups of T·vb = 24, + outputs 4·vb = 8 → 32; 2 items → 64;
    # columns T·W·vb = 3·4·2 = 24 → Bf = 88. BW = 1 × 8 → ⌈88/8⌉ = 11 > F: fold = FD (2+4−2 = 4) + 11 = 15.
    # DRAM: X 24·2 = 48, W 12·2 = 24, Y 8·2 = 16 (88 ≤ 256). D = 8: ⌈72/8⌉ = 9 + 15 + ⌈16/8⌉ = 2 → 26.
    g = conv(2, 4, 1, 3, 4, 1, 1, 1, 3, groups=4)
    org = organisation(rows=2, cols=4, buffer=512, banks=1, width=8, dram=8.0)
    res = reference_pass("fwd", masks(g), design(org))
    assert res.tile_compute == [15]
    assert res.cycles == 26
    assert res.actions["mac"] == 2 * 4 * 3  # 2 positions × 4 groups × T = 3 × 1 channel


def test_compacted_bwd_data_pays_lane_conflicts():
    # BWD-D of a 1×1 conv, C = 4 in, K = 3 out, W = 4 positions, on a 2 × 2 array: ch = C_g = 4 ≥ 2,
    # compacted: one "tile" for the group (§2.3). T = 3 dY taps per position (dense, no stream skip).
    # Needed channels: w0 {0, 2}, w1 {1}, w2 {0, 1}, w3 {1, 2, 3} → slots of C = 2:
    #   slot 0: w0 {0,2}, w1 {1}, w2 {0,1}, w3 {1,2};  slot 1: w3 {3}   (slot-major: 5 items).
    # Lane conflicts per item (§2.3, lanes c mod 2, one operand per lane per cycle): w0 {0,2} has both
    # on lane 0, λ = 2, d = T·2 = 6; every other slot has λ = 1, d = T = 3.
    # Folds of 2 (§3), the columns carrying the union U of the items' sets:
    #   [w0, w1]: F = 6; U = {0,1,2}: Bf = 2·6 + (2+1)·2 + 3·3·2 = 36 → ⌈36/32⌉ = 2; fold = FD 2 + 6 = 8.
    #   [w2, w3 slot 0]: F = 3; U = {0,1,2}: Bf = 12 + 8 + 18 = 38 → 2; fold = 2 + 3 = 5.
    #   [w3 slot 1]: F = 3; U = {3}: Bf = 6 + 2 + 6 = 14 → 1; fold = 2 + 3 = 5.  Σ = 18.
    # DRAM: A = dY 12·2 = 24, B = W 12·2 = 24, O = dX 16·2 = 32 (dense data_gradients) → D = 4:
    # ⌈48/4⌉ = 12 + 18 + ⌈32/4⌉ = 8 → 38.
    g = conv(1, 4, 1, 4, 3, 1, 4, 1, 1)
    needed = [[1, 0, 1, 0], [0, 1, 1, 1], [1, 0, 0, 1], [0, 0, 0, 1]]  # [c][w]
    skipping = Skipping(bwd_data=PassSkipping(outputs="compacted"))
    res = reference_pass("bwd_data", masks(g, dx=needed), design(organisation(), skipping))
    assert res.tile_compute == [18]
    assert res.cycles == 38
    assert res.items == 5
    # §9: mac = T × |S| summed = 3 × (2+1+2+2+1) = 24; crossbar = mac × vb = 48;
    # metadata: ch = 4 bits per position, 4 positions → 16.
    assert res.actions["mac"] == 24
    assert res.actions["crossbar_bytes"] == 48
    assert res.actions["metadata_bits"] == 16


def test_static_outputs_remove_items_only_when_the_whole_tile_is_masked():
    # Same layer, static outputs: 2 channel tiles {0,1}, {2,3} (§2.1). Items exist where a channel of
    # the tile is needed: tile 0: w0, w1, w2, w3; tile 1: w0 (2), w3 (2, 3) → 6 items (§2.3).
    # Folds of 2 never span tiles: [w0,w1], [w2,w3] | [w0,w3]; F = T = 3; Bf = 2·(6 + 4) + 3·2·2 = 32
    # → 1; fold = 2 + 3 = 5.
    # Tiling (§6): A = dY 24, B = W 24, O = dX 32. (1, 1): ⌈48/4⌉ + 15 + ⌈32/4⌉ = 35.
    # (1, 2): tile j holds one channel tile: B = 12, O = 16; the second keeps A (same i, same group):
    # loads [36, 12] → ⌈36/4⌉ = 9 + max(10, ⌈12/4⌉) + max(5, ⌈16/4⌉) + ⌈16/4⌉ = 28 → chosen.
    # mac: T × needed channels of the tile: 3 × ((1+1+2+1) + (1+2)) = 24.
    # metadata: tile width 2 per (position, tile), all positions: 4 × 2 × 2 = 16.
    g = conv(1, 4, 1, 4, 3, 1, 4, 1, 1)
    needed = [[1, 0, 1, 0], [0, 1, 1, 1], [1, 0, 0, 1], [0, 0, 0, 1]]
    skipping = Skipping(bwd_data=PassSkipping(outputs="static"))
    res = reference_pass("bwd_data", masks(g, dx=needed), design(organisation(), skipping))
    assert res.blocks == (1, 2)
    assert res.tile_compute == [10, 5]
    assert res.cycles == 28
    assert (res.dram_a_bytes, res.dram_b_bytes, res.dram_o_bytes) == (24, 24, 32)
    assert res.items == 6
    assert res.actions["mac"] == 24
    assert res.actions["metadata_bits"] == 16


# ---- independent rows --------------------------------------------------------------------------------


def test_independent_rows_chunks_and_partial_sums():
    # FWD 1×1, C = 2 in, K = 2 out, W = 3 positions; rows 2 × 2, E = 1 entry per store: cb = ⌊1/1⌋ = 1
    # input channel per chunk → 2 chunks, ε = 1, T_j = 1 (§4). FD = C = 2. Static dispatch.
    # Chunk 0: 3 item-chunks of d = 1 to rows 0, 1, 0 → M = 2. Bc (§5) = streams 3·1·2 = 6 + partial
    #   sums written 3 × 2·ab = 24 + store load ε·vb·width = 1·2·2 = 4 → 34 → ⌈34/32⌉ = 2; 2 + 2 = 4.
    # Chunk 1: streams 6 + partial sums read 24 + outputs 3·2·2 = 12 + store 4 = 46 → 2; 2 + 2 = 4.
    # Fit: O' = Y at ab = 6·4 = 24, + X 12 + W 8 = 44 ≤ 128. D = 4: ⌈20/4⌉ = 5 + 8 + ⌈12/4⌉ = 3 → 16.
    org = organisation(sync="independent", dispatch="static", pe_store_entries=1)
    res = reference_pass("fwd", masks(conv(1, 2, 1, 3, 2, 1, 3, 1, 1)), design(org))
    assert res.tile_compute == [8]
    assert res.cycles == 16
    assert res.items == 6
    a = res.actions
    assert a["mac"] == 12  # 6 item-chunks × T_j 1 × 2 channels
    assert a["buffer_read_bytes"] == 12 + 8 + 24 + 12  # streams + store loads + sums read + DRAM out
    assert a["buffer_write_bytes"] == 12 + 24 + 20  # outputs + sums written + DRAM in
    assert a["store_read_bytes"] == 24  # mac × vb
    assert a["store_write_bytes"] == 16  # R × store loads
    assert a["dram_bytes"] == 32


def test_bwd_weight_row_block_chunks():
    # BWD-W of a 1×1 conv, N = 2, C = K = 1, H = W = P = Q = 2 on a 1 × 1 rows array. One position
    # (c, r, s) = (0, 0, 0), T = N·P·Q = 8. E = 2 < P·Q = 4: per image, blocks of pb = ⌊2/2⌋ = 1 row
    # → 4 chunks (n0p0, n0p1, n1p0, n1p1), ε = Q = 2, T_j = 2 (§4). FD = C = 1.
    # Each chunk: M = 2; Bc ≤ stream 4 + partial sums 8 + store ε·vb·1 = 4 → ⌈·/32⌉ = 1: 1 + 2 = 3 → 12.
    # Partial sums (§5): written at chunks 0–2, read at 1–3, 1 channel × ab = 4 each → 12 and 12;
    # outputs dW at chunk 3: 1 × ab = 4. Stores: 4 × 4 = 16 loaded, R × 16 = 16 written.
    # Reads: streams 16 + stores 16 + sums 12 + DRAM out (dW 1·ab = 4) = 48;
    # writes: outputs 4 + sums 12 + DRAM in (X 8·2 + dY 8·2 = 32) = 48.
    org = organisation(rows=1, cols=1, sync="independent", pe_store_entries=2)
    res = reference_pass("bwd_weight", masks(conv(2, 1, 2, 2, 1, 2, 2, 1, 1)), design(org))
    assert res.tile_compute == [12]
    assert res.items == 4
    assert res.actions["buffer_read_bytes"] == 48
    assert res.actions["buffer_write_bytes"] == 48
    assert res.actions["store_write_bytes"] == 16


def test_compacted_rows_pay_store_conflicts():
    # BWD-D of a 1×1 conv, C = 4 in, K = 1 out, one position, needed {0, 2}; rows 1 × 2, E = 4:
    # compacted stores hold ⌈4/2⌉ = 2 channels each, E_c = 2, kb = 2 ≥ K_g: one chunk, T = 1.
    # Channels 0 and 2 share store 0: load 2, d = max(T = 1, walked 1 × 2) = 2 (§4). FD = C = 2.
    # Bc = stream 2 + outputs |S|·vb = 4 + store ε·vb·ch = 1·2·4 = 8 → 14 → 1; chunk = 2 + 2 = 4.
    org = organisation(rows=1, cols=2, sync="independent", pe_store_entries=4)
    skipping = Skipping(bwd_data=PassSkipping(outputs="compacted"))
    g = conv(1, 4, 1, 1, 1, 1, 1, 1, 1)
    res = reference_pass("bwd_data", masks(g, dx=[1, 0, 1, 0]), design(org, skipping))
    assert res.tile_compute == [4]
    assert res.actions["mac"] == 2
    assert res.actions["crossbar_bytes"] == 4
    assert res.actions["store_write_bytes"] == 8


def test_store_too_small_for_one_block_is_an_error():
    # 3×3 kernel, E = 8 < R_k·S_k = 9: cb = 0 (§4).
    org = organisation(sync="independent", pe_store_entries=8)
    with pytest.raises(ReferenceModelError, match="E = 8"):
        reference_pass("fwd", masks(conv(1, 1, 3, 3, 1, 1, 1, 3, 3)), design(org))


@pytest.mark.parametrize(("dispatch", "compute"), [("static", 5), ("greedy", 4)])
def test_greedy_vs_static_dispatch(dispatch, compute):
    # FWD 1×1, C = 4 in, K = 1 out, W = 3 positions, stream skip, L = inf; rows 2 × 1, E = 16: one chunk.
    # s per position: 3, 1, 1 → d = 3, 1, 1 (§2.3).
    # static: rows get items 0, 2 | 1 → row 0 busy 3 + 1 = 4 → M = 4; greedy: row 0 takes item 0, row 1
    # item 1 (free at 1), then item 2 (free at 2) → M = 3. FD = C = 1.
    # Bc: streams (3·2 + 1) + (2 + 1) + (2 + 1) = 13, outputs 3·2 = 6, store 4·2·1 = 8 → 27 → 1.
    x = [[1, 0, 0], [1, 1, 0], [1, 0, 0], [0, 0, 1]]  # [c][w]
    org = organisation(rows=2, cols=1, sync="independent", dispatch=dispatch, pe_store_entries=16)
    skipping = Skipping(fwd=PassSkipping(stream=True), lookahead="inf")
    res = reference_pass("fwd", masks(conv(1, 4, 1, 3, 1, 1, 3, 1, 1), x=x), design(org, skipping))
    assert res.tile_compute == [compute]


# ---- buffer tiling -----------------------------------------------------------------------------------


def test_several_buffer_tiles_dram_prologue_and_epilogue():
    # FWD 1×1, C = 2 in, H = 4, K = 4 out; array 1 × 2: two channel tiles of 2 (one group).
    # Stored: X 8·2 = 16, W 8·2 = 16, Y 16·2 = 32. Cap = 64 / 2 = 32 (§6).
    #   b = 1: a = 1: 16+16+32 > 32; a = 2: 8+16+16 > 32; a = 4: 4+16+8 = 28 fits → (4, 1).
    #   b = 2: a = 1: 16+8+16 > 32; a = 2: 8+8+8 = 24 fits → (2, 2).
    # Compute: T = 2, FD = 1 + 2 − 2 = 1, Bf = 4 + 4 + 2·2·2 = 16 → ⌈16/16⌉ = 1; fold = 3, R = 1.
    #   (4, 1): each tile 1 position × 2 channel tiles = 2 folds → 6.  (2, 2): 2 positions × 1 tile → 6.
    # D = 2. (4, 1): loads [4+16, 4, 4, 4], writes 8 each:
    #   ⌈20/2⌉ = 10 + max(6, 2) + max(6, 6) + max(6, 6) + max(6, 4) + ⌈8/2⌉ = 4 → 38; DRAM 64.
    # (2, 2) channels: loads [16, 8, 16, 8] → 8 + 6 + 12 + 8 + 6 + 4 = 44; positions: same loads → 44.
    org = organisation(rows=1, cols=2, buffer=64, banks=2, width=8, dram=2.0)
    res = reference_pass("fwd", masks(conv(1, 2, 4, 1, 4, 4, 1, 1, 1)), design(org))
    assert res.blocks == (4, 1)
    assert res.order == "channels"
    assert res.tile_compute == [6, 6, 6, 6]
    assert res.cycles == 38
    assert (res.dram_a_bytes, res.dram_b_bytes, res.dram_o_bytes) == (16, 16, 32)
    assert res.actions["dram_bytes"] == 64


def test_tiling_tie_breaks_on_fewer_tiles_without_double_buffering():
    # The same layer without double buffering: Cap = 64. (1, 1) fits (64): one tile of 8 folds → 24;
    # Σ (in + c + out) = 16 + 24 + 16 = 56. (1, 2): tiles of 4 folds → 12; the second tile keeps A
    # (same i, same groups) and loads B 8: (12 + 12 + 8) + (4 + 12 + 8) = 56, DRAM 64 as well.
    # Equal time and bytes: fewer tiles wins → (1, 1).
    org = organisation(rows=1, cols=2, buffer=64, banks=2, width=8, dram=2.0, double_buffering=False)
    res = reference_pass("fwd", masks(conv(1, 2, 4, 1, 4, 4, 1, 1, 1)), design(org))
    assert res.blocks == (1, 1)
    assert res.tile_compute == [24]
    assert res.cycles == 56


@pytest.mark.parametrize("pass_", ["fwd", "bwd_data"])
def test_position_blocks_reread_halo_rows(pass_):
    # 3×1 kernel, pad (1, 0), H = P = 4, W = Q = 4, one channel; no double buffering: Cap = 64.
    # Stored A = 16·2 = 32 (X or dY), B = W 3·2 = 6, O = 32. a = 1 needs 70; a = 2: block rows {0, 1}
    # reach rows {0, 1, 2} (the halo), block {2, 3} reach {1, 2, 3} (§6, in FWD through h = p + r − 1,
    # in BWD-D through p = h + 1 − r): A = ⌈3/4 · 32⌉ = 24 each, + B 6 + O 16 = 46 fits → (2, 1).
    # DRAM A = 24 + 24 = 48 > 32: the halo rows are read twice; B once (same j).
    # Compute (1 × 1 array, FD 0, one fold per position; Bf = 4T + 2 → ⌈·/8⌉ = 2 ≤ T): rows of T = 2
    # and 3, 4 positions each → 4·2 + 4·3 = 20 per tile.
    # D = 2: (⌈30/2⌉ + 20 + ⌈16/2⌉) + (⌈24/2⌉ + 20 + ⌈16/2⌉) = 43 + 40 = 83.
    g = conv(1, 1, 4, 4, 1, 4, 4, 3, 1, padding=(1, 0))
    org = organisation(rows=1, cols=1, buffer=64, banks=1, width=8, dram=2.0, double_buffering=False)
    res = reference_pass(pass_, masks(g), design(org))
    assert res.blocks == (2, 1)
    assert res.dram_a_bytes == 48
    assert res.dram_b_bytes == 6
    assert res.tile_compute == [20, 20]
    assert res.cycles == 83


def test_stream_blocks_on_lockstep_carry_partial_sums():
    # FWD Linear 1 row × 16 → 1 on a 1 × 1 array (FD 0), Cap = 64 / 2 = 32, one position row, one tile.
    # Stored: X 32, W 32, Y 2 (§6). Stream units = input channels, U = 16.
    #   σ = 1: 32 + 32 + 2 > 32; σ = 2: A 16 + B 16 + O' (Y at ab when σ > 1) 4 > 32;
    #   σ = 4: 8 + 8 + 4 = 20 fits → (a, b, σ) = (1, 1, 4), blocks of 4 channels.
    # Each tile: the item's block, T = 4, fold F = 4. Bf = stream 8 + columns 4·1·2 = 8 + partial sums
    # (§5: written 4 in blocks 0–2, read 4 in blocks 1–3) + output 2 in block 3 → 20, 24, 24, 22
    # → ⌈·/8⌉ = 3 ≤ 4: tiles [4, 4, 4, 4].
    # Every tile has a new k: loads A 8 + B 8 = 16 each; O = 2 written after the last block.
    # D = 4: 4 + max(4, 4) × 3 + max(4, 0) + ⌈2/4⌉ = 21.
    org = organisation(rows=1, cols=1, buffer=64, banks=1, width=8)
    res = reference_pass("fwd", masks(linear(1, 16, 1)), design(org))
    assert res.blocks == (1, 1)
    assert res.tile_compute == [4, 4, 4, 4]  # σ = len(tile_compute) / (a·b) = 4
    assert res.cycles == 21
    assert (res.dram_a_bytes, res.dram_b_bytes, res.dram_o_bytes) == (32, 32, 2)
    assert res.items == 4  # item-blocks
    a = res.actions
    assert a["buffer_read_bytes"] == 32 + 32 + 12 + 2  # streams + columns + sums read + DRAM out
    assert a["buffer_write_bytes"] == 2 + 12 + 64  # outputs + sums written + DRAM in
    assert a["mac"] == 16


def test_stream_blocks_on_rows_are_runs_of_chunks():
    # The same layer on 1 × 1 rows with E = 1: cb = 1, J = 16 chunks (§4). O' at ab on rows = 4:
    # σ = 1, 2 do not fit (as above), σ = 4: runs of 4 chunks. FD = C = 1; each chunk one item-chunk,
    # M = 1; Bc = stream 2 + store 1·2·1 = 2 + sums (+4 written unless last, +4 read unless first)
    # + output 2 in the last: 8 → 1, 12 → 2, 10 → 2. Chunk times 2, 3, …, 3 → tiles [11, 12, 12, 12].
    # D = 4: 4 + 11 + 12 + 12 + 12 + 1 = 52.
    org = organisation(rows=1, cols=1, sync="independent", buffer=64, banks=1, width=8, pe_store_entries=1)
    res = reference_pass("fwd", masks(linear(1, 16, 1)), design(org))
    assert res.tile_compute == [11, 12, 12, 12]
    assert res.cycles == 52
    assert res.items == 16
    assert res.actions["store_write_bytes"] == 32  # R × 16 chunks × 2 bytes


def test_compaction_domains_cut_a_group_whose_weights_exceed_half_the_buffer_share():
    # BWD-D of a 1×1 conv, C = 4 in, K = 4 out, one position, on a 1 × 2 array (FD 1), Cap = 32.
    # The group's 2 C-tiles need W share 32 > Cap / 2 = 16: two domains, channels [0, 2) and [2, 4),
    # 16 bytes each (§2.3). Needed {0, 2, 3}: domain 0 slot S = {0}, domain 1 S = {2, 3} (no conflict:
    # lanes 0 and 1; a whole-group domain would have put {0, 2} on lane 0).
    # T = 4 (dense); K = T·load = 4; Bf = 8 + 2 + 8 = 18 and 8 + 4 + 16 = 28 → 1: folds 1 + 4 = 5.
    # Tiling: b = 2 (one domain per block), σ = 1: A 8 + B 16 + O 4 = 28 fits; the second tile keeps A
    # (same i, k, group): loads [24, 16] → ⌈24/4⌉ = 6 + max(5, 4) + max(5, 1) + ⌈4/4⌉ = 17.
    # (b = 1 needs σ = 4: 4 tiles of 4 cycles, ⌈10/4⌉ = 3 + 16 + ⌈8/4⌉ = 21.)
    g = conv(1, 4, 1, 1, 4, 1, 1, 1, 1)
    org = organisation(rows=1, cols=2, buffer=64)
    skipping = Skipping(bwd_data=PassSkipping(outputs="compacted"))
    res = reference_pass("bwd_data", masks(g, dx=[1, 0, 1, 1]), design(org, skipping))
    assert res.blocks == (1, 2)
    assert res.tile_compute == [5, 5]
    assert res.cycles == 17
    assert res.items == 2
    assert res.actions["mac"] == 12  # T × |S|: 4·1 + 4·2
    assert res.actions["crossbar_bytes"] == 24
    assert res.actions["metadata_bits"] == 4  # ch per position


def test_no_fitting_tiling_is_an_error():
    # 3×1 kernel over H = 3, W = 8: the one output row reads 3 input rows of 8 values, per channel
    # and unit: the smallest tile needs A = 48 bytes > Cap = 64 / 2.
    org = organisation(rows=1, cols=1, buffer=64)
    with pytest.raises(ReferenceModelError, match="no buffer tiling"):
        reference_pass("fwd", masks(conv(1, 1, 3, 8, 1, 1, 8, 3, 1)), design(org))


# ---- two-sided joins, gating, bounds -----------------------------------------------------------------


@pytest.mark.parametrize(("width", "compute"), [(1, 3), (2, 2)])
def test_two_sided_join_is_bounded_by_the_broadcast(width, compute):
    # BWD-W of Linear 4 rows × 1 → 2: one position (c, r, s) = (0, 0, 0), stream X over n: T = 4,
    # X = [1, 1, 1, 0]: s = 3. Own dY: k0 [1, 0, 0, 0] → b0 = 1; k1 [1, 1, 0, 1] → b1 = 2 (n = 3 has X = 0).
    # d = max(max b_k, ⌈s / B_w⌉): B_w = 1 → 3; B_w = 2 → 2 (§2.3). 1 × 2 array, FD 1 → fold 1 + d.
    # Bf = stream (3·2 + 1) + outputs 2·ab = 8 + columns 4·2·2 + 2·⌈4/8⌉ = 18 → 33 → ⌈33/64⌉ = 1.
    x = [1, 1, 1, 0]
    dy = [[1, 0], [1, 1], [0, 0], [0, 1]]  # [n][k]
    skipping = Skipping(
        bwd_weight=PassSkipping(stream=True, pe_operand=True), lookahead="inf", broadcast_width=width
    )
    org = organisation(rows=1, cols=2, banks=8)
    res = reference_pass("bwd_weight", masks(linear(4, 1, 2), x=x, dy=dy), design(org, skipping))
    assert res.tile_compute == [1 + compute]
    # §9: mac = Σ b_k = 3; metadata: T = 4 for the stream + T per computing channel 2·4 → 12.
    assert res.actions["mac"] == 3
    assert res.actions["metadata_bits"] == 12


def test_zero_gating_counts_gated_macs():
    # FWD Linear 2 rows × 4 → 2, dense timing with zero gating: X row 0 [1, 0, 1, 0] (s = 2), row 1
    # [0, 0, 0, 1] (s = 1). Issued = T × channels = 4·2 + 4·2 = 16; nonzero = s × 2 = 4 + 2 = 6 (§9).
    x = [[1, 0, 1, 0], [0, 0, 0, 1]]
    skipping = Skipping(zero_gating=True)
    res = reference_pass("fwd", masks(linear(2, 4, 2), x=x), design(organisation(), skipping))
    assert res.actions["mac"] == 6
    assert res.actions["mac_gated"] == 10
    assert res.actions["metadata_bits"] == 0
    assert res.tile_compute == [2 + 4]  # one fold, time T = 4 (gating saves energy, not time)


def test_stream_skip_window():
    # Same layer, stream skip with L = 3: d = max(s, ⌈4/3⌉ = 2): 2 and 2 → F = 2; fold = 2 + 2 = 4.
    # With L = 1: d = max(s, 4) = 4.
    x = [[1, 0, 1, 0], [0, 0, 0, 1]]
    for window, fold in ((3, 4), (1, 6)):
        skipping = Skipping(fwd=PassSkipping(stream=True), lookahead=window)
        res = reference_pass("fwd", masks(linear(2, 4, 2), x=x), design(organisation(), skipping))
        assert res.tile_compute == [fold]
        assert res.actions["mac"] == 6  # walked s × 2 channels
        assert res.actions["metadata_bits"] == 8  # T per item


def test_ideal_runs_at_the_mapping_bound():
    # FWD Linear 4 × 3 → 2, dense: E_io = 24; items = 4 positions × 1 tile; usable = min(2, 4) ·
    # min(2, 2) = 4 → ⌈24/4⌉ = 6 (§7).
    res = reference_pass("fwd", masks(linear(4, 3, 2)), design(organisation(), ideal=True))
    assert res.cycles == 6
    assert res.tile_compute == [6]
    assert (res.blocks, res.order, res.items, res.dram_a_bytes) == ((1, 1), "channels", 0, 0)
    assert res.actions == {**dict.fromkeys(ACTIONS, 0), "mac": 24}


def test_no_bwd_data_is_all_zero():
    res = reference_pass("bwd_data", masks(linear(4, 3, 2), needs_bwd_data=False), design(organisation()))
    assert res.cycles == 0
    assert res.tile_compute == [0]
    assert res.actions == dict.fromkeys(ACTIONS, 0)


def test_compressed_storage_bytes():
    # §6: compressed X = nonzero·vb + ⌈numel/8⌉: 3 nonzero of 8 → 6 + 1 = 7.
    x = [[1, 0, 1, 0], [0, 0, 0, 1]]
    res = reference_pass(
        "fwd", masks(linear(2, 4, 2), x=x), design(organisation(), storage=Storage(activations="compressed"))
    )
    assert res.dram_a_bytes == 7
    assert res.dram_b_bytes == 16
