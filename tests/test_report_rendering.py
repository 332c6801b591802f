"""What a reader sees: the report's figures and the terminal's tables show every number they are
given, legibly. Each test pins a defect a first-hour user met (issue 22, item 7): a literal
`<span class="ok">yes</span>` in a table, the X-zero line hidden under the dX line, the first
layer's missing dX drawn as 0, ideal's 35–50× bars flattening the real designs, 50+ layer names on
one axis, a zigzag Pareto front with designs and densities alike, raw bytes on an axis, design
names cut to `agos@syst…` by a squeezed terminal table, no --version, no progress."""

from __future__ import annotations

import io
import itertools
import math

import numpy as np
import pytest
from rich.console import Console

from agos.analysis.analyse import analyse
from agos.arch.load import load_archs
from agos.capture.trace import load_trace
from agos.density.select import resolve_density
from tests.cli_helpers import run_cli


@pytest.fixture(scope="module")
def mixed_sim(mixed_trace):
    trace = load_trace(mixed_trace)
    designs = load_archs("input-skip@systolic,agos@systolic,agos@rows,ideal@systolic")
    sections = ["sparsity", "realised", "bounds", "simulation"]
    return analyse(trace, resolve_density(trace, "real"), sections, designs, workers=1)


def test_lossless_renders_as_markup_in_every_table():
    import jinja2

    from agos.report.html import _lossless

    verify = {"soundness": {"bit_identical": True}, "engine": {"step": {"problem": None}}}
    env = jinja2.Environment(autoescape=True)
    page = env.from_string("<td>{{ lossless(v) }}</td>").render(lossless=_lossless, v=verify)
    assert page == '<td><span class="ok">yes</span></td>'  # not &lt;span …&gt;, with or without |safe


def test_sparsity_figure_draws_x_over_dx_and_no_dx_without_bwd_data(mixed_sim):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    from agos.report import sparsity

    layers = mixed_sim.sparsity.layers
    assert not layers[0].needs_bwd_data  # the first layer: nothing upstream needs dX
    fig = sparsity.figure(mixed_sim)
    frac_axes = [ax for ax in fig.axes if ax.get_ylabel() == "fraction"]
    lines = {line.get_label(): line for ax in frac_axes for line in ax.get_lines()}
    x, dx = lines["X zero (FWD input sparsity)"], lines["dX skippable (output sparsity)"]
    assert x.get_zorder() > dx.get_zorder()  # X is drawn over dX, which it often equals
    ys = np.asarray(dx.get_ydata(), dtype=float)
    assert math.isnan(ys[0]) and not np.isnan(ys[1:]).any()  # no dX plotted where there is none
    assert any("no BWD-D" in t.get_text() for ax in frac_axes for t in ax.texts)
    macs_axes = [ax for ax in fig.axes if ax.get_ylabel() == "MACs/pass"]
    assert all(isinstance(ax.yaxis.get_minor_formatter(), NullFormatter) for ax in macs_axes)
    assert all(len(ax.get_xticks()) <= 30 for ax in macs_axes)
    assert all(ax.get_legend() is None for ax in fig.axes)  # the legend is above, not on the data
    plt.close(fig)


def test_sparsity_figure_splits_deep_networks_into_panels():
    from agos.report.layerplot import panels

    assert [len(p) for p in panels(53)] == [27, 26]  # mobilenet_v2
    assert [len(p) for p in panels(121)] == [25, 25, 25, 25, 21]  # densenet121
    assert [len(p) for p in panels(8)] == [8]
    assert [i for p in panels(53) for i in p] == list(range(53))


def test_simulate_figure_keeps_ideal_off_the_real_designs_scale(mixed_sim):
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    from agos.report import simulate

    sim = mixed_sim.simulation
    fig = simulate.figure(mixed_sim)
    speed_axes = [ax for ax in fig.axes if "speedup" in ax.get_ylabel()]
    bars = {c.get_label() for ax in speed_axes for c in ax.collections if isinstance(c, PolyCollection)}
    assert bars == {"input-skip@systolic", "agos@systolic", "agos@rows"}  # ideal is not a bar
    real_top = max(
        layer.speedup_over_twin.iteration
        for n in bars
        for layer in sim.designs[n].layers
        if layer.speedup_over_twin.iteration is not None
    )
    for ax in speed_axes:
        assert real_top < ax.get_ylim()[1] < 1.2 * real_top + 0.1  # the scale is the real designs'
    ideal = [layer.speedup_over_twin.iteration for layer in sim.designs["ideal@systolic"].layers]
    above = [v for v in ideal if v is not None and v > speed_axes[0].get_ylim()[1]]
    texts = [t.get_text() for ax in speed_axes for t in ax.texts]
    assert len([t for t in texts if t.startswith("▲")]) == len(above)  # each one's value is written
    assert all(ax.get_legend() is None for ax in speed_axes)
    plt.close(fig)


LONG = "features.denseblock4.denselayer16.conv2"  # densenet121's longest layer names, and 121 of them


def _deep(analysis, n: int = 61):
    """The analysis with its layers repeated to `n` under long names: a deep network's three panels."""
    sparsity = analysis.sparsity
    layers = [
        sparsity.layers[i % len(sparsity.layers)].model_copy(update={"index": i, "name": f"{LONG}.{i}"})
        for i in range(n)
    ]
    designs = {
        name: d.model_copy(
            update={
                "layers": [
                    d.layers[i % len(d.layers)].model_copy(update={"name": f"{LONG}.{i}"}) for i in range(n)
                ]
            }
        )
        if d.layers
        else d
        for name, d in analysis.simulation.designs.items()
    }
    return analysis.model_copy(
        update={
            "sparsity": sparsity.model_copy(update={"layers": layers}),
            "simulation": analysis.simulation.model_copy(update={"designs": designs}),
        }
    )


def _overlap(a, b) -> float:
    return max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0)) * max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))


@pytest.mark.parametrize("kind", ["sparsity", "simulate"])
@pytest.mark.parametrize("depth", ["shallow", "deep"])
def test_saved_figures_clip_no_label_and_keep_legends_off_the_axes(mixed_sim, kind, depth):
    """As saved (laid out once, no `bbox_inches="tight"` to rescue a label outside the canvas):
    every text inside the figure, the rotated layer names and the outermost tick labels included;
    no legend over any axes; the tick labels of an axis apart from each other."""
    import matplotlib.pyplot as plt
    from matplotlib.legend import Legend
    from matplotlib.text import Text

    from agos.report import layerplot, simulate, sparsity

    analysis = _deep(mixed_sim) if depth == "deep" else mixed_sim
    fig = (sparsity if kind == "sparsity" else simulate).figure(analysis)
    layerplot.lay_out(fig, 120)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    canvas = fig.bbox
    axes_ticks = {ax: [_drawn_tick_labels(ax.xaxis), _drawn_tick_labels(ax.yaxis)] for ax in fig.axes}
    every_tick = {
        id(label)
        for ax in fig.axes
        for axis in (ax.xaxis, ax.yaxis)
        for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]
        for label in (tick.label1, tick.label2)
    }
    shown = [t for labels in axes_ticks.values() for group in labels for t in group]
    shown += [t for t in fig.findobj(Text) if id(t) not in every_tick and t.get_visible() and t.get_text()]
    assert len([t for t in shown if LONG in t.get_text()]) == (61 if depth == "deep" else 0)
    for text in shown:
        box = text.get_window_extent(renderer)
        assert (
            box.x0 >= canvas.x0 - 0.5
            and box.x1 <= canvas.x1 + 0.5
            and box.y0 >= canvas.y0 - 0.5
            and box.y1 <= canvas.y1 + 0.5
        ), f"{text.get_text()!r} at {box.bounds} is cut by the canvas {canvas.bounds}"
    legends = fig.findobj(Legend)
    assert legends
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert all(_overlap(box, ax.bbox) == 0 for ax in fig.axes), "a legend covers an axes"
    for ax, groups in axes_ticks.items():
        for labels in groups:
            boxes = [t.get_window_extent(renderer) for t in labels]
            assert all(_overlap(a, b) == 0 for a, b in itertools.combinations(boxes, 2)), ax.get_ylabel()
    plt.close(fig)


def _drawn_tick_labels(axis) -> list:
    """The major tick labels an axis draws: those of ticks inside its view (a log locator also
    returns decades beyond it, whose labels are kept but never drawn)."""
    scale = axis.get_transform()
    low, high = sorted(scale.transform(np.array(axis.get_view_interval(), dtype=float)))
    slack = 1e-9 * (high - low)
    return [
        tick.label1
        for tick in axis.get_major_ticks(len(axis.get_majorticklocs()))
        if low - slack <= scale.transform(np.array([tick.get_loc()], dtype=float))[0] <= high + slack
        and tick.label1.get_visible()
        and tick.label1.get_text()
    ]


def test_first_figure_shows_every_design_over_its_twin_and_equal_area_dense(mixed_sim):
    """Built from what results.json carries (`records.Figures`, the real entry of a model)."""
    import matplotlib.pyplot as plt

    from agos.report import summary
    from agos.reproduce.records import Figures

    entry = Figures(**Figures.fields_of(mixed_sim)).model_dump(mode="json")
    results = {
        "models": {"mixed": {"designs": entry["designs"]}},
        "settings": {
            "run": {"weights": "init", "data": "samples", "batch_size": 4, "image_size": 16, "seed": 3}
        },
    }
    assert summary.organisations(results) == ["systolic", "rows"]
    fig = summary.figure(results, "systolic")
    twin_ax, area_ax = fig.axes[:2]
    d = {
        p: e
        for p, e in ((e["preset"], e) for e in entry["designs"].values())
        if e["organisation"] == "systolic"
    }
    heights = {c.get_label(): c.patches[0].get_y() + c.patches[0].get_height() for c in twin_ax.containers}
    assert set(heights) == {"input-skip", "agos"}
    for preset, top in heights.items():
        assert top == pytest.approx(d[preset]["speedup_over_twin"]["iteration"])
    agos = d["agos"]
    area_top = {c.get_label(): c.patches[0].get_y() + c.patches[0].get_height() for c in area_ax.containers}
    assert area_top["agos"] == pytest.approx(agos["speedup_over_best_dense_equal_area"])
    diamonds = np.concatenate([c.get_offsets()[:, 1] for c in area_ax.collections])
    detail = agos["best_dense_equal_area_detail"]
    expected = detail["time_ms"]["backprop"] / agos["time_ms"]["backprop"]  # backprop over equal-area dense
    assert any(v == pytest.approx(expected) for v in diamonds)
    plt.close(fig)


def test_sweep_fronts_are_staircases_and_points_tell_design_and_density_apart():
    import matplotlib.pyplot as plt

    from agos.sweep.plot import _bytes, front_2d, pareto_figure

    points = [(4.0, 1.1), (5.0, 1.3), (6.0, 1.2), (7.0, 1.5), (4.5, 1.0)]
    front = front_2d(points)
    assert front == [0, 1, 3]
    assert all(
        points[a][0] < points[b][0] and points[a][1] < points[b][1] for a, b in itertools.pairwise(front)
    )
    rows = [
        {"design": d, "density": s, "area_mm2": a, "speedup_iteration": v, "energy_j": e}
        for d, s, a, v, e in (
            ("agos@systolic", "real", 4.0, 1.1, 0.09),
            ("agos@systolic", "uniform:0.8", 5.0, 1.3, 0.08),
            ("input-skip@rows", "real", 6.0, 1.2, 0.10),
            ("input-skip@rows", "uniform:0.8", 7.0, 1.5, 0.07),
        )
    ]
    fig = pareto_figure(rows, "test")
    styles = {(tuple(c.get_facecolor()[0]), c.get_paths()[0].vertices.shape) for c in fig.axes[0].collections}
    assert len(styles) == 4  # every (design, density) pair looks different
    assert [t.get_text() for t in fig.legends[0].get_texts()][:4] == [
        "agos@systolic",
        "input-skip@rows",
        "real",
        "uniform:0.8",
    ]
    plt.close(fig)
    assert (_bytes(262144), _bytes(2097152), _bytes(512)) == ("256 KiB", "2 MiB", "512 B")


def test_terminal_tables_never_cut_a_design_name(mixed_trace, capsys):
    from agos.report import simulate

    trace = load_trace(mixed_trace)
    designs = load_archs("agos,input-skip")
    analysis = analyse(trace, resolve_density(trace, "real"), ["simulation"], designs, workers=1)
    names = set(analysis.simulation.requested)
    names |= {
        d.best_dense_equal_area for d in analysis.simulation.designs.values() if d.best_dense_equal_area
    }
    assert any("[" in n for n in names)  # equal-area designs: the longest names
    for width in (80, 120):  # a narrow terminal: the table is split into parts, never squeezed
        console = Console(width=width, record=True, force_terminal=False, file=io.StringIO())
        simulate.print_table(analysis, console=console)
        text = console.export_text()
        assert "…" not in text
        assert all(n in text for n in names), width
        assert max(len(line) for line in text.splitlines()) <= width
    simulate.print_table(analysis)  # piped (capsys): one table at its natural width
    out = capsys.readouterr().out
    assert "…" not in out and "parts" not in out and all(n in out for n in names)


def test_version_and_progress(capsys, tmp_path, monkeypatch):
    from agos import __version__

    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == f"agos {__version__}"
    monkeypatch.setenv("AGOS_PROGRESS", "1")
    args = ("trace", "--out", str(tmp_path / "t"), "--model", "tests.models:mixed", "--image-size", "16")
    code, _, err = run_cli(capsys, *args, "--batch-size", "2")
    assert code == 0, err
    for phase in ("building tests.models:mixed", "capturing one training step", "writing"):
        assert phase in err


def test_the_sweep_plot_reads_the_level_of_a_structured_uniform_density():
    """`uniform:S:structure=…` (docs/density.md) is a uniform level S, as --density parses it."""
    from agos.sweep.plot import _uniform_level

    assert _uniform_level("uniform:0.6") == 0.6
    assert _uniform_level("uniform:0.7:structure=blobs:4") == 0.7
    assert _uniform_level("uniform:0.3:structure=channels") == 0.3
    assert _uniform_level("real") is None and _uniform_level("profile:sparsetrain:last") is None
