"""Work counts: the convolution-based counts equal a brute-force enumeration of every MAC, exactly,
and obey the sanity relations of issue 3 on real traces."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from agos.capture.trace import load_trace
from agos.density.real import iter_real_masks
from agos.workload import counts
from agos.workload.bruteforce import brute_force
from agos.workload.counts import POLICIES, InexactCountError, LayerWork, layer_work
from agos.workload.layer import LayerGeometry
from agos.workload.masks import LayerMasks
from agos.workload.passes import PASSES

ARRAYS = (
    "fwd_dense",
    "fwd_nonzero",
    "bwd_data_dense",
    "bwd_data_nonzero",
    "dx_needed",
    "bwd_weight_dense",
    "bwd_weight_nonzero",
    "bwd_weight_both",
)
N_RANDOM = 240


def _mask(shape, rng: random.Random, gen: torch.Generator, channel_dim: int = 1) -> torch.Tensor:
    """Per-channel densities, with whole channels all zero or all nonzero now and then (these take
    the exact shortcuts of the BWD-W count)."""
    levels = [rng.choice((0.0, 0.2, 0.5, 0.8, 1.0)) for _ in range(shape[channel_dim])]
    view = [1] * len(shape)
    view[channel_dim] = shape[channel_dim]
    return torch.rand(shape, generator=gen) < torch.tensor(levels).reshape(view)


def random_layer(rng: random.Random) -> tuple[LayerMasks, set[str]]:
    """A tiny random conv or Linear layer with random masks, and the features it exercises."""
    gen = torch.Generator().manual_seed(rng.randrange(2**31))
    kind = rng.choices(("conv", "grouped", "depthwise", "linear"), weights=(5, 2, 2, 1))[0]
    n = rng.randint(1, 2)
    if kind == "linear":
        c, k = rng.randint(1, 6), rng.randint(1, 5)
        g = LayerGeometry("linear", rng.randint(1, 6), c, 1, 1, k, 1, 1, 1, 1)
    else:
        groups = 1 if kind == "conv" else rng.randint(2, 4)
        cg, kg = (1, 1) if kind == "depthwise" else (rng.randint(1, 3), rng.randint(1, 3))
        if kind == "depthwise" and rng.random() < 0.3:
            kg = 2  # depth multiplier
        h, w = rng.randint(1, 7), rng.randint(1, 7)
        r, s = rng.randint(1, 3), rng.randint(1, 3)
        stride = (rng.randint(1, 3), rng.randint(1, 3))
        dilation = (rng.choice((1, 1, 2, 3)), rng.choice((1, 1, 2)))
        padding = (rng.randint(0, 2), rng.randint(0, 2))

        def out(size, kernel, st, dil, pad):
            # PyTorch's size, or one more/less (asymmetric padding, e.g. 'same' with an even kernel)
            natural = (size + 2 * pad - dil * (kernel - 1) - 1) // st + 1
            return max(1, natural + rng.choice((0, 0, 0, -1, 1)))

        p, q = out(h, r, stride[0], dilation[0], padding[0]), out(w, s, stride[1], dilation[1], padding[1])
        g = LayerGeometry(
            "conv", n, cg * groups, h, w, kg * groups, p, q, r, s, stride, padding, dilation, groups
        )
    x = _mask(g.x_shape, rng, gen)
    dy = _mask(g.y_shape, rng, gen)
    dx = _mask(g.x_shape, rng, gen)
    needs = rng.random() < 0.85
    features = {kind, f"stride{max(g.stride)}"}
    if needs is False:
        features.add("first layer")
    if max(g.padding) > 0:
        features.add("padding")
    if max(g.dilation) > 1:
        features.add("dilation")
    per_k = dy.reshape(g.n, g.k, -1).float().mean((0, 2))
    if bool(((per_k > 0) & (per_k < 1)).any()):
        features.add("dY mixed channel")
    if bool((per_k == 1).any()):
        features.add("dY all-nonzero channel")
    return LayerMasks(f"random{n}", g, needs, x, dy, dx, False), features


def assert_equal_to_oracle(masks: LayerMasks, work: LayerWork | None = None) -> None:
    work = work or layer_work(masks)
    oracle, per_output = brute_force(masks)
    for name in ARRAYS:
        got, want = getattr(work, name), getattr(oracle, name)
        assert got.dtype == want.dtype, (name, got.dtype, want.dtype)
        assert got.shape == want.shape and torch.equal(got, want), (name, masks.geometry)
    for pass_ in PASSES:
        for policy in POLICIES:
            want = torch.from_numpy(per_output[pass_, policy])
            got = work.per_output(pass_, policy)
            assert got.dtype == torch.int64 and torch.equal(got, want), (pass_, policy, masks.geometry)
            assert work.total(pass_, policy) == int(want.sum()), (pass_, policy, masks.geometry)


def test_counts_equal_brute_force_on_random_layers():
    rng = random.Random(20210915)
    seen: Counter = Counter()
    for _ in range(N_RANDOM):
        masks, features = random_layer(rng)
        assert_equal_to_oracle(masks)
        # the same without the BWD-W shortcuts (every output channel convolved)
        assert torch.equal(
            layer_work(masks, shortcuts=False).bwd_weight_both, brute_force(masks)[0].bwd_weight_both
        )
        seen.update(features)
    required = {
        "conv",
        "grouped",
        "depthwise",
        "linear",
        "stride1",
        "stride2",
        "stride3",
        "padding",
        "dilation",
        "first layer",
        "dY mixed channel",
        "dY all-nonzero channel",
    }
    assert required <= set(seen), required - set(seen)
    assert min(seen[f] for f in required) >= 10, seen


def _layer(geometry: LayerGeometry, seed: int, dy_channels=None, needs=True) -> LayerMasks:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(geometry.x_shape, generator=gen) < 0.6
    dy = torch.rand(geometry.y_shape, generator=gen) < 0.5
    if dy_channels is not None:  # force chosen output channels all-nonzero (True) or all-zero (False)
        for k, value in dy_channels.items():
            dy[:, k] = value
    dx = torch.rand(geometry.x_shape, generator=gen) < 0.7
    return LayerMasks("layer", geometry, needs, x, dy, dx, False)


@pytest.mark.parametrize(
    "geometry,dy_channels",
    [
        # depthwise, stride 2, padding 1 (mobilenet-style)
        (LayerGeometry("conv", 2, 4, 7, 7, 4, 4, 4, 3, 3, (2, 2), (1, 1), (1, 1), 4), None),
        # grouped, with all-nonzero and all-zero dY channels (one grouped conv for all)
        (
            LayerGeometry("conv", 2, 6, 5, 5, 6, 5, 5, 3, 3, (1, 1), (1, 1), (1, 1), 3),
            {0: True, 1: False, 4: True, 5: True},
        ),
        # 1×1 stride 1: the GEMM path, with an all-zero and an all-nonzero output channel
        (LayerGeometry("conv", 2, 5, 4, 3, 4, 4, 3, 1, 1), {1: False, 2: True}),
        # 'same' padding with an even kernel: one more row/column of padding at the bottom/right
        (LayerGeometry("conv", 1, 2, 6, 5, 3, 6, 5, 4, 2, (1, 1), (1, 0), (1, 1)), None),
        # dilated, strided, asymmetric
        (LayerGeometry("conv", 2, 3, 9, 8, 2, 3, 2, 3, 2, (3, 2), (2, 0), (2, 3)), None),
        # Linear: 1×1, the rows are the batch
        (LayerGeometry("linear", 7, 6, 1, 1, 5, 1, 1, 1, 1), None),
    ],
)
def test_counts_equal_brute_force_on_chosen_layers(geometry, dy_channels):
    assert_equal_to_oracle(_layer(geometry, seed=1, dy_channels=dy_channels))


def test_first_layer_has_no_bwd_data_for_any_policy():
    masks = _layer(LayerGeometry("conv", 2, 3, 6, 6, 4, 6, 6, 3, 3, padding=(1, 1)), 2, needs=False)
    work = layer_work(masks)
    for policy in POLICIES:
        assert work.total("bwd_data", policy) == 0
        assert not work.per_output("bwd_data", policy).any()
    assert work.total("fwd", "dense") == work.total("bwd_weight", "dense") == masks.geometry.macs
    assert_equal_to_oracle(masks, work)


def test_unknown_pass_or_policy_is_refused():
    work = layer_work(_layer(LayerGeometry("linear", 2, 3, 1, 1, 2, 1, 1, 1, 1), 0))
    with pytest.raises(ValueError, match="unknown pass"):
        work.total("bwd", "dense")
    with pytest.raises(ValueError, match="unknown policy"):
        work.per_output("fwd", "outputs")


# -- precision: fp32 only where exact, verified, float64 otherwise --------------------------------


def test_precision_choice_follows_the_largest_possible_count():
    assert counts._dtype_for(2**24 - 1) == torch.float32
    assert counts._dtype_for(2**24) == torch.float64
    with pytest.raises(OverflowError):
        counts._dtype_for(2**53)


def _perturbing(monkeypatch, fn_name: str, dtypes, delta: float):
    """Make a convolution inexact in the given dtypes, as a non-plain-sum algorithm might be."""
    module = counts.torch.nn.grad
    original = getattr(module, fn_name)
    calls = Counter()

    def perturbed(*args, **kwargs):
        out = original(*args, **kwargs)
        calls[out.dtype] += 1
        if out.dtype in dtypes:
            out = out + delta
        return out

    monkeypatch.setattr(module, fn_name, perturbed)
    return calls


@pytest.mark.parametrize("delta", [0.25, 1.0])  # not integral; integral but wrong (caught by checksum)
def test_inexact_fp32_falls_back_to_float64(monkeypatch, delta):
    masks = _layer(LayerGeometry("conv", 2, 3, 6, 6, 4, 3, 3, 3, 3, (2, 2), (1, 1)), 4)
    calls = _perturbing(monkeypatch, "conv2d_weight", {torch.float32}, delta)
    work = layer_work(masks)
    assert calls[torch.float64] >= 1  # it fell back ...
    assert_equal_to_oracle(masks, work)  # ... and the counts are still exact


def test_inexact_float64_is_an_error(monkeypatch):
    masks = _layer(LayerGeometry("conv", 2, 3, 6, 6, 4, 3, 3, 3, 3, (2, 2), (1, 1)), 4)
    _perturbing(monkeypatch, "conv2d_weight", {torch.float32, torch.float64}, 1.0)
    with pytest.raises(InexactCountError, match="BWD-W"):
        layer_work(masks)


def test_large_counts_use_float64(monkeypatch):
    monkeypatch.setattr(counts, "FP32_EXACT", 8)  # pretend fp32 were exact only below 8
    calls = _perturbing(monkeypatch, "conv2d_weight", set(), 0.0)
    masks = _layer(LayerGeometry("conv", 2, 3, 6, 6, 4, 6, 6, 3, 3, padding=(1, 1)), 5)
    assert_equal_to_oracle(masks)
    assert calls[torch.float64] >= 1 and calls[torch.float32] == 0


# -- real traces ---------------------------------------------------------------------------------


def test_real_mixed_trace_equals_brute_force(mixed_trace):
    for masks in iter_real_masks(load_trace(mixed_trace)):
        assert_equal_to_oracle(masks)


@pytest.mark.parametrize("fixture", ["mixed_trace", "resnet18_trace"])
def test_sanity_relations_on_real_traces(request, fixture):
    trace = load_trace(request.getfixturevalue(fixture))
    uniform_bwd_data = 0
    for layer, masks in zip(trace.layers, iter_real_masks(trace), strict=True):
        g = layer.geometry
        work = layer_work(masks)
        assert torch.equal(work.bwd_weight_both, layer_work(masks, shortcuts=False).bwd_weight_both)
        t = {p: {policy: work.total(p, policy) for policy in POLICIES} for p in PASSES}
        for p in PASSES:
            assert t[p]["input+output"] <= min(t[p]["input"], t[p]["output"]) <= t[p]["dense"], (
                layer.name,
                p,
            )
            assert t[p]["input+output"] >= 0
        # dense work is the geometry's valid-tap MACs (none in BWD-D without a BWD-D)
        assert t["fwd"]["dense"] == t["bwd_weight"]["dense"] == layer.macs
        assert t["bwd_data"]["dense"] == (layer.macs if layer.needs_bwd_data else 0)
        # no output sparsity in FWD or BWD-W
        assert (
            t["fwd"]["output"] == t["fwd"]["dense"] and t["bwd_weight"]["output"] == t["bwd_weight"]["dense"]
        )
        # output-policy BWD-D = dense × (1 − dX skip fraction), the fraction read from the trace's own
        # mask count. Exact where every input pixel is reached by equally many taps (1×1 stride 1,
        # Linear); elsewhere (edges, stride holes) bounded by the least- and most-reached pixel.
        if layer.needs_bwd_data:
            needed = layer.dx_needed.count if layer.dx_needed is not None else g.n * g.c * g.h * g.w
            reach = work.bwd_data_dense
            if int(reach.min()) == int(reach.max()):
                uniform_bwd_data += 1
                assert t["bwd_data"]["output"] * (g.n * g.c * g.h * g.w) == t["bwd_data"]["dense"] * needed
            else:
                assert int(reach.min()) * needed <= t["bwd_data"]["output"] <= int(reach.max()) * needed
        # 1×1, stride 1: every X element is read once per output channel of its group, so the
        # input-policy FWD and BWD-W MACs are dense × the trace's own X nonzero fraction
        if (g.r, g.s, g.stride, g.padding) == (1, 1, (1, 1), (0, 0)) and (g.p, g.q) == (g.h, g.w):
            x_numel = g.n * g.c * g.h * g.w
            assert t["fwd"]["input"] * x_numel == t["fwd"]["dense"] * layer.x_nonzero.count
            assert t["bwd_weight"]["input"] * x_numel == t["bwd_weight"]["dense"] * layer.x_nonzero.count
    assert uniform_bwd_data >= 2  # the exact relation was exercised


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_fp32_is_the_normal_path_and_global_settings_are_restored(monkeypatch, two_threads):
    precision = torch.backends.mkldnn.conv.fp32_precision
    calls = _perturbing(monkeypatch, "conv2d_weight", set(), 0.0)
    for geometry in (
        LayerGeometry("conv", 2, 3, 6, 6, 4, 6, 6, 3, 3, padding=(1, 1)),  # small: one thread, no oneDNN
        LayerGeometry("conv", 4, 32, 16, 16, 32, 16, 16, 3, 3, padding=(1, 1)),  # above SMALL_LAYER_MACS
    ):
        layer_work(_layer(geometry, 6))
        assert torch.get_num_threads() == 2
        assert torch._C._get_mkldnn_enabled()
        assert torch.backends.mkldnn.conv.fp32_precision == precision
    assert calls[torch.float32] == 2 and calls[torch.float64] == 0
