#!/usr/bin/python3
"""Tables and figures of the teacher-student study from the JSONL files of scripts/study_teacher.sh.

usage: /usr/bin/python3 scripts/study_teacher.py RUNDIR [--figures docs/figures]

Reads RUNDIR/<opt>_lr<lr>_<init>_<method>_s<seed>.log.jsonl (one row per step: step, loss,
eval_loss, target_err, lr) with the matching .gf.jsonl (per-module gradient flow, every 10
steps) and .out (stdout: "diverged" when the loss blew up), plus RUNDIR/wake_<opt>.gf.jsonl
(logged every step). Prints markdown tables (mean ± std over seeds) and writes
teacher_loss.png, teacher_wakeup.png, teacher_effrank.png into the figures folder.
"""
import argparse
import glob
import json
import math
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

TARGET = 1e-3
METHODS = ["lora", "moslora", "linchain1", "linchain2", "linchain3", "linchain4"]
LABEL = {"lora": "LoRA", "moslora": "MoSLoRA (= LinChain n=1)", "linchain1": "LinChain n=1", "linchain2": "LinChain n=2",
         "linchain3": "LinChain n=3", "linchain4": "LinChain n=4"}


def short(m):
    return LABEL[m].split(" (")[0]


NAME_RE = re.compile(r"^(adamw|sgd)_lr([0-9.e-]+)_(kaiming|identity|orthogonal)_(\w+?)_s(\d+)\.log\.jsonl$")


def read_jsonl(path):
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    sys.exit(f"study_teacher.py: {path}:{n}: not JSON ({e})")
    return rows


def load(rundir):
    runs = {}
    for path in sorted(glob.glob(os.path.join(rundir, "*.log.jsonl"))):
        m = NAME_RE.match(os.path.basename(path))
        if not m:
            continue
        opt, lr, init, method, seed = m.group(1), float(m.group(2)), m.group(3), m.group(4), int(m.group(5))
        rows = read_jsonl(path)
        base = path[: -len(".log.jsonl")]
        out = open(base + ".out").read() if os.path.exists(base + ".out") else ""
        diverged = "diverged" in out or not rows
        ev = np.array([r.get("eval_loss", math.nan) for r in rows], dtype=float)
        reach = next((i + 1 for i, v in enumerate(ev) if v < TARGET), None)
        gf = read_jsonl(base + ".gf.jsonl") if os.path.exists(base + ".gf.jsonl") else []
        runs[(opt, lr, init, method, seed)] = dict(eval=ev, final=(math.nan if diverged else ev[-1]), reach=reach,
                                                   diverged=diverged, gf=gf)
    if not runs:
        sys.exit(f"study_teacher.py: no runs in {rundir}")
    return runs


def seeds_of(runs, opt, lr, init, method):
    return [v for (o, l, i, m, s), v in sorted(runs.items()) if (o, l, i, m) == (opt, lr, init, method)]


def fmt_loss(vals):
    vals = [v for v in vals if not math.isnan(v)]
    if not vals:
        return "diverged"
    a = np.array(vals)
    return f"{a.mean():.2e} ± {a.std():.1e}"


def fmt_reach(rs, n):
    hit = [r for r in rs if r is not None]
    if not hit:
        return f"— (0/{n})"
    a = np.array(hit, dtype=float)
    return f"{a.mean():.0f} ± {a.std():.0f} ({len(hit)}/{n})"


def summary(runs, opt, lr, init, method):
    rs = seeds_of(runs, opt, lr, init, method)
    return rs, [r["final"] for r in rs], [r["reach"] for r in rs], sum(r["diverged"] for r in rs)


def lrs_of(runs, opt, init="kaiming"):
    return sorted({k[1] for k in runs if k[0] == opt and k[2] == init})


def best_lr(runs, opt, method):
    """The lr of the sweep with the fewest mean steps to target among the lrs where every seed
    ends below the target (reaching it and then blowing up does not count); when no lr does, the
    lr with the lowest mean final loss. Returns (lr, rule) or (None, None) when all diverged."""
    stable, fallback = None, None
    for lr in lrs_of(runs, opt):
        rs, finals, reach, div = summary(runs, opt, lr, "kaiming", method)
        if not rs or div:
            continue
        mean_final = float(np.mean(finals))
        if fallback is None or mean_final < fallback[0]:
            fallback = (mean_final, lr)
        if all(f < TARGET for f in finals) and all(r is not None for r in reach):
            key = (float(np.mean(reach)), mean_final)
            if stable is None or key < stable[0]:
                stable = (key, lr)
    if stable:
        return stable[1], "steps"
    return (fallback[1], "final") if fallback else (None, None)


def tables(runs):
    out = []
    nseeds = len({k[4] for k in runs})
    for opt in ("adamw", "sgd"):
        lrs = lrs_of(runs, opt)
        out.append(f"\n### {opt.upper()}, kaiming mixers: final held-out MSE (step 400) and steps to MSE < {TARGET:g}\n")
        out.append(f"mean ± std over {nseeds} seeds; steps to target averaged over the seeds that reached it "
                   f"(count in brackets).\n")
        out.append("| method | " + " | ".join(f"lr {lr:g}: final MSE | lr {lr:g}: steps" for lr in lrs) + " |")
        out.append("|---|" + "---|---|" * len(lrs))
        for m in METHODS:
            cells = []
            for lr in lrs:
                rs, finals, reach, div = summary(runs, opt, lr, "kaiming", m)
                cells += [fmt_loss(finals) + (f" ({div} diverged)" if div and div < len(rs) else ""),
                          fmt_reach(reach, len(rs))]
            out.append(f"| {short(m)} | " + " | ".join(cells) + " |")
        out.append(f"\n### {opt.upper()}, kaiming mixers: each method at its own best lr\n")
        out.append("Best lr: fewest mean steps to target among the lrs where all seeds reach the target and end "
                   "below it (*); otherwise (†) the lr with the lowest mean final MSE.\n")
        out.append("| method | best lr | final MSE | steps to target |")
        out.append("|---|---|---|---|")
        for m in METHODS:
            lr, rule = best_lr(runs, opt, m)
            if lr is None:
                out.append(f"| {short(m)} | — | all lrs diverged | — |")
                continue
            rs, finals, reach, _ = summary(runs, opt, lr, "kaiming", m)
            mark = "*" if rule == "steps" else "†"
            out.append(f"| {short(m)} | {lr:g} {mark} | {fmt_loss(finals)} | {fmt_reach(reach, len(rs))} |")
    inits = sorted({(k[0], k[1]) for k in runs if k[2] != "kaiming"})
    if inits:
        out.append("\n### Mixer init (LinChain), final held-out MSE / steps to target\n")
        head = [f"{o.upper()} lr {lr:g}" for o, lr in inits]
        out.append("| method | init | " + " | ".join(head) + " |")
        out.append("|---|---|" + "---|" * len(inits))
        for m in ["linchain2", "linchain3", "linchain4"]:
            for init in ["kaiming", "identity", "orthogonal"]:
                cells = []
                for o, lr in inits:
                    rs, finals, reach, div = summary(runs, o, lr, init, m)
                    cells.append(f"{fmt_loss(finals)} / {fmt_reach(reach, len(rs))}" if rs else "—")
                out.append(f"| {short(m)} | {init} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def fig_loss(runs, figdir):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (opt, lr) in zip(axes, [("adamw", 0.01), ("sgd", 0.3)]):
        for m in METHODS:
            rs = [r for r in seeds_of(runs, opt, lr, "kaiming", m) if not r["diverged"]]
            if not rs:
                continue
            n = min(len(r["eval"]) for r in rs)
            ev = np.array([r["eval"][:n] for r in rs])
            steps = np.arange(1, n + 1)
            ls = "--" if m == "moslora" else "-"
            line, = ax.plot(steps, np.exp(np.log(ev).mean(0)), ls, label=LABEL[m], lw=1.3)
            ax.fill_between(steps, ev.min(0), ev.max(0), color=line.get_color(), alpha=0.15)
        ax.axhline(TARGET, color="gray", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel("optimizer step")
        ax.set_title(f"{opt.upper()}, lr {lr:g} (geometric mean of seeds, band = min–max)")
    axes[0].set_ylabel("held-out MSE")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(figdir, "teacher_loss.png"), dpi=90)
    plt.close(fig)


def fig_wakeup(rundir, figdir):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, opt in zip(axes, ["adamw", "sgd"]):
        path = os.path.join(rundir, f"wake_{opt}.gf.jsonl")
        if not os.path.exists(path):
            continue
        rows = read_jsonl(path)
        steps = np.array([r["step"] for r in rows])
        series = [("∂L/∂A", [r["grad_norm_A"] for r in rows]), ("∂L/∂B", [r["grad_norm_B"] for r in rows]),
                  ("∂L/∂P", [r["grad_norm_P"] for r in rows])]
        for i in range(len(rows[0]["grad_norm_W"])):
            series.append((f"∂L/∂W{i + 1}", [r["grad_norm_W"][i] for r in rows]))
        for name, vals in series:
            v = np.array(vals, dtype=float)
            v[v <= 0] = np.nan  # step 0: exactly zero (B = 0), not drawable on a log axis
            ax.plot(steps, v, label=name, lw=1.1, ls="--" if name == "∂L/∂P" else "-")
        ax.set_yscale("log")
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(left=0)
        ax.set_xlabel("optimizer step (symlog)")
        ax.set_ylabel("Frobenius norm of the gradient")
        zero = [name for name, vals in series if vals[0] == 0]
        ax.set_title(f"LinChain n=3, {opt.upper()}: step 0 zero for {', '.join(zero)}", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(figdir, "teacher_wakeup.png"), dpi=90)
    plt.close(fig)


def teacher_eff_rank(ratio=0.5, k=4):
    s = np.array([ratio ** i for i in range(k)])
    p = s / s.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def fig_effrank(runs, figdir):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (opt, lr) in zip(axes, [("adamw", 0.01), ("sgd", 0.3)]):
        for m in METHODS:
            rs = [r for r in seeds_of(runs, opt, lr, "kaiming", m) if not r["diverged"] and r["gf"]]
            if not rs:
                continue
            n = min(len(r["gf"]) for r in rs)
            steps = [row["step"] for row in rs[0]["gf"][:n]]
            er = np.array([[row["eff_rank"] for row in r["gf"][:n]] for r in rs])
            ax.plot(steps, er.mean(0), "--" if m == "moslora" else "-", label=LABEL[m], lw=1.3)
        ax.axhline(teacher_eff_rank(), color="gray", ls=":", lw=1, label="ΔW* (teacher)")
        ax.set_xlabel("optimizer step")
        ax.set_title(f"{opt.upper()}, lr {lr:g}: effective rank of ΔW (mean of seeds)", fontsize=9)
    axes[0].set_ylabel("exp(entropy of σ/Σσ)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(figdir, "teacher_effrank.png"), dpi=90)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rundir")
    ap.add_argument("--figures", default="docs/figures")
    a = ap.parse_args()
    runs = load(a.rundir)
    os.makedirs(a.figures, exist_ok=True)
    fig_loss(runs, a.figures)
    fig_wakeup(a.rundir, a.figures)
    fig_effrank(runs, a.figures)
    print(tables(runs))
    pre = os.path.join(a.rundir, "preconditioner.txt")
    if os.path.exists(pre):
        print("\n### Preconditioner check\n\n```\n" + open(pre).read().rstrip() + "\n```")


if __name__ == "__main__":
    main()
