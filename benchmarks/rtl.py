"""The PE row in RTL (issue 25): Verilog, the cycle-equality sweep and the synthesis table.

1. Verilog of every synthesised row variant at C = 8 (Amaranth → RTLIL → yosys write_verilog),
   written to --verilog (default build/rtl/, not committed; sizes and SHA-256 in the JSON).
2. Cycle equality (agos.rtl.compare, docs/rtl.md):
   - the row alone on random items, per feature: its cycles against its own rules
     (agos.rtl.timing.walk) and its results against the dense dot products;
   - random small layers (≤ 8 channels, ≤ 4 × 4 pixels), per feature (C = 4; L, B_w and the
     compaction domain drawn per layer):
     the row against the reference and the fast model on a one-row array, item by item;
   - a real trace (resnet18, 32 px, batch 2, seed 0, init weights, unless --trace): nine of its
     layers (--layers) cut to 1 image and 16 in / 16 out channels, C = 8, L = 3, B_w = 1, domain
     16, every feature's passes; the row runs --sample items of each pass, evenly spaced (the
     reference and the fast model cover every item).
3. Synthesis (Debian's yosys; skipped with a line when absent): the PE (int stand-in and bf16),
   and each row variant's own logic at C = 8, 16, 32, beside agos's component table for the same
   features; ratios feature / dense row.

    .venv/bin/python benchmarks/rtl.py [--trace DIR] [--items 1000] [--layer-items 500]
        [--sizes 8 16 32] [--no-synthesis] [--out benchmarks/results/rtl.json]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "rtl.json"
VERILOG = HERE.parent / "build" / "rtl"

# the synthesised variants: row features, and the variant each is measured on top of
VARIANTS = {
    "dense": ({}, None),
    "stream (L=3)": ({"stream": True}, "dense"),
    "join (B_w=1)": ({"stream": True, "join": True}, "stream (L=3)"),
    "join (B_w=2)": ({"stream": True, "join": True, "broadcast": 2}, "stream (L=3)"),
    "static outputs": ({"outputs": "static"}, "dense"),
    "compacted (domain 64)": ({"outputs": "compacted"}, "dense"),
    "compacted on stream": ({"stream": True, "outputs": "compacted"}, "stream (L=3)"),
    "agos row": ({"stream": True, "join": True, "outputs": "compacted"}, "dense"),
    "bypass bits (agos row)": (
        {"stream": True, "join": True, "outputs": "compacted", "bypass": True},
        "agos row",
    ),
}


def _summary(results) -> dict:
    """Totals over PassComparisons: items, equal, cycles (row, model), and the row's own counts."""
    out = {"items": 0, "dispatched": 0, "equal": 0, "rtl_cycles": 0, "model_cycles": 0}
    out.update(fast_cycles_whole=0, reference_cycles_whole=0)
    out.update(over=0, under=0, empty_window_cycles=0, held_cycles=0, check_failures=[])
    for r in results:
        out["items"] += r.count
        out["dispatched"] += r.dispatched
        out["equal"] += r.equal
        out["rtl_cycles"] += sum(r.rtl)
        out["model_cycles"] += sum(r.reference)
        out["fast_cycles_whole"] += r.fast_compute
        out["reference_cycles_whole"] += r.reference_total
        out["over"] += sum(a > b for a, b in zip(r.rtl, r.reference, strict=True))
        out["under"] += sum(a < b for a, b in zip(r.rtl, r.reference, strict=True))
        out["empty_window_cycles"] += sum(w.empty for w in r.walks)
        out["held_cycles"] += sum(w.held for w in r.walks)
        where = f"{r.layer} {r.pass_}"
        if r.rtl != [w.cycles for w in r.walks]:
            out["check_failures"].append(f"{where}: row ≠ its rules")
        if r.reference != r.spec:
            out["check_failures"].append(f"{where}: reference ≠ the spec's rule")
        if r.reference_total != r.fast_compute:
            out["check_failures"].append(f"{where}: fast ≠ reference")
        if not all(r.results_ok):
            out["check_failures"].append(f"{where}: results ≠ dense dot products")
    m = out["model_cycles"]
    out["rtl_over_model"] = round(out["rtl_cycles"] / m, 4) if m else None
    return out


def row_alone(count: int) -> dict:
    from agos.rtl.cases import random_items
    from agos.rtl.harness import run_row
    from agos.rtl.row import RowConfig
    from agos.rtl.timing import expected_results, walk

    rows = {
        "dense": RowConfig(cols=4),
        "stream": RowConfig(cols=4, stream=True, lookahead=3),
        "join": RowConfig(cols=4, stream=True, lookahead=4, join=True, broadcast=2),
        "static": RowConfig(cols=4, outputs="static"),
        "compacted": RowConfig(cols=4, outputs="compacted", domain=12),
        "stream+compacted": RowConfig(cols=4, stream=True, lookahead=2, outputs="compacted", domain=16),
        "bypass": RowConfig(cols=4, stream=True, join=True, outputs="compacted", domain=8),
    }
    out = {}
    for name, cfg in rows.items():
        t = time.perf_counter()
        items = random_items(cfg, count, seed=7, bypass=name == "bypass")
        run = run_row(cfg, items)
        out[name] = {
            "items": count,
            "cycles": run.total,
            "cycle_mismatches": sum(
                c != walk(cfg, it).cycles for c, it in zip(run.cycles, items, strict=True)
            ),
            "result_mismatches": sum(
                r != expected_results(cfg, it) for r, it in zip(run.results, items, strict=True)
            ),
            "seconds": round(time.perf_counter() - t, 1),
        }
        print(f"row alone {name}: {out[name]}", file=sys.stderr)
    return out


def random_layers(items: int) -> dict:
    from agos.rtl.cases import random_layer
    from agos.rtl.compare import FEATURES, compare_pass

    out = {}
    for name, f in FEATURES.items():
        t = time.perf_counter()
        results, seed, done = [], 0, 0
        while done < items:
            seed += 1
            r = random.Random(seed)
            lookahead, broadcast = r.choice([1, 2, 3, 4]), r.choice([1, 2]) if f.join else 1
            masks = random_layer(seed, 4, small=True)
            for pass_ in f.passes:
                res = compare_pass(masks, pass_, f, 4, lookahead, broadcast, r.choice([4, 8, 16]), seed)
                if res is not None:
                    results.append(res)
                    done += res.count
        out[name] = {**_summary(results), "layers": seed, "seconds": round(time.perf_counter() - t, 1)}
        print(f"random layers {name}: {out[name]}", file=sys.stderr)
    return out


LAYERS = [  # resnet18: the stem, each stage's first convs, a downsample, the last conv, the FC
    "conv1",
    "layer1.0.conv1",
    "layer1.0.conv2",
    "layer2.0.conv1",
    "layer2.0.conv2",
    "layer2.0.downsample.0",
    "layer3.0.conv1",
    "layer4.0.conv2",
    "fc",
]


def real_trace(trace_dir: Path, cols: int, lookahead: int, names: list[str], sample: int) -> dict:
    from agos.capture.trace import load_trace
    from agos.density.real import real_masks
    from agos.rtl.cases import cut_layer
    from agos.rtl.compare import FEATURES, compare_pass
    from agos.rtl.timing import decoupled_cycles

    trace = load_trace(trace_dir)
    layers = [
        cut_layer(real_masks(trace, rec), images=1, in_channels=2 * cols, out_channels=2 * cols)
        for rec in trace.layers
        if rec.geometry.groups == 1 and rec.geometry.k >= cols and (rec.name in names or "all" in names)
    ]
    out: dict = {"layers": [m.name for m in layers], "features": {}, "per_pass": []}
    for name, f in FEATURES.items():
        t = time.perf_counter()
        results = []
        for masks in layers:
            for pass_ in f.passes:
                res = compare_pass(masks, pass_, f, cols, lookahead, 1, 2 * cols, seed=0, sample=sample)
                if res is None:
                    continue
                results.append(res)
                row = {"feature": name, "layer": masks.name, "pass": pass_, **_summary([res])}
                del row["check_failures"]
                if name == "stream":  # a decoupled front end, as a what-if (Python only, not RTL)
                    row["decoupled_queue_L_cycles"] = sum(
                        decoupled_cycles(it.bits, lookahead, lookahead) for it in res.items
                    )
                out["per_pass"].append(row)
        out["features"][name] = {**_summary(results), "seconds": round(time.perf_counter() - t, 1)}
        print(f"real trace {name}: {out['features'][name]}", file=sys.stderr)
    return out


def synthesis(sizes: list[int], verilog_dir: Path) -> dict:
    from agos.rtl.row import RowConfig
    from agos.rtl.synth import synthesize, synthesize_pe, table_area, verilog, yosys_path

    yosys = yosys_path()
    if yosys is None:
        print("yosys not found: synthesis left out (apt-get install yosys)", file=sys.stderr)
        return {"left_out": "yosys not installed"}
    version = subprocess.run([yosys, "-V"], capture_output=True, text=True).stdout.strip()
    pe = {kind: synthesize_pe(kind, yosys) for kind in ("int", "bf16")}
    out: dict = {
        "yosys": version,
        "pe": {k: _gates(g) for k, g in pe.items()},
        "rows": {},
        "verilog": {},
    }
    verilog_dir.mkdir(parents=True, exist_ok=True)
    for C in sizes:
        rows = {}
        for name, (kw, base) in VARIANTS.items():
            cfg = RowConfig(cols=C, pe="bf16", domain=64, **{"bypass": False, **kw})
            t = time.perf_counter()
            got = synthesize(cfg, yosys)
            table = table_area(cfg)
            rows[name] = {"row": _gates(got.row), "table_um2": table, "base": base}
            took = time.perf_counter() - t
            print(f"synthesis C={C} {name}: {took:.0f} s {rows[name]['row']}", file=sys.stderr)
            if C == 8:
                text = verilog(cfg, yosys)
                path = verilog_dir / f"row-C8-{_slug(name)}.v"
                path.write_text(text)
                digest = hashlib.sha256(text.encode()).hexdigest()
                out["verilog"][path.name] = {"bytes": len(text), "sha256": digest}
        out["rows"][str(C)] = {"variants": rows, "ratios": _ratios(rows, pe["bf16"], C)}
    return out


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-").replace("--", "-")


def _gates(g) -> dict:
    return {"cells": g.cells, "transistors": g.transistors, "flops": g.flops, "um2": round(g.um2, 1)}


def _ratios(rows: dict, pe, C: int) -> dict:
    """Per feature: its added logic / the dense row (the dense row's own logic + C PEs), from
    synthesis (cells, transistors, µm²) and from the component table (µm²)."""
    dense = rows["dense"]["row"]
    row_total = {k: dense[k] + C * getattr(pe, k) for k in ("cells", "transistors", "um2")}
    table_dense = rows["dense"]["table_um2"]["pe array"]
    out = {}
    for name, v in rows.items():
        base = v["base"]
        if base is None:
            continue
        b = rows[base]
        syn = {k: (v["row"][k] - b["row"][k]) / row_total[k] for k in ("cells", "transistors", "um2")}
        tab_added = sum(v["table_um2"].values()) - sum(b["table_um2"].values())
        tab = tab_added / table_dense
        out[name] = {
            "synthesis_cells": round(syn["cells"], 4),
            "synthesis_transistors": round(syn["transistors"], 4),
            "synthesis_um2": round(syn["um2"], 4),
            "table_um2": round(tab, 4),
            "added_um2_synthesis": round(v["row"]["um2"] - b["row"]["um2"], 1),
            "added_um2_table": round(tab_added, 1),
        }
    out["dense row"] = {"synthesis_um2": round(row_total["um2"], 1), "table_um2": round(table_dense, 1)}
    return out


def markdown(figures: dict) -> str:
    """The tables of docs/rtl.md, from a results file."""
    lines = [
        "| feature | items (of dispatched) | equal | row cycles | model cycles | row / model |"
        " empty-window cycles | held cycles |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for part, key in (("random layers", "random_layers"), ("resnet18 cuts", "real_trace")):
        feats = figures[key]["features"] if key == "real_trace" else figures[key]
        for name, s in feats.items():
            lines.append(
                f"| {name} ({part}) | {s['items']:,} ({s['dispatched']:,}) | {s['equal']:,} |"
                f" {s['rtl_cycles']:,} | {s['model_cycles']:,} | {s['rtl_over_model']:.3f} |"
                f" {s['empty_window_cycles']:,} | {s['held_cycles']:,} |"
            )
    lines += [
        "",
        "| layer | pass | feature | row / model | decoupled what-if / model |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for row in figures["real_trace"]["per_pass"]:
        if row["feature"] in ("stream", "join", "stream+compacted") and row["rtl_over_model"] != 1.0:
            what_if = row.get("decoupled_queue_L_cycles")
            ratio = f"{what_if / row['model_cycles']:.3f}" if what_if else ""
            ratio_row = row["rtl_over_model"]
            lines.append(f"| {row['layer']} | {row['pass']} | {row['feature']} | {ratio_row:.3f} | {ratio} |")
    syn = figures["synthesis"]
    if "rows" in syn:
        lines += ["", "| feature | C | added µm² synthesis | added µm² table | synthesis / table |"
                  " ratio synthesis (cells, transistors, µm²) | ratio table |",
                  "| --- | ---: | ---: | ---: | ---: | --- | ---: |"]
        for C, block in syn["rows"].items():
            for name, r in block["ratios"].items():
                if name == "dense row":
                    continue
                added, table = r["added_um2_synthesis"], r["added_um2_table"]
                rel = f"{added / table:.2f}" if table else "—"
                cells, trans, um2 = r["synthesis_cells"], r["synthesis_transistors"], r["synthesis_um2"]
                lines.append(
                    f"| {name} | {C} | {added:,.0f} | {table:,.0f} | {rel} |"
                    f" {cells:.3f}, {trans:.3f}, {um2:.3f} | {r['table_um2']:.3f} |"
                )
            d = block["ratios"]["dense row"]
            syn_um2, tab_um2 = d["synthesis_um2"], d["table_um2"]
            lines.append(f"| dense row, whole (µm²) | {C} | {syn_um2:,.0f} | {tab_um2:,.0f} | | | |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", type=Path, help="a trace to cut layers from (default: capture resnet18)")
    ap.add_argument("--items", type=int, default=1000, help="random items per feature, row alone")
    ap.add_argument("--layer-items", type=int, default=500, help="dispatched items per feature")
    ap.add_argument("--layers", nargs="+", default=LAYERS, help="trace layers to cut ('all': every one)")
    ap.add_argument("--sample", type=int, default=150, help="items the row runs per real layer-pass")
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--no-synthesis", action="store_true")
    ap.add_argument("--verilog", type=Path, default=VERILOG)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--markdown", type=Path, help="print the tables of docs/rtl.md from this results file")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return

    import amaranth

    from agos.fileio import write_json

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        trace_dir = args.trace
        if trace_dir is None:
            from agos.api import trace as capture_trace
            from agos.inputs.options import RunOptions

            trace_dir = Path(tmp) / "resnet18"
            options = RunOptions(model="resnet18", batch_size=2, image_size=32, seed=0, device="cpu")
            capture_trace(options, trace_dir)
        from agos.capture.trace import load_trace

        prov = load_trace(trace_dir).provenance
        figures = {
            "what": "issue 25: the PE row in RTL against the cost model; its area from synthesis",
            "date": datetime.date.today().isoformat(),
            "machine": platform.platform(),
            "amaranth": amaranth.__version__,
            "trace": prov.model_dump(
                mode="json", include={"model", "weights", "batch_size", "image_size", "seed"}
            ),
            "row_alone": row_alone(args.items),
            "random_layers": random_layers(args.layer_items),
            "real_trace": {
                "cols": 8, "lookahead": 3, "broadcast": 1, "domain": 16,
                "cut": "1 image, 16 in / 16 out channels", "sample_per_pass": args.sample,
                **real_trace(trace_dir, 8, 3, args.layers, args.sample),
            },
        }  # fmt: skip
    if args.no_synthesis:
        figures["synthesis"] = {"left_out": "--no-synthesis"}
    else:
        figures["synthesis"] = synthesis(args.sizes, args.verilog)
    figures["seconds"] = round(time.perf_counter() - start, 1)
    write_json(figures, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
