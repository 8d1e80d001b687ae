#!/usr/bin/python3
"""Draw loss curves of several runs from their JSONL metrics files into one PNG/SVG.

usage: scripts/plot.py OUT.png RUN.jsonl[=LABEL] ... [--key val_loss] [--title T] [--logy]
                      [--ylabel Y] [--dpi N]

Each metrics file holds one JSON object per line (see the tools' --metrics flag). The
default key is "loss" (training loss per step); "val_loss" uses only the steps where a
validation loss was measured. A key whose values are lists (gradflow's grad_norm_W, sv)
draws one line per list position, labelled LABEL[i].
"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_run(path, key):
    steps, values = [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"plot.py: {path}:{n}: not JSON ({e})")
            if key in row and row[key] is not None:
                steps.append(row.get("step", len(steps)))
                values.append(row[key])
    return steps, values


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output image (.png or .svg)")
    ap.add_argument("runs", nargs="+", help="metrics files, optionally FILE=LABEL")
    ap.add_argument("--key", default="loss", help="metric to plot (default: loss)")
    ap.add_argument("--title", default=None)
    ap.add_argument("--logy", action="store_true", help="logarithmic y axis")
    ap.add_argument("--xlabel", default="step")
    ap.add_argument("--ylabel", default=None, help="y-axis label (default: from the key)")
    ap.add_argument("--dpi", type=int, default=120, help="resolution of a PNG (default: 120)")
    a = ap.parse_args()

    fig, ax = plt.subplots(figsize=(7, 4.5))
    plotted = 0
    for spec in a.runs:
        path, _, label = spec.partition("=")
        try:
            steps, values = read_run(path, a.key)
        except OSError as e:
            sys.exit(f"plot.py: {e}")
        if not values:
            print(f"plot.py: {path} has no '{a.key}' values; skipped", file=sys.stderr)
            continue
        marker = "o" if len(values) < 30 else None
        if isinstance(values[0], list):
            for i in range(max(len(v) for v in values)):
                pts = [(s, v[i]) for s, v in zip(steps, values) if i < len(v) and v[i] is not None]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], label=f"{label or path}[{i}]", marker=marker,
                        markersize=3)
        else:
            ax.plot(steps, values, label=label or path, marker=marker, markersize=3)
        plotted += 1
    if plotted == 0:
        sys.exit("plot.py: nothing to plot")
    ax.set_xlabel(a.xlabel)
    ax.set_ylabel(a.ylabel or a.key.replace("_", " ") + (" (nats/token)" if "loss" in a.key else ""))
    if a.logy:
        ax.set_yscale("log")
    ax.set_title(a.title or f"{a.key} per step")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(a.out, dpi=a.dpi)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
