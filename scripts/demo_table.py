#!/usr/bin/python3
"""Print the comparison table of `make demo` from finetune --summary JSON files."""
import json
import sys


def main():
    rows = []
    for path in sys.argv[1:]:
        with open(path) as f:
            rows.append(json.load(f))
    head = ["adapter", "trainable", "train loss", "val loss", "accuracy", "ms/step", "peak MB"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        name = r["adapter"] + (f" (n={r['chain']}{', biases' if r.get('chain_bias') else ''})"
                               if r["adapter"] == "linchain" else "")
        acc = f"{100 * r['accuracy']:.1f}%" if "accuracy" in r else "-"
        val = f"{r['final_val_loss']:.4f}" if r.get("final_val_loss", -1) >= 0 else "-"
        print(f"| {name} | {r['trainable_params']:,} | {r['final_loss']:.4f} | {val} | {acc} | "
              f"{r['ms_per_step']:.1f} | {r['peak_tensor_mb']:.1f} |")


if __name__ == "__main__":
    main()
