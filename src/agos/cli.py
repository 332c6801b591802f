"""The `agos` command line: a thin layer over `agos.api` and the commands' runners. Every user error
is one line on stderr and a non-zero exit."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from typer.exceptions import Abort, Exit, TyperException

from agos.analysis.work import MAX_FOLDS
from agos.arch.load import DEFAULT_DESIGNS
from agos.errors import AgosError, first_line
from agos.inputs.options import (
    MAX_SWEEP_POINTS,
    MAX_TRAJECTORY_POINTS,
    TRAJECTORY_DESIGNS,
    Command,
    RunOptions,
    default,
)
from agos.reproduce.settings import CHECK_IMAGES, DEFAULT_MODELS

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="agos: capture, prove and simulate activation-based gradient sparsity in CNN training.",
)


def _version(value: bool) -> None:
    if value:
        from agos import __version__

        typer.echo(f"agos {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print agos's version and exit"),
    ] = False,
) -> None:
    """agos: capture, prove and simulate activation-based gradient sparsity in CNN training."""


def _output(flag: str, folder: bool) -> Callable[[str], Path]:
    """An output folder or file, checked when the command line is read (agos.fileio), before any work."""

    def parse(text: str) -> Path:
        from agos.fileio import check_output_path

        return check_output_path(text, flag, folder)

    return parse


def _path_option(flag: str, help: str, folder: bool = False, metavar: str | None = None):
    """An output file (or folder) option, checked when the command line is read (`_output`)."""
    return typer.Option(
        flag, parser=_output(flag, folder), metavar=metavar or ("DIR" if folder else "FILE"), help=help
    )


ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        help="torchvision classifier name, timm:NAME, pkg.module:factory or path/to/file.py:factory",
    ),
]
WeightsOpt = Annotated[
    str, typer.Option("--weights", help="init | imagenet (local hub cache) | PATH to a state_dict")
]
DataOpt = Annotated[str, typer.Option("--data", help="samples | synthetic | imagefolder:PATH")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="images per training step")]
SizeOpt = Annotated[int, typer.Option("--image-size", help="square crop size in pixels")]
SeedOpt = Annotated[int, typer.Option("--seed", help="seed for init, data order, crops and dropout")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu | cuda | auto (cuda when available)")]
StepsOpt = Annotated[int, typer.Option("--train-steps", help="SGD warm-up steps before the captured step")]
LrOpt = Annotated[float, typer.Option("--lr", help="warm-up learning rate")]
MomentumOpt = Annotated[float, typer.Option("--momentum", help="warm-up SGD momentum")]
WdOpt = Annotated[float, typer.Option("--weight-decay", help="warm-up weight decay")]
ForceOpt = Annotated[
    bool,
    typer.Option("--force", help="write into --out even if it is not empty and holds another run"),
]


def _run_options(command: Command, **flags) -> RunOptions:
    """The run options of a command, built once from its flags (defaults: `inputs.options`)."""
    return RunOptions.for_command(command, **flags)


def _note(text: str) -> None:
    typer.echo(text, err=True)


def _run_id(options: RunOptions) -> dict:
    """What identifies a run in its output folder's marker (`fileio.claim_output`): its options but
    the device, which changes no figure."""
    return options.model_dump(mode="json", exclude={"device"})


@app.command()
def trace(
    out: Annotated[
        Path,
        _path_option("--out", "trace directory to write", folder=True),
    ],
    model: ModelOpt = default("trace", "model"),
    weights: WeightsOpt = default("trace", "weights"),
    data: DataOpt = default("trace", "data"),
    batch_size: BatchOpt = default("trace", "batch_size"),
    image_size: SizeOpt = default("trace", "image_size"),
    seed: SeedOpt = default("trace", "seed"),
    device: DeviceOpt = default("trace", "device"),
    train_steps: StepsOpt = default("trace", "steps"),
    lr: LrOpt = default("trace", "lr"),
    momentum: MomentumOpt = default("trace", "momentum"),
    weight_decay: WdOpt = default("trace", "weight_decay"),
    save_weights: Annotated[
        Path | None,
        _path_option("--save-weights", "keep the warmed-up weights here"),
    ] = None,
    force: ForceOpt = False,
) -> None:
    """Capture the masks of one real training step into a trace directory."""
    from agos import api
    from agos.fileio import claim_output

    options = _run_options(
        "trace", model=model, weights=weights, data=data, batch_size=batch_size, image_size=image_size,
        seed=seed, device=device, steps=train_steps, lr=lr, momentum=momentum, weight_decay=weight_decay,
    )  # fmt: skip
    label = f"{model}, weights {weights}, data {data}, batch {batch_size}, {image_size} px, seed {seed}"
    notes: list[str] = []
    with claim_output(out, "trace", _run_id(options), label, force, make=False) as claim:
        traced = api.trace(api.resolve_run(options), out, save_weights=save_weights, on_note=notes.append)
        claim.mark()
    for note in notes:
        typer.echo(f"warning: {note}", err=True)
    manifest = traced.manifest
    typer.echo(
        f"wrote {out}: {len(manifest.layers)} layers, loss {manifest.loss:.4f}, "
        f"{manifest.masks_bytes / 2**20:.1f} MiB of masks "
        f"({8 * manifest.masks_bytes / max(1, manifest.mask_elements):.3f} bits per mask element)"
    )


@app.command()
def check(
    model: ModelOpt = default("check", "model"),
    weights: WeightsOpt = default("check", "weights"),
    data: DataOpt = default("check", "data"),
    batch_size: BatchOpt = default("check", "batch_size"),
    image_size: SizeOpt = default("check", "image_size"),
    seed: SeedOpt = default("check", "seed"),
    device: DeviceOpt = default("check", "device"),
    steps: Annotated[int, typer.Option("--steps", help="SGD steps to train twice")] = 3,
    lr: Annotated[float, typer.Option("--lr", help="SGD learning rate")] = default("check", "lr"),
    momentum: Annotated[float, typer.Option("--momentum", help="SGD momentum")] = default(
        "check", "momentum"
    ),
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="SGD weight decay")] = default(
        "check", "weight_decay"
    ),
    sparse_forward: Annotated[
        bool, typer.Option("--sparse-forward", help="run FWD on the sparse engine too (default: model's own)")
    ] = False,
) -> None:
    """Train N steps with plain autograd and with the exact sparse engine; fail if they differ."""
    from agos import api
    from agos.report.check import print_report

    options = _run_options(
        "check", model=model, weights=weights, data=data, batch_size=batch_size, image_size=image_size,
        seed=seed, device=device, lr=lr, momentum=momentum, weight_decay=weight_decay,
    )  # fmt: skip
    report = api.check(api.resolve_run(options), steps=steps, sparse_forward=sparse_forward)
    print_report(report)
    failed = next((s.problem for s in report.steps if s.problem is not None), None)
    if failed is not None:
        print(f"agos: check failed: {failed}", file=sys.stderr)
        raise Exit(1)


@app.command()
def sparsity(
    trace_dir: Annotated[Path, typer.Argument(metavar="TRACE", help="a trace directory")],
    json_out: Annotated[
        Path | None,
        _path_option("--json", "write the summary as JSON"),
    ] = None,
    csv_out: Annotated[
        Path | None,
        _path_option("--csv", "write per-layer rows as CSV"),
    ] = None,
    plot_out: Annotated[
        Path | None,
        _path_option("--plot", "write a PNG plot"),
    ] = None,
    tiles: Annotated[
        bool,
        typer.Option("--tiles", help="all-masked dX tiles in a GPU kernel's implicit-GEMM layout instead"),
    ] = False,
    structure: Annotated[
        bool,
        typer.Option(
            "--structure", help="where the zeros lie (dead channels, positions, clustering) instead"
        ),
    ] = False,
    density: Annotated[
        str,
        typer.Option(
            "--density",
            help="with --tiles or --structure: real | uniform:S | profile:FILE[:CHECKPOINT] [:structure=…]",
        ),
    ] = "real",
    seed: Annotated[
        int, typer.Option("--seed", help="with --tiles or --structure: seed of statistical masks")
    ] = 0,
) -> None:
    """Per-layer sparsity of a trace: X, dY, skippable dX, and the forward/backward correlation."""
    from agos import api
    from agos.analysis import model as analysis_model
    from agos.report import sparsity as report

    if tiles and structure:
        raise AgosError("--tiles and --structure are separate tables: give one")
    if tiles or structure:
        section = "tiles" if tiles else "structure"
        _mask_section(section, trace_dir, density, seed, json_out, csv_out, plot_out)
        return
    _plot_format(plot_out, ("png", "svg", "pdf"))  # before any work: no JSON and CSV left without the plot
    if density != "real":
        raise AgosError(
            "--density applies to --tiles and --structure only (agos density shows statistical masks)"
        )
    analysis = api.analyse(trace_dir, sections=["sparsity"])
    report.print_table(analysis)
    if json_out:
        analysis_model.write(analysis, json_out)
    if csv_out:
        report.write_csv(analysis, csv_out)
    if plot_out:
        report.plot(analysis, plot_out)


def _plot_format(path: Path | None, formats: tuple[str, ...]) -> None:
    """A plot's file type, from its suffix (none: PNG), checked before the command does any work."""
    suffix = path.suffix.lstrip(".").lower() if path is not None else ""
    if suffix and suffix not in formats:
        names = ", ".join(f".{f}" for f in formats)
        raise AgosError(f"--plot {path}: this plot is written as {names}; name a file with that suffix")


def _mask_section(
    section: str, trace_dir: Path, density: str, seed: int, json_out, csv_out, plot_out
) -> None:
    """`sparsity --tiles` or `--structure`: one section of any density source's masks."""
    from agos import api
    from agos.analysis import model as analysis_model
    from agos.density.select import parse_density
    from agos.report import structure, tiles

    if csv_out or plot_out:
        raise AgosError(f"--{section} writes JSON only (--json)")
    parse_density(density)  # a bad spec is refused before the trace is read
    analysis = api.analyse(trace_dir, density=density, seed=seed, sections=[section])
    (tiles if section == "tiles" else structure).print_table(analysis)
    if json_out:
        analysis_model.write(analysis, json_out)


arch_app = typer.Typer(
    help="Accelerator descriptions: the shipped presets, or your own YAML.", no_args_is_help=True
)
app.add_typer(arch_app, name="arch")


@arch_app.command("list")
def arch_list() -> None:
    """Every preset on every shipped organisation (equal PEs, buffer and DRAM), with its area."""
    from agos.arch.area import design_area
    from agos.arch.load import ORGANISATIONS, PRESETS, load_arch

    for org in ORGANISATIONS:
        loaded = load_arch(f"dense@{org}")
        typer.echo(f"organisation {org}: {loaded.arch.organisation.description}")
    for preset in PRESETS:
        for org in ORGANISATIONS:
            loaded = load_arch(f"{preset}@{org}")
            area = design_area(loaded.arch, loaded.area).total_mm2
            typer.echo(f"  {loaded.name:22s} {area:6.2f} mm²  {loaded.arch.description}")


@arch_app.command("show")
def arch_show(
    ref: Annotated[
        str, typer.Argument(metavar="DESIGN", help="PRESET@ORG, a bare PRESET (both), or a YAML design file")
    ],
) -> None:
    """Print resolved designs with their area by component and their SHA-256 (the provenance of
    every simulated number)."""
    import yaml

    from agos.arch.area import design_area
    from agos.arch.load import load_archs

    for loaded in load_archs(ref):
        area = design_area(loaded.arch, loaded.area)
        typer.echo(f"# {loaded.name}  ({loaded.source})  sha256 {loaded.sha256}")
        dumped = yaml.safe_dump(loaded.arch.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
        typer.echo(dumped.rstrip())
        if loaded.overrides:
            typer.echo(f"# overridden ({len(loaded.overrides)}), inherited → given:")
            for line in loaded.overrides:
                typer.echo(f"#   {line}")
        typer.echo(
            f"# area {area.total_mm2:.3f} mm² ("
            + ", ".join(f"{k} {v:.3f}" for k, v in area.components.items())
            + f"); static {area.static_mw:.1f} mW; energy table '{loaded.energy.name}', "
            f"area table '{loaded.area.name}'"
        )


MAX_WINDOW = 1 << 20  # the schema's largest lookahead (arch.schema.Skipping)


def _windows(text: str) -> list[int | str]:
    out: list[int | str] = []
    for part in text.split(","):
        part = part.strip().lower()
        if part in ("inf", "∞"):
            out.append("inf")
            continue
        try:
            value = int(part)
        except ValueError:
            raise AgosError(f"--lookahead: '{part}' is not a window (positive integers or inf)") from None
        if not 1 <= value <= MAX_WINDOW:
            raise AgosError(f"--lookahead: windows are between 1 and {MAX_WINDOW:,} (or inf), got {value}")
        out.append(value)
    if not out:
        raise AgosError("--lookahead needs at least one window")
    return out


@app.command()
def simulate(
    trace_dir: Annotated[Path, typer.Argument(metavar="TRACE", help="a trace directory")],
    arch: Annotated[
        str,
        typer.Option(
            "--arch", help="comma-separated designs: PRESET@ORG, PRESET (on both organisations), FILE"
        ),
    ] = DEFAULT_DESIGNS,
    density: Annotated[
        str, typer.Option("--density", help="real | uniform:S | profile:FILE[:CHECKPOINT] [:structure=…]")
    ] = "real",
    seed: Annotated[int, typer.Option("--seed", help="seed of statistical masks")] = 0,
    json_out: Annotated[
        Path | None,
        _path_option("--json", "write every figure as JSON"),
    ] = None,
    csv_out: Annotated[
        Path | None,
        _path_option("--csv", "write one row per design × layer × pass as CSV"),
    ] = None,
    plot_out: Annotated[
        Path | None,
        _path_option("--plot", "write a PNG plot"),
    ] = None,
    per_layer: Annotated[bool, typer.Option("--per-layer", help="also print per-layer speedups")] = False,
    lookahead: Annotated[
        str | None,
        typer.Option("--lookahead", help="also report speedups at these windows, e.g. 1,2,4,8,16,32,inf"),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="processes to split the layers between (default: auto)")
    ] = None,
    oracle: Annotated[
        bool,
        typer.Option("--oracle", help="also run every feature always on: the bypass rule's per-layer oracle"),
    ] = False,
    max_folds: Annotated[
        int, typer.Option("--max-folds", help="refuse a run of more PE-array folds (docs/limits.md)")
    ] = MAX_FOLDS,
) -> None:
    """Cycles, area, energy and speedups of each design (over its dense twin and the best dense
    design of equal area) on a trace's layers."""
    from agos import api
    from agos.analysis import model
    from agos.report import simulate as report

    if workers is not None and not 1 <= workers <= 64:
        raise AgosError(f"--workers must be between 1 and 64, got {workers}")
    _plot_format(plot_out, ("png",))
    windows = _windows(lookahead) if lookahead is not None else None
    trace = api.load_trace(trace_dir)
    designs = api.designs(arch)
    analysis = api.simulate(
        trace, designs, density=density, seed=seed, workers=workers, lookahead=windows, oracle=oracle,
        max_folds=max_folds, on_note=_note,
    )  # fmt: skip
    report.print_table(analysis, per_layer=per_layer)
    if json_out:
        model.write(analysis, json_out)
    if csv_out:
        report.write_csv(analysis, csv_out)
    if plot_out:
        report.plot(analysis, plot_out)


@app.command()
def sweep(
    spec: Annotated[Path, typer.Argument(metavar="SPEC", help="a sweep spec (YAML)")],
    out: Annotated[
        Path,
        _path_option("--out", "output directory (cache/, results.parquet, .csv)", folder=True),
    ],
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="address of a dask.distributed scheduler to use")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="local Dask worker processes (default: one per core; 0: serial)"),
    ] = None,
    plot: Annotated[
        bool, typer.Option("--plot", help="draw the Pareto front and sensitivity curves")
    ] = False,
    force: ForceOpt = False,
    max_points: Annotated[
        int, typer.Option("--max-points", min=1, help="refuse a sweep of more points (docs/limits.md)")
    ] = MAX_SWEEP_POINTS,
) -> None:
    """Sweep designs over axes of any arch field, densities and traces, on Dask; one row per point."""
    from agos.fileio import claim_output
    from agos.sweep.run import run_sweep

    with claim_output(out, "sweep", {"spec": str(spec.resolve())}, f"spec {spec}", force):
        run_sweep(spec, out, scheduler=scheduler, workers=workers, plot=plot, max_points=max_points)


@app.command()
def search(
    traces: Annotated[list[Path], typer.Argument(metavar="TRACE...", help="trace directories")],
    out: Annotated[
        Path,
        _path_option("--out", "folder for designs, stages, search.json and plots", folder=True),
    ],
    space: Annotated[
        Path | None, typer.Option("--space", help="a search-space YAML (default: the shipped one)")
    ] = None,
    density: Annotated[
        str,
        typer.Option("--density", help="comma-separated density sources, e.g. real,profile:sparsetrain:last"),
    ] = "real",
    seed: Annotated[int, typer.Option("--seed", help="seed of statistical masks")] = 0,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Dask worker processes (0: serial, default: the cores)")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="address of a running dask.distributed scheduler")
    ] = None,
    force: ForceOpt = False,
) -> None:
    """Per network and organisation, the fastest design with output skipping and the fastest
    without at each area budget: Pareto fronts over the realizations, window, array and buffer."""
    from agos.fileio import claim_output
    from agos.search import report
    from agos.search.run import run_search
    from agos.search.space import load_space

    densities = [d.strip() for d in density.split(",") if d.strip()]
    if not densities:
        raise AgosError("--density needs at least one source")
    chosen = load_space(space)
    names = [str(t.resolve()) for t in traces]
    run = {"traces": names, "space": chosen.model_dump(mode="json"), "densities": densities, "seed": seed}
    with claim_output(out, "search", run, f"search of {len(names)} traces", force):
        result = run_search([str(t) for t in traces], out, chosen, densities, seed, workers, scheduler)
        report.print_table(result)
        for path in report.write(result, out):
            print(f"wrote {path}")


@app.command()
def phase(
    trace_dir: Annotated[Path, typer.Argument(metavar="TRACE", help="a trace directory (its geometry)")],
    out: Annotated[
        Path,
        _path_option("--out", "folder for phase.json and phase.png", folder=True),
    ],
    structures: Annotated[
        str, typer.Option("--structures", help="comma-separated mask structures (docs/density.md)")
    ] = "independent,channels,planes,positions,blobs:2,blobs:4",
    zeros: Annotated[str, typer.Option("--zeros", help="comma-separated zero fractions")] = "0.3,0.5,0.7,0.9",
    organisation: Annotated[
        str, typer.Option("--organisation", help="systolic, rows or both")
    ] = "systolic,rows",
    seed: Annotated[int, typer.Option("--seed", help="seed of the statistical masks")] = 0,
    force: ForceOpt = False,
) -> None:
    """Where output skipping pays: per realization, backprop speedup over the best input-only design
    of equal area, against mask structure and density (the phase diagram)."""
    from agos.fileio import claim_output, owned_file
    from agos.search.phase import phase as run_phase
    from agos.search.plot import plot_phase

    levels = _floats(zeros, "--zeros")
    if any(not 0 <= z < 1 for z in levels):
        raise AgosError("--zeros must be fractions in [0, 1)")
    orgs = [o.strip() for o in organisation.split(",") if o.strip()]
    if not orgs or any(o not in ("systolic", "rows") for o in orgs):
        raise AgosError("--organisation takes systolic, rows or both")
    kinds = [s.strip() for s in structures.split(",") if s.strip()]
    run = {"trace": str(trace_dir.resolve()), "structures": kinds, "zeros": levels, "orgs": orgs}
    run["seed"] = seed
    with claim_output(out, "phase", run, f"phase diagram of {trace_dir}", force):
        result = run_phase(str(trace_dir), orgs, kinds, levels, seed)
        with owned_file(out / "phase.json") as f:
            f.write(result.model_dump_json(indent=1))
        plot_phase(result, out / "phase.png")
    for p in sorted(result.points, key=lambda p: -(p.speedup or 0))[:5]:
        print(f"{p.realization} {p.structure} zeros {p.zeros:g}: ×{p.speedup:.3f} over {p.baseline}")
    print(f"wrote {out / 'phase.json'} and {out / 'phase.png'}")


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise AgosError(f"{option} takes comma-separated numbers, got {text!r}") from None


@app.command()
def density(
    trace_dir: Annotated[Path, typer.Argument(metavar="TRACE", help="a trace directory")],
    spec: Annotated[
        str,
        typer.Option("--density", help="uniform:S | profile:FILE[:CHECKPOINT] (FILE: sparsetrain or a CSV)"),
    ],
    seed: Annotated[int, typer.Option("--seed", help="seed of the statistical masks")] = 0,
    json_out: Annotated[
        Path | None,
        _path_option("--json", "write the mapping and figures as JSON"),
    ] = None,
) -> None:
    """Statistical masks on a trace: profile row → activation → layers, and per layer the real, target
    and realised zero fractions of X, dY and dX."""
    from agos import api
    from agos.analysis import model
    from agos.report import density as report

    analysis = api.analyse(trace_dir, density=spec, seed=seed, sections=["density_mapping"])
    report.print_tables(analysis)
    if json_out:
        model.write(analysis, json_out)


@app.command()
def bounds(
    trace_dir: Annotated[Path, typer.Argument(metavar="TRACE", help="a trace directory")],
    json_out: Annotated[
        Path | None,
        _path_option("--json", "write every count as JSON"),
    ] = None,
    csv_out: Annotated[
        Path | None,
        _path_option("--csv", "write one row per layer × pass (MACs per policy) as CSV"),
    ] = None,
) -> None:
    """Exact MACs per layer and pass under each skipping policy, and the ideal speedups they bound."""
    from agos import api
    from agos.analysis import model
    from agos.report import bounds as report

    analysis = api.analyse(trace_dir, sections=["realised", "bounds"])
    report.print_table(analysis)
    if json_out:
        model.write(analysis, json_out)
    if csv_out:
        report.write_csv(analysis, csv_out)


@app.command("gpu-bench")
def gpu_bench(
    models: Annotated[
        str | None,
        typer.Option(
            "--models", help="comma-separated models (default: the seven of the shipped H200 anchors)"
        ),
    ] = None,
    precision: Annotated[
        str, typer.Option("--precision", help="comma-separated: fp32, bf16-autocast")
    ] = "fp32,bf16-autocast",
    batch_size: Annotated[int, typer.Option("--batch-size", help="images per training step")] = 64,
    seconds: Annotated[float, typer.Option("--seconds", help="length of the timed run per row")] = 4.0,
    warmup: Annotated[int, typer.Option("--warmup", help="untimed steps first (cuDNN autotuning)")] = 5,
    device: Annotated[str, typer.Option("--device", help="cuda or cuda:N")] = "cuda",
    out: Annotated[
        Path | None,
        _path_option("--out", "write the rows as CSV (the anchors' format)"),
    ] = None,
    bwd_data: Annotated[
        bool,
        typer.Option(
            "--bwd-data", help="time the tile-skipping BWD-D kernel against cuDNN per layer of --trace"
        ),
    ] = False,
    trace_dirs: Annotated[
        list[Path] | None, typer.Option("--trace", help="with --bwd-data: a trace directory (repeatable)")
    ] = None,
    density: Annotated[
        str, typer.Option("--density", help="with --bwd-data: comma-separated mask sources (real, profile:…)")
    ] = "real",
    block: Annotated[str, typer.Option("--block", help="with --bwd-data: kernel tile, e.g. 64x64")] = "64x64",
    repeats: Annotated[int, typer.Option("--repeats", help="with --bwd-data: timed runs per variant")] = 20,
) -> None:
    """Measure dense training time and power of this machine's CUDA GPU, as the shipped anchors were;
    with --bwd-data, time the tile-skipping backward-data kernel against cuDNN per layer."""
    if bwd_data:
        _bwd_data_bench(trace_dirs or [], density, block, repeats, warmup, device, out)
        return
    from agos.gpu import training_bench as bench

    rows = bench.run_bench(
        bench.parse_list(models, "models") if models is not None else bench.default_models(),
        bench.parse_list(precision, "precision"),
        batch_size,
        seconds,
        warmup,
        device,
        out,
    )
    bench.print_table(rows)
    if out is not None:
        typer.echo(f"wrote {out}: {len(rows)} rows")


def _bwd_data_bench(traces, density, block, repeats, warmup, device, out) -> None:
    from agos.gpu import bench

    if not traces:
        raise AgosError("--bwd-data needs at least one --trace")
    if repeats < 1:
        raise AgosError("--repeats must be at least 1")
    blocks = bench.parse_block(block)
    densities = [d.strip() for d in density.split(",") if d.strip()]
    dev = bench.cuda_device(device)
    bench.configure_cuda()
    rows = bench.run(
        traces,
        densities,
        0,
        blocks,
        dev,
        bench.cuda_timer(dev),
        warmup,
        repeats,
        progress=lambda text: print(f"agos: {text}", file=sys.stderr),
    )
    bench.print_table(rows)
    if out is not None:
        bench.write_csv(rows, out)
        typer.echo(f"wrote {out}: {len(rows)} rows")


@app.command()
def trajectory(
    out: Annotated[
        Path,
        _path_option("--out", "output folder (trajectory.json/.csv/.png, cache/)", folder=True),
    ],
    checkpoints: Annotated[
        str | None,
        typer.Option("--checkpoints", help="checkpoint files of a training run: a comma list or a glob"),
    ] = None,
    train_steps: Annotated[
        int, typer.Option("--train-steps", help="or: train this many SGD steps here, with snapshots")
    ] = 0,
    every: Annotated[int, typer.Option("--every", help="a snapshot every K steps (with --train-steps)")] = 0,
    model: ModelOpt = default("trajectory", "model"),
    weights: Annotated[
        str, typer.Option("--weights", help="where --train-steps starts: init | imagenet | PATH")
    ] = default("trajectory", "weights"),
    data: DataOpt = default("trajectory", "data"),
    batch_size: BatchOpt = default("trajectory", "batch_size"),
    image_size: SizeOpt = default("trajectory", "image_size"),
    seed: SeedOpt = default("trajectory", "seed"),
    device: DeviceOpt = default("trajectory", "device"),
    lr: Annotated[float, typer.Option("--lr", help="SGD learning rate (with --train-steps)")] = default(
        "trajectory", "lr"
    ),
    momentum: Annotated[float, typer.Option("--momentum", help="SGD momentum")] = default(
        "trajectory", "momentum"
    ),
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="SGD weight decay")] = default(
        "trajectory", "weight_decay"
    ),
    arch: Annotated[
        str, typer.Option("--arch", help="designs to simulate (a bare preset: on both organisations)")
    ] = TRAJECTORY_DESIGNS,
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="prove every point lossless (a masked step)")
    ] = True,
    force: ForceOpt = False,
    max_points: Annotated[
        int,
        typer.Option("--max-points", min=1, help="refuse more snapshots or checkpoints (docs/limits.md)"),
    ] = MAX_TRAJECTORY_POINTS,
) -> None:
    """Sparsity, MAC bounds and design speedups at every checkpoint of a training run."""
    from agos.fileio import claim_output
    from agos.trajectory.report import print_table
    from agos.trajectory.run import TrajectorySettings
    from agos.trajectory.run import trajectory as run

    options = _run_options(
        "trajectory", model=model, weights=weights, data=data, batch_size=batch_size, image_size=image_size,
        seed=seed, device=device, lr=lr, momentum=momentum, weight_decay=weight_decay,
    )  # fmt: skip
    settings = TrajectorySettings(
        run=options,
        archs=_with_dense(arch),
        checkpoints=checkpoints,
        train_steps=train_steps,
        every=every,
        check=check,
    )
    run_id = settings.model_dump(mode="json", exclude={"run": {"device"}})
    label = f"{model}, " + (
        f"checkpoints {checkpoints}" if checkpoints else f"{train_steps} steps every {every}"
    )
    with claim_output(out, "trajectory", run_id, label, force):
        result = run(settings, out, max_points=max_points)
    print_table(result)
    lost = [p.step for p in result.points if p.lossless is False]
    typer.echo(f"wrote {out}: {len(result.points)} points, {result.wall_seconds:.0f} s", err=True)
    if lost:
        print(f"agos: error: skipping was not lossless at step(s) {lost}", file=sys.stderr)
        raise Exit(1)


def _with_dense(arch: str) -> str:
    """The designs asked for, with the dense baseline every speedup is over."""
    return arch if "dense" in arch.split(",") else f"dense,{arch}"


@app.command()
def reproduce(
    out: Annotated[
        Path,
        _path_option("--out", "report directory (index.html, results.json, cache/)", folder=True),
    ],
    models: Annotated[str, typer.Option("--models", help="comma-separated models")] = ",".join(
        DEFAULT_MODELS
    ),
    weights: Annotated[
        str, typer.Option("--weights", help="init | imagenet | PATH | model=PATH,…")
    ] = default("reproduce", "weights"),
    data: DataOpt = default("reproduce", "data"),
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            help=f"images per step ({default('reproduce', 'batch_size')}; "
            f"quick: {default('reproduce-quick', 'batch_size')})",
        ),
    ] = None,
    image_size: Annotated[
        int | None,
        typer.Option(
            "--image-size",
            help=f"pixels ({default('reproduce', 'image_size')}; "
            f"quick: {default('reproduce-quick', 'image_size')})",
        ),
    ] = None,
    seed: SeedOpt = default("reproduce", "seed"),
    device: DeviceOpt = default("reproduce", "device"),
    train_steps: StepsOpt = default("reproduce", "steps"),
    lr: LrOpt = default("reproduce", "lr"),
    momentum: MomentumOpt = default("reproduce", "momentum"),
    weight_decay: WdOpt = default("reproduce", "weight_decay"),
    check_images: Annotated[
        int | None,
        typer.Option(
            "--check-images",
            help=f"images the sparse engine recomputes ({CHECK_IMAGES['reproduce']}; "
            f"quick: {CHECK_IMAGES['reproduce-quick']}; 0: off)",
        ),
    ] = None,
    arch: Annotated[
        str, typer.Option("--arch", help="designs to simulate (a bare preset: on both organisations)")
    ] = DEFAULT_DESIGNS,
    quick: Annotated[
        bool, typer.Option("--quick", help="smaller batch and images: minutes, not an hour")
    ] = False,
    trained: Annotated[
        str,
        typer.Option(
            "--trained",
            help="also run these with trained ImageNet weights (auto: those installed offline; none)",
        ),
    ] = "auto",
    trajectory_dir: Annotated[
        Path | None,
        typer.Option("--trajectory", help="a finished `agos trajectory` folder to show in the report"),
    ] = None,
    sweep: Annotated[
        Path | None, typer.Option("--sweep", help="also run this sweep spec and add a sweep section")
    ] = None,
    search: Annotated[
        Path | None,
        typer.Option("--search", help="a finished `agos search` folder: the report's answer on output skip"),
    ] = None,
    phase: Annotated[
        Path | None, typer.Option("--phase", help="a finished `agos phase` folder: where output skip pays")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="processes the analyses run in while the next model is captured (default: the cores, "
            "up to 4; 1: one stage after the other); the figures do not depend on it",
        ),
    ] = None,
    force: ForceOpt = False,
) -> None:
    """The paper's evaluation on each model — capture, prove, count, simulate — as an HTML report."""
    from agos.fileio import claim_output
    from agos.inputs.offline_weights import available
    from agos.reproduce.pipeline import runs_at
    from agos.reproduce.run import reproduce as run
    from agos.reproduce.settings import Settings

    command: Command = "reproduce-quick" if quick else "reproduce"
    options = _run_options(
        command, weights=weights, data=data, batch_size=batch_size, image_size=image_size, seed=seed,
        device=device, steps=train_steps, lr=lr, momentum=momentum, weight_decay=weight_decay,
    )  # fmt: skip
    if trained == "auto":
        trained_models = tuple(runs_at(available(), options.image_size))
    elif trained == "none":
        trained_models = ()
    else:
        trained_models = tuple(m.strip() for m in trained.split(",") if m.strip())
    settings = Settings(
        run=options,
        models=tuple(m.strip() for m in models.split(",") if m.strip()),
        check_images=check_images if check_images is not None else CHECK_IMAGES[command],
        archs=_with_dense(arch),
        quick=quick,
        trained=trained_models,
        trajectory=None if trajectory_dir is None else str(trajectory_dir),
        sweep=str(sweep) if sweep is not None else None,
        search=str(search) if search is not None else None,
        phase=str(phase) if phase is not None else None,
    )
    run_id = settings.model_dump(mode="json", exclude={"run": {"device"}})
    label = f"models {','.join(settings.models)}, batch {options.batch_size}, {options.image_size} px"
    if workers is not None and not 1 <= workers <= 64:
        raise AgosError(f"--workers must be between 1 and 64, got {workers}")
    with claim_output(out, "reproduce", run_id, label + (", quick" if quick else ""), force):
        run(settings, out, workers=workers)


@app.command()
def compare(
    a: Annotated[
        Path,
        typer.Argument(
            metavar="A", help="an analysis (--json file or stage folder), a trace or a reproduce run"
        ),
    ],
    b: Annotated[Path, typer.Argument(metavar="B", help="the same kind of thing as A")],
    json_out: Annotated[
        Path | None,
        _path_option("--json", "write the comparison as JSON"),
    ] = None,
    plot_out: Annotated[
        Path | None,
        _path_option("--plot", "write a PNG plot"),
    ] = None,
    layers: Annotated[
        bool,
        typer.Option("--layers", help="print each design's cycles per layer and pass (always in --json)"),
    ] = False,
) -> None:
    """Two analyses, traces or reproduce runs side by side: per layer and in total, X zero, dY zero,
    skippable dX, and each design's simulated cycles and speedups — A, B and the change."""
    from agos import api
    from agos.compare import model, render

    _plot_format(plot_out, ("png", "svg", "pdf"))
    comparison = api.compare(a, b)
    render.print_comparison(comparison, layers=layers)
    if json_out:
        model.write(comparison, json_out)
    if plot_out:
        render.plot(comparison, plot_out)


@app.command()
def schema(
    name: Annotated[
        str,
        typer.Argument(
            help="analysis (every --json), verification, results, trajectory, sweep-row, search, phase, "
            "export or comparison"
        ),
    ] = "analysis",
    out: Annotated[
        Path | None,
        _path_option("--out", "write it to FILE instead of stdout"),
    ] = None,
) -> None:
    """The JSON Schema of a file agos writes: the versioned Analysis of every --json, and the
    records of reproduce, trajectory, sweep, search and phase."""
    from agos.fileio import atomic_file
    from agos.record import schema_text
    from agos.schemas import NAMES, registry

    if name not in NAMES:
        raise AgosError(f"no schema '{name}' (there are: {', '.join(NAMES)})")
    text = schema_text(registry()[name][0])
    if out is None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            _quiet_stdout()
            raise StdoutError(exc.strerror or first_line(exc)) from None
        return
    with atomic_file(out) as f:
        f.write(text)


@app.command()
def export(
    trace_dir: Annotated[Path, typer.Argument(metavar="TRACE", help="a trace directory")],
    to: Annotated[str, typer.Option("--to", help="scalesim | timeloop | npz")],
    out: Annotated[
        Path,
        _path_option("--out", "folder to write", folder=True),
    ],
    arch: Annotated[
        str | None,
        typer.Option(
            "--arch", help="scalesim: the design whose organisation the config takes (dense@systolic)"
        ),
    ] = None,
    density: Annotated[
        str, typer.Option("--density", help="timeloop, npz: real | uniform:S | profile:FILE[:CHECKPOINT]")
    ] = "real",
    seed: Annotated[int, typer.Option("--seed", help="seed of statistical masks")] = 0,
    force: ForceOpt = False,
) -> None:
    """Export a trace to other tools: SCALE-Sim GEMMs and config, Timeloop/Sparseloop problems with
    the masks' densities, or the masks as .npz (docs/export.md)."""
    from agos import api
    from agos.export import check_options
    from agos.fileio import claim_output, output_lock

    target = check_options(to, arch, density, seed)  # a misfit is one line before the trace is read
    trace = api.load_trace(trace_dir)
    run = {
        "trace": str(trace_dir.resolve()),
        "manifest": trace.manifest.manifest_sha256,
        "to": target,
        "arch": arch,
        "density": density,
        "seed": seed,
    }
    with claim_output(out, "export", run, f"--to {target} of {trace_dir}", force), output_lock(out, "export"):
        result = api.export(
            trace, target, out, density=density, seed=seed, arch=arch, on_note=lambda n: _note(f"note: {n}")
        )
    files = f"{len(result.files)} files for {target} and provenance.json"
    typer.echo(f"wrote {out}: {files} ({result.record.label})")


class Terminated(BaseException):
    """SIGTERM, raised like Ctrl-C so that every `finally` runs: no half-built stage is left."""


def _terminate(signum, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def _signals() -> Iterator[None]:
    """SIGTERM unwinds the stack as Ctrl-C does (in the main thread; elsewhere it is left alone)."""
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _deferred_warnings() -> Iterator[list[str]]:
    """A library's warning (a torch UserWarning, a user model's own) becomes one line, printed once
    the command has finished, so that an error is always the only line of a failed run."""
    seen: list[str] = []

    def keep(message, category, filename, lineno, file=None, line=None) -> None:
        text = f"agos: warning: {first_line(Warning(str(message)))} ({category.__name__})"
        if text not in seen:
            seen.append(text)

    with warnings.catch_warnings():
        warnings.showwarning = keep
        yield seen


def _quiet_stdout() -> None:
    """Standard output is gone (a closed pipe, a full disk): stop the interpreter's own flush at
    exit from printing a traceback about it."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class StdoutError(Exception):
    """Standard output refused what the command printed (a full disk)."""


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        _quiet_stdout()
        raise StdoutError(exc.strerror or first_line(exc)) from None


def main(argv: list[str] | None = None) -> int:
    """Entry point: one line on stderr for every user error, never a traceback."""
    with _signals(), _deferred_warnings() as warned:
        code = _main(argv)
        if code == 0:
            for text in warned:
                print(text, file=sys.stderr)
        return code


def _main(argv: list[str] | None) -> int:
    command = typer.main.get_command(app)
    try:
        result = command.main(
            args=argv if argv is not None else sys.argv[1:], prog_name="agos", standalone_mode=False
        )
        _flush_stdout()  # a full disk or closed pipe is this command's failure, not the exit's
        if result == 130:  # typer turns Ctrl-C into Exit(130), which click returns when not standalone
            print("agos: interrupted", file=sys.stderr)
        return result if isinstance(result, int) else 0
    except AgosError as exc:
        print(f"agos: error: {first_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except Abort:  # click turns Ctrl-C into Abort
        print("agos: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("agos: terminated", file=sys.stderr)
        return 143
    except Exit as exc:
        return exc.exit_code
    except TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(command.get_help(typer.Context(command, info_name="agos")), file=sys.stderr)
            return 2
        print(f"agos: error: {first_line(Exception(exc.format_message()))}", file=sys.stderr)
        return getattr(exc, "exit_code", 2) or 2
    except KeyboardInterrupt:
        print("agos: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `agos … | head`: the reader has what it wanted
        _quiet_stdout()
        return 141
    except StdoutError as exc:
        print(f"agos: error: cannot write to standard output: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system refused (a full disk, no permission, a name too long)
        if os.environ.get("AGOS_DEBUG"):
            raise
        problem = exc.strerror or first_line(exc)
        where = exc.filename if exc.filename is not None else exc.filename2
        try:  # what was printed before still goes out; a stdout that is gone stays quiet at exit
            sys.stdout.flush()
        except OSError:
            _quiet_stdout()
            where = "standard output" if where is None else where
        print(
            f"agos: error: {f'cannot write to {where}: ' if where is not None else ''}{problem}",
            file=sys.stderr,
        )
        return 2
    except Exception as exc:
        if os.environ.get("AGOS_DEBUG"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        print(
            f"agos: internal error: {type(exc).__name__}: {first} (AGOS_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
