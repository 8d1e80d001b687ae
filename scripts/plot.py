#!/usr/bin/python3
"""Draw curves of one or more runs from their JSONL files (the tools' --metrics, --flow, --log)
into one PNG/SVG, or the standard four-plot panel of runs (--panel).

usage: scripts/plot.py OUT.png RUN.jsonl[=LABEL] ... [--key val_loss] [--module REGEX]
                      [--reduce mean|max|all] [--hline Y[=LABEL]] [--title T] [--logy]
                      [--ylabel Y] [--dpi N]
       scripts/plot.py OUT.png --panel METRICS.jsonl[,FLOW.jsonl][=LABEL] ... [--dpi N]

Each file holds one JSON object per line. The default key is "loss"; "val_loss" uses only
the steps where a validation loss was measured (finetune's step 0 is the base model's). A
key whose values are lists (grad_norm_W, sv) draws one line per list position, LABEL[i].

Gradient-flow files (finetune --flow, gradflow --metrics) hold one row per step and adapted
module: --module REGEX keeps the modules it matches (re.search), and --reduce combines the
kept modules of a step into one point: mean (default), max, or all (one line per module).

Runs given the same LABEL are seeds of one configuration: they are drawn as their mean with
a band from the lowest to the highest run. A method's colour is fixed (LoRA blue, MoSLoRA
green, LinChain red, LinChain identity orange, LinChain orthogonal purple), found in the
label; other labels take the remaining colours in order. One run's many lines (a list key,
--reduce all) are told apart by shade.

--panel draws, per run, the training loss (thin) and validation loss (dots), the factor
gradient norms ‖∂L/∂A‖, ‖∂L/∂B‖ and ‖∂L/∂P‖ (mean over modules), ΔW's effective rank
(mean over modules) and the learning rate. METRICS is the per-step file (finetune
--metrics); FLOW, the gradient-flow file (its rows also give lr and loss when METRICS lacks them).
"""
import argparse
import json
import math
import re
import sys
from collections import OrderedDict, defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Words for the keys the tools write (title, y label).
NAMES = {
    "loss": ("training loss", "loss (nats/token)"),
    "val_loss": ("validation loss", "loss (nats/token)"),
    "eval_loss": ("held-out loss", "loss"),
    "target_err": ("distance to the teacher's ΔW*", "‖ΔW − ΔW*‖ / ‖ΔW*‖"),
    "lr": ("learning rate", "learning rate"),
    "grad_norm": ("gradient norm (all adapter parameters, before clipping)", "‖∂L/∂θ‖"),
    "global_grad_norm": ("gradient norm (all adapter parameters, before clipping)", "‖∂L/∂θ‖"),
    "grad_norm_A": ("gradient of A", "‖∂L/∂A‖"),
    "grad_norm_B": ("gradient of B", "‖∂L/∂B‖"),
    "grad_norm_P": ("gradient of the chain product P", "‖∂L/∂P‖"),
    "grad_norm_W": ("gradients of the chain factors", "‖∂L/∂Wᵢ‖"),
    "update_norm": ("size of each update", "‖Δθ‖"),
    "delta_w_norm": ("size of the learned ΔW", "‖ΔW‖_F"),
    "sv": ("singular values of ΔW", "σᵢ(ΔW)"),
    "eff_rank": ("effective rank of ΔW", "exp(entropy of σ/Σσ)"),
    "stable_rank": ("stable rank of ΔW", "Σσ² / σ_max²"),
    "update_cos": ("cosine of successive updates", "cos(Δθ_t, Δθ_t−1)"),
    "tok_s": ("training speed", "tokens / s"),
    "ms": ("time per step", "ms"),
}

# Fixed colours per method, matched against the lower-cased label (longest key first).
METHOD_COLOURS = OrderedDict(
    [
        ("linchain orthogonal", "tab:purple"),
        ("linchain identity", "tab:orange"),
        ("linchain", "tab:red"),
        ("moslora", "tab:green"),
        ("lora", "tab:blue"),
    ]
)
OTHER_COLOURS = ["tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan", "black"]


def colour_for(label, assigned):
    if label in assigned:
        return assigned[label]
    low = label.lower().replace("-", " ").replace("_", " ")
    for key, c in METHOD_COLOURS.items():
        if key in low:
            assigned[label] = c
            return c
    used = set(assigned.values())
    c = next((c for c in OTHER_COLOURS if c not in used), OTHER_COLOURS[len(assigned) % len(OTHER_COLOURS)])
    assigned[label] = c
    return c


def read_rows(path):
    rows = []
    try:
        f = open(path)
    except OSError as e:
        sys.exit(f"plot.py: {e}")
    with f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"plot.py: {path}:{n}: not JSON ({e})")
    return rows


def series(rows, key, module=None, reduce="mean"):
    """{line name: (steps, values)} of one file; list values become name[i]."""
    by_step = defaultdict(list)  # step -> [(module, value)]
    for i, r in enumerate(rows):
        if key not in r or r[key] is None:
            continue
        m = r.get("module")
        if module and (m is None or not re.search(module, m)):
            continue
        by_step[r.get("step", i)].append((m, r[key]))
    out = defaultdict(lambda: ([], []))
    for step in sorted(by_step):
        entries = by_step[step]
        if reduce == "all" and any(m is not None for m, _ in entries):
            for m, v in entries:
                add_point(out, m, step, v)
            continue
        vals = [v for _, v in entries]
        if isinstance(vals[0], list):
            width = max(len(v) for v in vals)
            vals = [[v[i] for v in vals if i < len(v) and v[i] is not None] for i in range(width)]
            add_point(out, "", step, [combine(col, reduce) for col in vals])
        else:
            add_point(out, "", step, combine([v for v in vals if v is not None], reduce))
    return dict(out)


def combine(vals, reduce):
    if not vals:
        return None
    return max(vals) if reduce == "max" else sum(vals) / len(vals)


def add_point(out, name, step, v):
    if isinstance(v, list):
        for i, x in enumerate(v):
            if x is not None:
                out[f"{name}[{i}]"][0].append(step)
                out[f"{name}[{i}]"][1].append(x)
    elif v is not None:
        out[name][0].append(step)
        out[name][1].append(v)


def draw_group(ax, runs, colour, label, style="-", marker=None, logy=False, lw=1.6):
    """runs: [(steps, values)] of the seeds of one label: mean line, min–max band."""
    if len(runs) == 1:
        s, v = runs[0]
        ax.plot(s, v, style, color=colour, label=label, marker=marker, markersize=3, lw=lw)
        return
    common = sorted(set.intersection(*[set(s) for s, _ in runs]))
    table = [dict(zip(s, v)) for s, v in runs]
    cols = [[t[x] for t in table] for x in common]
    mean = [math.exp(sum(math.log(max(c, 1e-300)) for c in col) / len(col)) if logy else sum(col) / len(col)
            for col in cols]
    ax.plot(common, mean, style, color=colour, label=f"{label} (mean of {len(runs)})", marker=marker, markersize=3,
            lw=lw)
    ax.fill_between(common, [min(c) for c in cols], [max(c) for c in cols], color=colour, alpha=0.18, lw=0)


def parse_hline(spec):
    y, _, label = spec.partition("=")
    try:
        return float(y), label
    except ValueError:
        sys.exit(f"plot.py: --hline {spec!r}: expected a number, optionally =LABEL")


def finish(fig, ax_list, out, dpi, legend_ax=None):
    for ax in ax_list:
        ax.grid(alpha=0.3)
    handles, labels = (legend_ax or ax_list[0]).get_legend_handles_labels()
    if handles:  # outside the plot area, so that it never covers a line
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.04 + 0.035 * ((len(labels) - 1) // 4 + 1), 1, 1))
    fig.savefig(out, dpi=dpi)
    print(f"wrote {out}")


def single(a):
    fig, ax = plt.subplots(figsize=(7, 4.8))
    colours = {}
    groups = OrderedDict()  # (label, line) -> [(steps, values)]
    for spec in a.runs:
        path, _, label = spec.partition("=")
        label = label or path
        lines = series(read_rows(path), a.key, a.module, a.reduce)
        if not lines:
            print(f"plot.py: {path} has no '{a.key}' values" + (f" for modules /{a.module}/" if a.module else "") +
                  "; skipped", file=sys.stderr)
            continue
        for name, sv in lines.items():
            groups.setdefault((label, name), []).append(sv)
    if not groups:
        sys.exit("plot.py: nothing to plot")
    many = len({name for _, name in groups}) > 1
    styles = ["-", "--", ":", "-."]
    one_run = len({label for label, _ in groups}) == 1
    for (label, name), runs in groups.items():
        c = colour_for(label, colours)
        sub_all = sorted({n for (l2, n) in groups if l2 == label})
        if one_run and len(sub_all) > 4:  # one run's list entries / modules: shades, not one colour
            c = plt.cm.viridis(sub_all.index(name) / max(1, len(sub_all) - 1) * 0.9)
        marker = "o" if max(len(s) for s, _ in runs) < 30 else None
        sub = sorted({n for (l2, n) in groups if l2 == label})
        style = styles[sub.index(name) % len(styles)] if many and len(sub) <= 4 else "-"
        lw = 1.6 if len(sub) <= 4 else 1.1
        draw_group(ax, runs, c, f"{label}{name}" if many else label, style, marker, a.logy, lw)
    for spec in a.hline:
        y, label = parse_hline(spec)
        ax.axhline(y, color="0.35", lw=0.9, ls="--", label=label or None)
    title, ylabel = NAMES.get(a.key, (a.key.replace("_", " "), a.key.replace("_", " ")))
    if a.module or a.reduce != "mean":
        title += f" ({a.reduce} over modules" + (f" matching {a.module}" if a.module else "") + ")"
    ax.set_title(a.title or title)
    ax.set_xlabel(a.xlabel)
    ax.set_ylabel(a.ylabel or ylabel)
    if a.logy:
        ax.set_yscale("log")
    finish(fig, [ax], a.out, a.dpi)


def panel(a):
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    (ax_loss, ax_grad), (ax_rank, ax_lr) = axes
    colours = {}
    groups = OrderedDict()  # label -> list of (metrics rows, flow rows)
    for spec in a.runs:
        files, _, label = spec.partition("=")
        metrics, _, flow = files.partition(",")
        groups.setdefault(label or metrics, []).append((read_rows(metrics), read_rows(flow) if flow else []))
    for label, runs in groups.items():
        c = colour_for(label, colours)

        def pick(key, which, module_rows=False):
            out = []
            for m, f in runs:
                src = f if module_rows else (m if any(key in r for r in m) else f)
                s = series(src, key).get("")
                if s and s[0]:
                    out.append(s)
            return out if len(out) == len(runs) else (out[:1] if out else [])

        loss = pick("loss", "m")
        if loss:
            draw_group(ax_loss, loss, c, f"{label} train", "-", None, False, 0.8)
        val = pick("val_loss", "m") or pick("eval_loss", "m")
        if val:
            draw_group(ax_loss, val, c, f"{label} val", "-", "o", False, 1.8)
        for key, style in (("grad_norm_B", "-"), ("grad_norm_A", "--"), ("grad_norm_P", ":")):
            g = pick(key, "f", module_rows=True)
            if g:
                draw_group(ax_grad, g, c, f"{label} {NAMES[key][1]}", style, None, True, 1.4)
        r = pick("eff_rank", "f", module_rows=True)
        if r:
            draw_group(ax_rank, r, c, label, "-", "o" if len(r[0][0]) < 30 else None, False)
        lr = pick("lr", "m")
        if lr:
            draw_group(ax_lr, lr, c, label, "-", None, False)
    ax_loss.set(title="loss (thin: training batch; dots: validation)", xlabel="step", ylabel="loss (nats/token)")
    ax_grad.set(title="gradient of each factor (mean over modules)\nsolid ‖∂L/∂B‖, dashed ‖∂L/∂A‖, dotted ‖∂L/∂P‖",
                xlabel="step", ylabel="Frobenius norm")
    ax_grad.set_yscale("log")
    ax_rank.set(title="effective rank of ΔW (mean over modules)", xlabel="step", ylabel="exp(entropy of σ/Σσ)")
    for spec in a.hline:
        y, lab = parse_hline(spec)
        ax_rank.axhline(y, color="0.35", lw=0.9, ls="--", label=lab or None)
    ax_lr.set(title="learning rate", xlabel="step", ylabel="learning rate")
    finish(fig, list(axes.flat), a.out, a.dpi, legend_ax=ax_rank)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output image (.png or .svg)")
    ap.add_argument("runs", nargs="+", help="JSONL files, optionally FILE=LABEL (--panel: METRICS[,FLOW][=LABEL])")
    ap.add_argument("--panel", action="store_true", help="the standard four-plot panel of each run")
    ap.add_argument("--key", default="loss", help="metric to plot (default: loss)")
    ap.add_argument("--module", default=None, help="gradient-flow files: only modules matching this regex")
    ap.add_argument("--reduce", default="mean", choices=["mean", "max", "all"],
                    help="combine a step's module rows: mean (default), max, or all (a line per module)")
    ap.add_argument("--hline", action="append", default=[], help="reference line at Y (repeatable): Y or Y=LABEL")
    ap.add_argument("--title", default=None)
    ap.add_argument("--logy", action="store_true", help="logarithmic y axis")
    ap.add_argument("--xlabel", default="step")
    ap.add_argument("--ylabel", default=None, help="y-axis label (default: from the key)")
    ap.add_argument("--dpi", type=int, default=120, help="resolution of a PNG (default: 120)")
    a = ap.parse_args()
    if a.module:
        try:
            re.compile(a.module)
        except re.error as e:
            sys.exit(f"plot.py: --module {a.module!r} is not a regular expression ({e})")
    panel(a) if a.panel else single(a)


if __name__ == "__main__":
    main()
