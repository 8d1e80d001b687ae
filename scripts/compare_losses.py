#!/usr/bin/env python3
"""Compare the loss trajectories of two runs' JSONL metrics files, step by step.

usage: scripts/compare_losses.py A.jsonl B.jsonl [--rtol 2e-3]
Exit status 0 when every step's |loss_A - loss_B| / |loss_B| is within rtol, 1 otherwise.
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--rtol", type=float, default=2e-3)
    args = ap.parse_args()
    # Rows without a training loss (the step-0 validation row) are not steps.
    a = [r for r in (json.loads(line) for line in open(args.a) if line.strip()) if "loss" in r]
    b = [r for r in (json.loads(line) for line in open(args.b) if line.strip()) if "loss" in r]
    if not a or len(a) != len(b):
        sys.exit(f"compare_losses: {len(a)} vs {len(b)} steps")
    worst = max(abs(x["loss"] - y["loss"]) / max(abs(y["loss"]), 1e-6) for x, y in zip(a, b))
    print(f"{len(a)} steps, worst relative loss difference: {worst:.2e} (tolerance {args.rtol:g})")
    sys.exit(0 if worst <= args.rtol else 1)


if __name__ == "__main__":
    main()
