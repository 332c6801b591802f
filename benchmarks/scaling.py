"""How the simulator's cost grows: `simulate_network` time against the batch, the image size and the
number of simulated designs, each with a plain training step of the same batch beside it.

Three sweeps around one point, one axis at a time (full: resnet50, seeded init weights, embedded
photographs, real masks):
- batch 2, 8, 32, 128 at 64 px (b128 at 64 px is b10 at 224 px: a batch-128 224-px trace does not
  fit a shared machine's memory), every preset on both organisations (24 simulated designs);
- image size 64, 160, 224 at batch 8, the same designs;
- designs 1, 7, 24, 89 simulated (dense@systolic; agos@systolic + dense@rows; every preset on both
  organisations; those and agos / input-skip on both organisations at lookahead 2, 3, 4, 8 and
  1 or 2 MiB of buffer), twins and equal-area candidates included, at batch 8, 224 px.
`--quick` (a shared machine): resnet18, batch 2, 8 at 32 px, size 32, 64 at batch 2, designs
1, 7, 24 at batch 2, 32 px.

Each point is timed in this process (`--workers 1` by default: one core, the cost itself, not how
it splits), after one warm-up simulation (numba's kernels); traces are captured first (not timed)
into --traces (kept there for the next run) or a temporary folder. The plain step runs on
`--threads 1` by default, one core like the simulation: on a machine shared by more processes
than cores, torch's OpenMP threads wait on each other (a 2-thread step of resnet18 at batch 2,
32 px took 2.6-5.5 s there against 0.2 s on one thread). Times are medians of --reps; on a shared
machine take the ratios, not the seconds.

    .venv/bin/python benchmarks/scaling.py [--quick] [--traces DIR] [--reps 2] [--workers 1] [--threads 1]

writes benchmarks/results/scaling.json and scaling.png (scaling-quick.* with --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
LOOKAHEADS = (2, 3, 4, 8)
BUFFERS = (1 << 20, 2 << 20)
DESIGN_SETS = {  # requested designs; the run adds twins and equal-area candidates
    "one": "dense@systolic",
    "two organisations": "agos@systolic,dense@rows",
    "presets": "dense,zero-gate,input-skip,output-skip,agos,ideal",
    "presets and variants": "presets+variants",
}
FULL = {
    "model": "resnet50",
    "batch": {"image_size": 64, "values": [2, 8, 32, 128]},
    "image_size": {"batch": 8, "values": [64, 160, 224]},
    "designs": {"batch": 8, "image_size": 224, "values": list(DESIGN_SETS)},
}
QUICK = {
    "model": "resnet18",
    "batch": {"image_size": 32, "values": [2, 8]},
    "image_size": {"batch": 2, "values": [32, 64]},
    "designs": {"batch": 2, "image_size": 32, "values": list(DESIGN_SETS)[:3]},
}


def designs(which: str):
    """The requested designs of one set (LoadedArch list)."""
    from agos.arch.load import DEFAULT_DESIGNS, load_arch, load_archs

    if which != "presets and variants":
        return load_archs(DESIGN_SETS[which] if which != "presets" else DEFAULT_DESIGNS)
    out = load_archs(DEFAULT_DESIGNS)
    for lookahead in LOOKAHEADS:
        for buffer in BUFFERS:
            for ref in ("agos@systolic", "agos@rows", "input-skip@systolic", "input-skip@rows"):
                loaded = load_arch(ref)
                a = loaded.arch
                o = a.organisation
                arch = a.model_copy(
                    update={
                        "name": f"{a.name}~L{lookahead}~{buffer >> 10}KiB",
                        "organisation": o.model_copy(
                            update={"memory": o.memory.model_copy(update={"global_buffer_bytes": buffer})}
                        ),
                        "skipping": a.skipping.model_copy(update={"lookahead": lookahead}),
                    }
                )
                out.append(
                    loaded.with_arch(type(a).model_validate(arch.model_dump()), f"{ref}, scaling variant")
                )
    return out


def trace_for(model: str, batch: int, size: int, folder: Path) -> Path:
    """A trace of one step (seed 0), captured once into `folder`."""
    from agos.api import trace as capture_trace
    from agos.capture.trace import load_trace
    from agos.inputs.options import RunOptions

    path = folder / f"{model}-b{batch}-{size}px"
    if (path / "manifest.json").exists():
        prov = load_trace(path).provenance
        if (prov.model, prov.batch_size, prov.image_size, prov.seed) == (model, batch, size, 0):
            return path
    start = time.perf_counter()
    capture_trace(RunOptions(model=model, batch_size=batch, image_size=size, seed=0, device="cpu"), path)
    print(f"  captured {path.name} in {time.perf_counter() - start:.0f} s (not timed)", flush=True)
    return path


def plain_step_seconds(model: str, batch: int, size: int, reps: int) -> list[float]:
    from agos.inputs.options import RunOptions
    from agos.inputs.session import prepare
    from agos.inputs.training import plain_step

    run = prepare(RunOptions(model=model, batch_size=batch, image_size=size, seed=0, device="cpu"))
    images, labels = run.batch(0)
    plain_step(run.model, images, labels, seed=0)  # warm caches and allocator
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        plain_step(run.model, images, labels, seed=0)
        times.append(time.perf_counter() - start)
    return times


def simulate_seconds(trace: Path, requested, workers: int, reps: int) -> tuple[list[float], int]:
    from agos.capture.trace import load_trace
    from agos.cost.network import MaskSource, simulate_network

    manifest = load_trace(trace).manifest
    times, count = [], 0
    for _ in range(reps):
        start = time.perf_counter()
        net = simulate_network(MaskSource(str(trace)), requested, manifest, workers=workers)
        times.append(time.perf_counter() - start)
        count = len(net.designs)
    return times, count


def measure(cfg: dict, folder: Path, reps: int, workers: int) -> list[dict]:
    model = cfg["model"]
    points = [("batch", b, cfg["batch"]["image_size"], "presets") for b in cfg["batch"]["values"]]
    points += [("image_size", cfg["image_size"]["batch"], s, "presets") for s in cfg["image_size"]["values"]]
    points += [
        ("designs", cfg["designs"]["batch"], cfg["designs"]["image_size"], d)
        for d in cfg["designs"]["values"]
    ]
    traces = {(b, s): trace_for(model, b, s, folder) for _, b, s, _ in points}
    smallest = min(traces, key=lambda k: k[0] * k[1] ** 2)
    simulate_seconds(traces[smallest], designs("one"), workers, 1)  # numba's kernels compiled or loaded
    plain: dict[tuple[int, int], list[float]] = {}
    rows = []
    for axis, batch, size, which in points:
        if (batch, size) not in plain:
            plain[(batch, size)] = plain_step_seconds(model, batch, size, reps)
        sim, count = simulate_seconds(traces[(batch, size)], designs(which), workers, reps)
        row = {
            "axis": axis,
            "batch_size": batch,
            "image_size": size,
            "design_set": which,
            "designs": count,
            "simulate_s": statistics.median(sim),
            "plain_step_s": statistics.median(plain[(batch, size)]),
            "simulate_times_s": sim,
            "plain_step_times_s": plain[(batch, size)],
        }
        row["ratio"] = row["simulate_s"] / row["plain_step_s"]
        rows.append(row)
        print(
            f"  {axis:10s} batch {batch:3d}  {size:3d} px  {count:3d} designs"
            f"  simulate {row['simulate_s']:7.2f} s  plain step {row['plain_step_s']:6.2f} s"
            f"  ratio {row['ratio']:.2f}",
            flush=True,
        )
    return rows


def plot(rows: list[dict], label: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for ax, (axis, xlabel) in zip(
        axes,
        (("batch", "batch (images)"), ("image_size", "image size (px)"), ("designs", "simulated designs")),
        strict=True,
    ):
        sel = [r for r in rows if r["axis"] == axis]
        xs = [
            r["batch_size"] if axis == "batch" else r["image_size"] if axis == "image_size" else r["designs"]
            for r in sel
        ]
        ax.plot(xs, [r["simulate_s"] for r in sel], "o-", label="simulate (all designs)")
        ax.plot(xs, [r["plain_step_s"] for r in sel], "s--", label="plain training step")
        for x, r in zip(xs, sel, strict=True):
            ax.annotate(f"{r['ratio']:.2f}×", (x, r["simulate_s"]), textcoords="offset points", xytext=(0, 7),
                        ha="center", fontsize=8)  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels([str(x) for x in xs])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
        ax.margins(x=0.12, y=0.18)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("seconds")
        fixed = sel[0]
        ax.set_title(
            {
                "batch": f"{fixed['image_size']} px, {fixed['designs']} designs",
                "image_size": f"batch {fixed['batch_size']}, {fixed['designs']} designs",
                "designs": f"batch {fixed['batch_size']}, {fixed['image_size']} px",
            }[axis],
            fontsize=10,
        )
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{label}\nsimulate time / plain step above each point", fontsize=10)
    fig.tight_layout()
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="resnet18 at small sizes: minutes on a shared machine"
    )
    parser.add_argument(
        "--traces", type=Path, help="capture traces here and reuse them (default: a temporary folder)"
    )
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="simulate_network's worker processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the plain step")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--png", type=Path)
    parser.add_argument("--replot", type=Path, help="only redraw the plot of this results JSON")
    args = parser.parse_args()
    os.environ["AGOS_PROGRESS"] = "0"
    if args.replot:
        figures = json.loads(args.replot.read_text())
        plot(figures["points"], figures["label"], args.png or args.replot.with_suffix(".png"))
        return
    import torch

    torch.set_num_threads(args.threads)
    cfg = QUICK if args.quick else FULL
    stem = "scaling-quick" if args.quick else "scaling"
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.traces or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        rows = measure(cfg, folder, args.reps, args.workers)
    threads = torch.get_num_threads()
    label = (
        f"{cfg['model']}, seeded init weights, embedded photographs (samples), real masks; "
        f"simulate: {args.workers} worker(s); plain step: {threads} torch threads, cpu; median of {args.reps}"
    )
    figures = {
        "label": label,
        "model": cfg["model"],
        "workers": args.workers,
        "threads": threads,
        "reps": args.reps,
        "cpus": os.cpu_count(),
        "points": rows,
    }
    out_json = args.json or RESULTS / f"{stem}.json"
    out_png = args.png or RESULTS / f"{stem}.png"
    tmp_json = out_json.with_suffix(".tmp")
    tmp_json.write_text(json.dumps(figures, indent=1) + "\n")
    tmp_json.replace(out_json)
    plot(rows, label, out_png)
    print(f"wrote {out_json} and {out_png}")


if __name__ == "__main__":
    main()
