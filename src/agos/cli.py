"""The `agos` command line. Every user error is one line on stderr and a non-zero exit."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.exceptions import Abort, Exit, TyperException

from agos.arch.load import DEFAULT_DESIGNS
from agos.errors import AgosError
from agos.inputs.options import TRAJECTORY_DESIGNS, Command, RunOptions, default
from agos.reproduce.settings import CHECK_IMAGES, DEFAULT_MODELS

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="agos: capture, prove and simulate activation-based gradient sparsity in CNN training.",
)

ModelOpt = Annotated[
    str, typer.Option("--model", help="torchvision classifier name, timm:NAME, or pkg.module:factory")
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


def _options(command: Command, **flags) -> RunOptions:
    """The run options of a command, built once from its flags (defaults: `inputs.options`)."""
    return RunOptions.for_command(command, **flags)


@app.command()
def trace(
    out: Annotated[Path, typer.Option("--out", help="trace directory to write")],
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
        str | None, typer.Option("--save-weights", help="keep the warmed-up weights here")
    ] = None,
) -> None:
    """Capture the masks of one real training step into a trace directory."""
    from agos import api

    options = _options(
        "trace", model=model, weights=weights, data=data, batch_size=batch_size, image_size=image_size,
        seed=seed, device=device, steps=train_steps, lr=lr, momentum=momentum, weight_decay=weight_decay,
    )  # fmt: skip
    traced = api.trace(
        api.resolve_run(options),
        out,
        save_weights=save_weights,
        on_note=lambda note: typer.echo(f"warning: {note}", err=True),
    )
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

    options = _options(
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
    json_out: Annotated[Path | None, typer.Option("--json", help="write the summary as JSON")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="write per-layer rows as CSV")] = None,
    plot_out: Annotated[Path | None, typer.Option("--plot", help="write a PNG plot")] = None,
    tiles: Annotated[
        bool,
        typer.Option("--tiles", help="all-masked dX tiles in a GPU kernel's implicit-GEMM layout instead"),
    ] = False,
    density: Annotated[
        str, typer.Option("--density", help="with --tiles: real | uniform:S | profile:FILE[:CHECKPOINT]")
    ] = "real",
    seed: Annotated[int, typer.Option("--seed", help="with --tiles: seed of statistical masks")] = 0,
) -> None:
    """Per-layer sparsity of a trace: X, dY, skippable dX, and the forward/backward correlation."""
    from agos import api
    from agos.analysis import model as analysis_model
    from agos.report import sparsity as report

    if tiles:
        _tiles(trace_dir, density, seed, json_out, csv_out, plot_out)
        return
    if density != "real":
        raise AgosError("--density applies to --tiles only (agos density shows statistical masks)")
    analysis = api.analyse(trace_dir, sections=["sparsity"])
    report.print_table(analysis)
    if json_out:
        analysis_model.write(analysis, json_out)
    if csv_out:
        report.write_csv(analysis, csv_out)
    if plot_out:
        report.plot(analysis, plot_out)


def _tiles(trace_dir: Path, density: str, seed: int, json_out, csv_out, plot_out) -> None:
    from agos import api
    from agos.analysis import model as analysis_model
    from agos.density.select import parse_density
    from agos.report import tiles as report

    if csv_out or plot_out:
        raise AgosError("--tiles writes JSON only (--json)")
    parse_density(density)  # a bad spec is refused before the trace is read
    analysis = api.analyse(trace_dir, density=density, seed=seed, sections=["tiles"])
    report.print_table(analysis)
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
        typer.echo(
            f"# area {area.total_mm2:.3f} mm² ("
            + ", ".join(f"{k} {v:.3f}" for k, v in area.components.items())
            + f"); static {area.static_mw:.1f} mW; energy table '{loaded.energy.name}', "
            f"area table '{loaded.area.name}'"
        )


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
        if value < 1:
            raise AgosError(f"--lookahead: windows are ≥ 1, got {value}")
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
        str, typer.Option("--density", help="real | uniform:S | profile:FILE[:CHECKPOINT]")
    ] = "real",
    seed: Annotated[int, typer.Option("--seed", help="seed of statistical masks")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="write every figure as JSON")] = None,
    plot_out: Annotated[Path | None, typer.Option("--plot", help="write a PNG plot")] = None,
    per_layer: Annotated[bool, typer.Option("--per-layer", help="also print per-layer speedups")] = False,
    lookahead: Annotated[
        str | None,
        typer.Option("--lookahead", help="also report speedups at these windows, e.g. 1,2,4,8,16,32,inf"),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="processes to split the layers between (default: auto)")
    ] = None,
) -> None:
    """Cycles, area, energy and speedups of each design (over its dense twin and the best dense
    design of equal area) on a trace's layers."""
    from agos import api
    from agos.analysis import model
    from agos.report import simulate as report

    if workers is not None and not 1 <= workers <= 64:
        raise AgosError(f"--workers must be between 1 and 64, got {workers}")
    windows = _windows(lookahead) if lookahead is not None else None
    trace = api.load_trace(trace_dir)
    designs = api.designs(arch)
    analysis = api.simulate(trace, designs, density=density, seed=seed, workers=workers, lookahead=windows)
    report.print_table(analysis, per_layer=per_layer)
    if json_out:
        model.write(analysis, json_out)
    if plot_out:
        report.plot(analysis, plot_out)


@app.command()
def sweep(
    spec: Annotated[Path, typer.Argument(metavar="SPEC", help="a sweep spec (YAML)")],
    out: Annotated[Path, typer.Option("--out", help="output directory (points/, results.parquet, .csv)")],
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
) -> None:
    """Sweep designs over axes of any arch field, densities and traces, on Dask; one row per point."""
    from agos.sweep.run import run_sweep

    run_sweep(spec, out, scheduler=scheduler, workers=workers, plot=plot)


@app.command()
def density(
    trace_dir: Annotated[Path, typer.Argument(metavar="TRACE", help="a trace directory")],
    spec: Annotated[
        str,
        typer.Option("--density", help="uniform:S | profile:FILE[:CHECKPOINT] (FILE: sparsetrain or a CSV)"),
    ],
    seed: Annotated[int, typer.Option("--seed", help="seed of the statistical masks")] = 0,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the mapping and figures as JSON")
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
    json_out: Annotated[Path | None, typer.Option("--json", help="write every count as JSON")] = None,
) -> None:
    """Exact MACs per layer and pass under each skipping policy, and the ideal speedups they bound."""
    from agos import api
    from agos.analysis import model
    from agos.report import bounds as report

    analysis = api.analyse(trace_dir, sections=["realised", "bounds"])
    report.print_table(analysis)
    if json_out:
        model.write(analysis, json_out)


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
        Path | None, typer.Option("--out", help="write the rows as CSV (the anchors' format)")
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
    out: Annotated[Path, typer.Option("--out", help="output folder (trajectory.json/.csv/.png, cache/)")],
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
) -> None:
    """Sparsity, MAC bounds and design speedups at every checkpoint of a training run."""
    from agos.trajectory.report import print_table
    from agos.trajectory.run import TrajectorySettings
    from agos.trajectory.run import trajectory as run

    options = _options(
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
    result = run(settings, out)
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
    out: Annotated[Path, typer.Option("--out", help="report directory (index.html, results.json, cache/)")],
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
) -> None:
    """The paper's evaluation on each model — capture, prove, count, simulate — as an HTML report."""
    from agos.inputs.offline_weights import available
    from agos.reproduce.pipeline import runs_at
    from agos.reproduce.run import reproduce as run
    from agos.reproduce.settings import Settings

    command: Command = "reproduce-quick" if quick else "reproduce"
    options = _options(
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
    )
    run(settings, out)


@app.command()
def schema(
    name: Annotated[
        str, typer.Argument(help="analysis (every --json), verification, results, trajectory or sweep-row")
    ] = "analysis",
    out: Annotated[Path | None, typer.Option("--out", help="write it to FILE instead of stdout")] = None,
) -> None:
    """The JSON Schema of a file agos writes: the versioned Analysis of every --json, and the
    records of reproduce, trajectory and sweep."""
    from agos.fileio import atomic_file
    from agos.record import schema_text
    from agos.schemas import NAMES, registry

    if name not in NAMES:
        raise AgosError(f"no schema '{name}' (there are: {', '.join(NAMES)})")
    text = schema_text(registry()[name][0])
    if out is None:
        sys.stdout.write(text)
        return
    with atomic_file(out) as f:
        f.write(text)


def main(argv: list[str] | None = None) -> int:
    """Entry point: one line on stderr for every user error, never a traceback."""
    command = typer.main.get_command(app)
    try:
        result = command.main(
            args=argv if argv is not None else sys.argv[1:], prog_name="agos", standalone_mode=False
        )
        if result == 130:  # typer turns Ctrl-C into Exit(130), which click returns when not standalone
            print("agos: interrupted", file=sys.stderr)
        return result if isinstance(result, int) else 0
    except AgosError as exc:
        print(f"agos: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Abort:  # click turns Ctrl-C into Abort
        print("agos: interrupted", file=sys.stderr)
        return 130
    except Exit as exc:
        return exc.exit_code
    except TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(command.get_help(typer.Context(command, info_name="agos")), file=sys.stderr)
            return 2
        print(f"agos: error: {exc.format_message()}", file=sys.stderr)
        return getattr(exc, "exit_code", 2) or 2
    except KeyboardInterrupt:
        print("agos: interrupted", file=sys.stderr)
        return 130
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
