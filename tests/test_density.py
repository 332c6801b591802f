"""Statistical sparsity: seeded masks of given zero fractions, and the published profile's mapping
onto torchvision's VGG16, ResNet-34 and ResNet-50 (their tiny twins in the default tier)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from agos.capture.trace import load_trace
from agos.cli import main
from agos.density import layer_masks, parse_density, resolve_density
from agos.density.profiles import (
    DATA_FILE,
    checkpoints,
    map_profile,
    published_info,
    published_models,
    published_table,
    resolve_profile,
)
from agos.density.real import iter_real_masks
from agos.density.select import statistical_source
from agos.density.statistical import bernoulli_nonzero, plan_layers
from agos.errors import AgosError
from tests.models import REAL_NETWORK

SHARED_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "sparsity" / DATA_FILE


def _tolerance(p: float, n: int) -> float:
    """Each realised fraction is a binomial mean of n independent draws: allow 5 standard
    deviations (plus half an element), i.e. 0.04 at p = 0.5 on the smallest (4096-element) masks."""
    return 5 * math.sqrt(p * (1 - p) / n) + 0.5 / n


def _zero(mask: torch.Tensor) -> float:
    return 1 - mask.float().mean().item()


class Published(dict):
    """model → trace folder; `real`: torchvision's networks, else their tiny twins (tests.models:
    the same classes, modules, names and ReLUs, narrow), which name the profile they take."""

    def __init__(self, paths: dict[str, Path], real: bool):
        super().__init__(paths)
        self.real = real

    def spec(self, model: str, tail: str = "") -> str:
        """The --density text of the model's published profile: found from the trace's own model
        (the real networks), or named (their twins)."""
        return "profile:sparsetrain" + ("" if self.real else f"/{model}") + tail


@pytest.fixture(scope="module", params=["tiny", pytest.param("real", marks=REAL_NETWORK)])
def published_traces(request, tmp_path_factory) -> Published:
    """vgg16, resnet34, resnet50 at 32 px, batch 2 — their tiny twins in the default tier, the
    networks themselves in CI."""
    from agos.api import trace as capture_trace
    from agos.inputs.options import RunOptions
    from tests.models import TINY

    real = request.param == "real"
    out = {}
    for model in ("vgg16", "resnet34", "resnet50"):
        path = tmp_path_factory.mktemp("published") / model
        options = RunOptions(model=model if real else TINY[model], batch_size=2, image_size=32, device="cpu")
        capture_trace(options, path)
        out[model] = path
    return Published(out, real)


def _own(notes: list[str]) -> list[str]:
    """A mapping's notes, but for the one a twin gets for naming another model's profile."""
    return [n for n in notes if "measured on" not in n]


def _csv_rows(model: str) -> dict[tuple[int, int], tuple[str, float]]:
    """The packaged CSV read independently of agos's loader."""
    from importlib import resources

    text = resources.files("agos.density").joinpath("data", DATA_FILE).read_text()
    rows = {}
    for r in csv.DictReader(text.splitlines()):
        if r["model"] == model:
            rows[(int(r["row_index"]), int(r["checkpoint"]))] = (r["row_label"], float(r["zero_fraction"]))
    return rows


# -- the shipped data ---------------------------------------------------------------------------


def test_packaged_csv_is_the_shared_one():
    from importlib import resources

    packaged = resources.files("agos.density").joinpath("data", DATA_FILE).read_bytes()
    if not SHARED_CSV.is_file():
        pytest.skip("../shared/sparsity is not beside this checkout (clean clone)")
    assert packaged == SHARED_CSV.read_bytes()


def test_published_models_and_checkpoints():
    assert published_models() == ["vgg16", "resnet34", "resnet50"]
    assert checkpoints("resnet50") == list(range(1, 91))
    assert checkpoints("ResNet34")[-1] == 100
    vgg = published_info("vgg16")
    assert (vgg.first, vgg.last, vgg.activation_rows, vgg.pooled_rows) == (1, 72, 15, 5)
    assert vgg.spec("first") == "profile:sparsetrain:first"
    assert published_info("resnet18") is None
    with pytest.raises(AgosError, match="resnet18"):
        checkpoints("resnet18")


# -- mapping the published rows -----------------------------------------------------------------


def test_vgg16_mapping(published_traces):
    trace = load_trace(published_traces["vgg16"])
    acts = [a.name for a in trace.manifest.activations]
    assert len(acts) == 15
    mapping = map_profile(trace, resolve_profile("sparsetrain", "first", "vgg16"))
    assert not mapping.unmatched_rows and not mapping.unmapped_activations
    by_label = {m.row.label: m for m in mapping.matches}
    assert len(by_label) == 20
    convs = [by_label[f"conv{i}"].activation for i in range(13)]
    assert [*convs, by_label["fc1"].activation, by_label["fc2"].activation] == acts
    assert [by_label[f"pool{i}"].x_layers for i in range(5)] == [
        ("features.5",),
        ("features.10",),
        ("features.17",),
        ("features.24",),
        ("classifier.0",),
    ]
    # pool rows describe the max-pool of the ReLU before them: pool0 follows conv1
    assert by_label["pool0"].activation == by_label["conv1"].activation
    csv_rows = _csv_rows("vgg16")
    for m in mapping.matches:
        assert csv_rows[(m.row.order, 1)] == (m.row.label, m.row.zero_fraction)


@pytest.mark.parametrize(("model", "rows"), [("resnet34", 33), ("resnet50", 49)])
def test_resnet_mapping_one_to_one_in_graph_order(published_traces, model, rows):
    trace = load_trace(published_traces[model])
    acts = [a.name for a in trace.manifest.activations]
    mapping = map_profile(trace, resolve_profile("sparsetrain", None, model))
    assert len(acts) == rows and len(mapping.matches) == rows
    assert [m.activation for m in mapping.matches] == acts
    assert not mapping.unmatched_rows and not mapping.unmapped_activations and not _own(mapping.notes)
    assert mapping.matches[0].activation == "relu" and mapping.matches[0].x_layers[0] == "layer1.0.conv1"
    last = checkpoints(model)[-1]
    csv_rows = _csv_rows(model)
    for m in mapping.matches:
        assert csv_rows[(m.row.order, last)][1] == m.row.zero_fraction


def _separated(acts, values, identity, behind_bn, shift: int) -> int:
    """How many identity-block post-add ReLUs lie below every ReLU behind BN, with the rows
    shifted by `shift` against the activations."""
    got = {a: values[i + shift] for i, a in enumerate(acts) if 0 <= i + shift < len(acts)}
    floor = min(v for a, v in got.items() if a in behind_bn)
    return sum(got[a] < floor for a in identity if a in got)


@pytest.mark.parametrize(("model", "identity_below"), [("resnet50", 12), ("resnet34", 11)])
def test_resnet_row_order_agrees_with_the_data(published_traces, model, identity_below):
    """At checkpoint 1 a post-add ReLU whose shortcut is a ReLU output (identity block) has fewer
    zeros than every ReLU behind a BN output; the rows shifted by one against the ReLUs lose this."""
    trace = load_trace(published_traces[model])
    acts = [a.name for a in trace.manifest.activations]
    fr = statistical_source(trace, published_traces.spec(model, ":first")).fractions.activations
    values = [fr[a] for a in acts]
    post_add = {layer.y_act for layer in trace.layers if "add" in layer.y_consumer}
    downsample = {layer.y_act for layer in trace.layers if "downsample" in layer.name}
    identity = post_add - downsample
    behind_bn = set(acts) - identity - {"relu"}
    assert _separated(acts, values, identity, behind_bn, 0) == identity_below
    assert _separated(acts, values, identity, behind_bn, -1) == 0
    assert _separated(acts, values, identity, behind_bn, 1) == 0


def test_profile_for_another_model_is_refused(resnet18_trace, published_traces, tmp_path):
    trace = load_trace(resnet18_trace)
    with pytest.raises(AgosError, match="no published activation profile for 'resnet18'"):
        statistical_source(trace, "profile:sparsetrain")
    with pytest.raises(AgosError, match="49 activation rows, the resnet18 trace has 17"):
        statistical_source(trace, "profile:sparsetrain/resnet50")
    long_copy = tmp_path / "long.csv"
    long_copy.write_text(
        "\n".join(["model,row_index,row_label,checkpoint,zero_fraction", "resnet50,1,1,1,0.3"])
    )
    with pytest.raises(AgosError, match="no activation profile for 'resnet18'"):
        statistical_source(trace, f"profile:{long_copy}")
    # explicitly asked for, with the same ReLUs: applied, and the mapping says so
    vgg = load_trace(published_traces["vgg16"])
    vgg.manifest.provenance.model = "vgg16_custom"
    source = statistical_source(vgg, "profile:sparsetrain/vgg16:1")
    assert any("measured on vgg16" in note for note in source.mapping.notes)


def test_checkpoints_select_columns(published_traces):
    trace = load_trace(published_traces["resnet50"])
    csv_rows = _csv_rows("resnet50")
    for spec, cp in (("first", 1), ("last", 90), ("45", 45), (None, 90)):
        text = published_traces.spec("resnet50", f":{spec}" if spec else "")
        fr = statistical_source(trace, text).fractions.activations
        assert fr["relu"] == csv_rows[(1, cp)][1]
        assert fr["layer4_2_relu_2"] == csv_rows[(49, cp)][1]
    assert resolve_density(trace, published_traces.spec("resnet50"), 3).label == (
        published_traces.spec("resnet50", ":last (resnet50 checkpoint 90 of 90) (seed 3)")
    )
    with pytest.raises(AgosError, match=r"1\.\.90; checkpoint 95 does not exist"):
        statistical_source(trace, published_traces.spec("resnet50", ":95"))


# -- generated masks ----------------------------------------------------------------------------


def _check_realised(trace, density: str, seed: int = 0) -> int:
    source = statistical_source(trace, density)
    plans = plan_layers(trace, source.fractions)
    checked = 0
    for plan, masks in zip(plans, layer_masks(trace, density, seed), strict=True):
        assert masks.source == f"{source.fractions.label} (seed {seed})"
        for target, mask in (
            (plan.x.target, masks.x_nonzero),
            (plan.dy.target, masks.dy_nonzero),
            (plan.dx.target if masks.needs_bwd_data else None, masks.dx_needed),
        ):
            if target is None:
                continue
            assert abs(_zero(mask) - target) <= _tolerance(target, mask.numel()), (masks.name, target)
            checked += 1
    return checked


def test_uniform_realises_its_targets(resnet18_trace):
    trace = load_trace(resnet18_trace)
    for s in (0.0, 0.3, 0.8, 1.0):
        source = statistical_source(trace, f"uniform:{s}")
        assert set(source.fractions.activations.values()) == {s}
        plans = plan_layers(trace, source.fractions)
        reused = [p for p in plans if p.x.kind == "reuse"]
        assert len(reused) >= 15 and all(p.x.target == pytest.approx(s) for p in reused)
        assert _check_realised(trace, f"uniform:{s}") >= 2 * len(reused)


def test_profiles_realise_their_targets(published_traces):
    for model in ("vgg16", "resnet50"):
        trace = load_trace(published_traces[model])
        assert _check_realised(trace, published_traces.spec(model, ":last"), seed=1) > 30


def test_deterministic_per_seed_and_different_across_seeds(resnet18_trace):
    trace = load_trace(resnet18_trace)
    a = list(layer_masks(trace, "uniform:0.5", seed=0))
    b = list(layer_masks(trace, "uniform:0.5", seed=0))
    c = list(layer_masks(trace, "uniform:0.5", seed=1))
    for ma, mb in zip(a, b, strict=True):
        for field in ("x_nonzero", "dy_nonzero", "dx_needed"):
            assert torch.equal(getattr(ma, field), getattr(mb, field))
    assert torch.equal(a[0].x_nonzero, c[0].x_nonzero)  # the network input stays real
    assert all(not torch.equal(ma.x_nonzero, mc.x_nonzero) for ma, mc in zip(a[1:], c[1:], strict=True))


def test_activation_masks_are_seeded_by_name(resnet18_trace):
    """X fed by one activation is that activation's own seeded mask, whatever else is drawn."""
    trace = load_trace(resnet18_trace)
    acts = {a.name: a for a in trace.manifest.activations}
    plans = plan_layers(trace, statistical_source(trace, "uniform:0.4").fractions)
    for plan, masks in zip(plans, layer_masks(trace, "uniform:0.4", seed=7), strict=True):
        if plan.x.kind == "reuse" and plan.x.keep == 1:
            (name,) = plan.x.parts
            expected = bernoulli_nonzero(tuple(acts[name].shape), 0.4, 7, "act", name)
            assert torch.equal(masks.x_nonzero, expected.reshape(masks.x_nonzero.shape))


def test_dy_zero_covers_activation_zero_where_relu_follows_directly(published_traces):
    trace = load_trace(published_traces["vgg16"])
    density = published_traces.spec("vgg16", ":last")
    source = statistical_source(trace, density)
    acts = {a.name: a for a in trace.manifest.activations}
    plans = plan_layers(trace, source.fractions)
    masks = list(layer_masks(trace, density, seed=2))
    direct = 0
    for i, (plan, m) in enumerate(zip(plans, masks, strict=True)):
        if plan.dy.kind != "act":
            continue
        direct += 1
        name = plan.dy.act
        act = bernoulli_nonzero(tuple(acts[name].shape), source.fractions.activations[name], 2, "act", name)
        assert not (m.dy_nonzero & ~act.reshape(m.dy_nonzero.shape)).any()
        nxt = masks[i + 1] if i + 1 < len(masks) else None
        if nxt is not None and plans[i + 1].x.parts == (name,) and plans[i + 1].x.keep == 1:
            # the correlation survives: the next layer's X zeros are zeros of this dY
            assert not (m.dy_nonzero & ~nxt.x_nonzero.reshape(m.dy_nonzero.shape)).any()
    assert direct == 15  # every VGG16 layer but the last feeds a ReLU directly


def test_rules_kept_real(mixed_trace):
    """Conservative layers stay all-needed; non-ReLU inputs and BN-fed dY stay real."""
    trace = load_trace(mixed_trace)
    real = list(iter_real_masks(trace))
    stat = list(layer_masks(trace, "uniform:0.7", seed=0))
    plans = plan_layers(trace, statistical_source(trace, "uniform:0.7").fractions)
    for layer, r, s, plan in zip(trace.layers, real, stat, plans, strict=True):
        assert s.needs_bwd_data == r.needs_bwd_data
        assert s.dx_all_needed == r.dx_all_needed
        if layer.dx_needed is None:
            assert s.dx_needed.all()
        if not layer.x_acts:
            assert torch.equal(s.x_nonzero, r.x_nonzero)
        if layer.y_consumer.startswith("BatchNorm"):
            assert torch.equal(s.dy_nonzero, r.dy_nonzero) and plan.dy.kind == "real"
        if plan.dx.kind == "from_x":
            assert not (s.dx_needed & ~s.x_nonzero).any()
    by_name = {p.name: p for p in plans}
    assert by_name["d"].x.kind == "reuse" and by_name["d"].x.parts == ("relu_2", "relu6")  # cat, per part
    assert by_name["a"].x.kind == "draw" and "pooling exponent" in by_name["a"].x.rule
    assert {p.name for p in plans if p.x.kind == "real"} == {"stem", "e", "f", "h"}


def test_user_profiles(resnet18_trace, tmp_path):
    trace = load_trace(resnet18_trace)
    acts = [a.name for a in trace.manifest.activations]
    by_index = tmp_path / "by_index.csv"
    by_index.write_text("# mine\nindex,zero_fraction\n1,0.1\n3,0.9\n")
    fr = statistical_source(trace, f"profile:{by_index}").fractions.activations
    assert fr == {acts[0]: 0.1, acts[2]: 0.9}
    mapping = statistical_source(trace, f"profile:{by_index}").mapping
    assert len(mapping.unmapped_activations) == len(acts) - 2
    by_name = tmp_path / "by_name.csv"
    by_name.write_text(f"activation,zero_fraction,checkpoint\n{acts[1]},0.2,1\n{acts[1]},0.6,2\n")
    assert statistical_source(trace, f"profile:{by_name}:first").fractions.activations == {acts[1]: 0.2}
    assert statistical_source(trace, f"profile:{by_name}").fractions.activations == {acts[1]: 0.6}
    plans = plan_layers(trace, statistical_source(trace, f"profile:{by_name}").fractions)
    assert [p.name for p in plans if p.x.kind != "real"] == ["layer1.0.conv2"]


@pytest.mark.parametrize(
    ("text", "content", "message"),
    [
        ("uniform:1.5", None, "outside [0, 1]"),
        ("uniform:-0.1", None, "outside [0, 1]"),
        ("uniform:half", None, "not a zero fraction"),
        ("uniform:nan", None, "outside [0, 1]"),
        ("dense", None, "is not real, uniform:S"),
        ("profile:", None, "name a profile"),
        ("profile:sparsetrain:0", None, "1-based"),
        ("profile:sparsetrain:latest", None, "not a 1-based integer, first or last"),
        ("profile:missing.csv", None, "does not exist"),
        ("profile:{f}", "index,zero_fraction\n1,1.2\n", "outside [0, 1]"),
        ("profile:{f}", "index,zero_fraction\n1,0.2\n1,0.3\n", "appears twice"),
        ("profile:{f}", "index,zero_fraction\n99,0.2\n", "beyond the trace's 17"),
        ("profile:{f}", "layer,zero_fraction\nrelu,0.2\n", "expected a header"),
        ("profile:{f}", "activation,zero_fraction\nrelux,0.2\n", "did you mean relu"),
        ("profile:{f}:3", "index,zero_fraction\n1,0.2\n", "no checkpoint column"),
        ("profile:{f}:3", "index,zero_fraction,checkpoint\n1,0.2,1\n", "checkpoint 3 does not exist"),
        ("profile:{f}", "index,zero_fraction\n1,abc\n", "is not a number"),
    ],
)
def test_bad_specs_are_one_line(resnet18_trace, tmp_path, capsys, text, content, message):
    f = tmp_path / "p.csv"
    if content is not None:
        f.write_text(content)
    text = text.format(f=f)
    trace = load_trace(resnet18_trace)
    with pytest.raises(AgosError, match=None) as err:
        list(layer_masks(trace, text))
    assert message in str(err.value) and "\n" not in str(err.value)
    code = main(["density", str(resnet18_trace), "--density", text])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and message in lines[0]


def test_parse_density():
    assert parse_density("real").kind == "real"
    assert parse_density("uniform:0.6").zero_fraction == 0.6
    spec = parse_density("profile:sparsetrain:LAST")
    assert (spec.file, spec.checkpoint) == ("sparsetrain", "last")
    spec = parse_density("profile:/data/a:b.csv")
    assert (spec.file, spec.checkpoint) == ("/data/a:b.csv", None)


def test_cli_density(published_traces, tmp_path, capsys):
    out = tmp_path / "vgg.json"
    spec = published_traces.spec("vgg16")
    code = main(["density", str(published_traces["vgg16"]), "--density", spec, "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "max-pool of features_29" in printed and "classifier.0" in printed
    data = json.loads(out.read_text())
    summary = data["density_mapping"]
    assert len(summary["rows"]) == 20 and len(summary["layers"]) == 16
    assert summary["profile"]["unmatched_rows"] == [] and summary["profile"]["unmapped_activations"] == []
    assert data["density"]["label"] == spec + ":last (vgg16 checkpoint 72 of 72) (seed 0)"
    assert data["density"]["spec"] == spec and data["density"]["seed"] == 0
    assert summary["totals"]["x_realised"] > summary["totals"]["x_real"]  # converged beats init


def test_published_table_is_complete():
    table = published_table()
    assert {m: len(rows) for m, rows in table.models.items()} == {"vgg16": 20, "resnet34": 33, "resnet50": 49}
