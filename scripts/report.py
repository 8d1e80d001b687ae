#!/usr/bin/python3
"""Write one static HTML page for one run or a comparison of runs: the configuration, a table,
the standard panel of plots (scripts/plot.py --panel) and the samples. The page is a single
file with its PNGs embedded, so it opens offline and can be mailed as it is.

usage: scripts/report.py OUT_DIR RUN_DIR[=LABEL] ... [--title T]

A run directory holds what the tools wrote for that run, any of:
  metrics.jsonl   finetune --metrics (per step; step 0 is the base model's validation loss)
  flow.jsonl      finetune --flow (per step and module gradient flow)
  summary.json    finetune --summary
  command.txt     the command line of the run
  samples.txt     text sampled from the run (e.g. finetune --sample-every, or generate)
OUT_DIR receives index.html and panel.png (the same PNG as embedded).
"""
import argparse
import base64
import html
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def rows(path):
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    sys.exit(f"report.py: {path}:{n}: not JSON ({e})")
    return out


def read(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read()


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def fmt(x, spec=".4g"):
    return "—" if x is None else (format(x, spec) if isinstance(x, (int, float)) else html.escape(str(x)))


def run_facts(d, label):
    m, f = rows(os.path.join(d, "metrics.jsonl")), rows(os.path.join(d, "flow.jsonl"))
    summary = json.loads(read(os.path.join(d, "summary.json")) or "{}")
    val = [(r["step"], r["val_loss"]) for r in m if r.get("val_loss") is not None]
    train = [r["loss"] for r in m if r.get("loss") is not None]
    step0 = [r for r in f if r.get("step") == 0]
    last_step = max((r["step"] for r in f), default=None)
    last = [r for r in f if r.get("step") == last_step]
    return {
        "label": label,
        "dir": d,
        "adapter": summary.get("adapter"),
        "rank": summary.get("rank"),
        "chain": summary.get("chain"),
        "params": summary.get("trainable_params"),
        "steps": summary.get("steps", max((r.get("step", 0) for r in m), default=None)),
        "base_val": next((v for s, v in val if s == 0), None),
        "final_val": val[-1][1] if val else summary.get("final_val_loss"),
        "final_train": train[-1] if train else summary.get("final_loss"),
        "ms": summary.get("ms_per_step"),
        "rank0": mean([r.get("eff_rank") for r in step0]),
        "gradB0": mean([r.get("grad_norm_B") for r in step0]),
        "rank_last": mean([r.get("eff_rank") for r in last]),
        "modules": len({r.get("module") for r in f}),
        "has_metrics": bool(m),
        "has_flow": bool(f),
        "command": read(os.path.join(d, "command.txt")),
        "samples": read(os.path.join(d, "samples.txt")),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output directory (created)")
    ap.add_argument("runs", nargs="+", help="run directories, optionally DIR=LABEL")
    ap.add_argument("--title", default=None)
    a = ap.parse_args()
    runs = []
    for spec in a.runs:
        d, _, label = spec.partition("=")
        if not os.path.isdir(d):
            sys.exit(f"report.py: {d}: not a directory")
        facts = run_facts(d, label or os.path.basename(os.path.normpath(d)))
        if not facts["has_metrics"] and not facts["has_flow"]:
            sys.exit(f"report.py: {d}: neither metrics.jsonl nor flow.jsonl")
        runs.append(facts)
    os.makedirs(a.out, exist_ok=True)
    panel = os.path.join(a.out, "panel.png")
    specs = []
    for r in runs:
        files = [os.path.join(r["dir"], "metrics.jsonl") if r["has_metrics"] else os.path.join(r["dir"], "flow.jsonl")]
        if r["has_flow"] and r["has_metrics"]:
            files.append(os.path.join(r["dir"], "flow.jsonl"))
        specs.append(",".join(files) + "=" + r["label"])
    p = subprocess.run([sys.executable, os.path.join(HERE, "plot.py"), panel, "--panel", *specs, "--dpi", "80"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"report.py: plot.py failed: {p.stderr.strip()}")
    with open(panel, "rb") as f:
        png = base64.b64encode(f.read()).decode()
    title = a.title or ("run " + runs[0]["label"] if len(runs) == 1 else "comparison: " + ", ".join(r["label"] for r in runs))
    cols = [("run", "label", None), ("adapter", "adapter", None), ("r", "rank", "d"), ("n", "chain", "d"),
            ("trainable", "params", "d"), ("steps", "steps", "d"), ("val loss, base (step 0)", "base_val", ".4f"),
            ("val loss, final", "final_val", ".4f"), ("train loss, last step", "final_train", ".4f"),
            ("ΔW eff. rank, step 0", "rank0", ".3g"), ("‖∂L/∂B‖, step 0", "gradB0", ".3g"),
            ("ΔW eff. rank, last", "rank_last", ".3g"), ("ms/step", "ms", ".1f")]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{html.escape(title)}</title>",
           "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
           "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}"
           "th{background:#eee}td:first-child{text-align:left}pre{background:#f6f6f6;padding:8px;white-space:pre-wrap}"
           "img{max-width:100%}</style></head><body>", f"<h1>{html.escape(title)}</h1>", "<h2>Results</h2>",
           "<table><tr>" + "".join(f"<th>{html.escape(c[0])}</th>" for c in cols) + "</tr>"]
    for r in runs:
        out.append("<tr>" + "".join(f"<td>{fmt(r[k], s) if s else fmt(r[k])}</td>" for _, k, s in cols) + "</tr>")
    out.append("</table>")
    out.append("<p>Validation loss at step 0 is the base model's, before any update. Gradient-flow columns are "
               "means over the recorded modules (" + ", ".join(str(r["modules"]) for r in runs) + ").</p>")
    out.append('<h2>Plots</h2><img alt="loss, factor gradient norms, effective rank of ΔW, learning rate" '
               f'src="data:image/png;base64,{png}">')
    out.append("<h2>Configuration</h2>")
    for r in runs:
        out.append(f"<h3>{html.escape(r['label'])}</h3><p>files: {html.escape(r['dir'])}</p>")
        if r["command"]:
            out.append(f"<pre>{html.escape(r['command'].strip())}</pre>")
    if any(r["samples"] for r in runs):
        out.append("<h2>Samples</h2>")
        for r in runs:
            if r["samples"]:
                out.append(f"<h3>{html.escape(r['label'])}</h3><pre>{html.escape(r['samples'].strip())}</pre>")
    out.append("</body></html>")
    index = os.path.join(a.out, "index.html")
    tmp = index + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(out) + "\n")
    os.replace(tmp, index)
    print(f"wrote {index}")


if __name__ == "__main__":
    main()
