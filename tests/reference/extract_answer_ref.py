#!/usr/bin/env python3
"""tests/reference/extract_answer_ref.py — writes tests/golden/extract_answer.json: replies and
the answer that LLM-Adapters' evaluation scripts extract from them, computed here with Python's
`re` the way those scripts do it. commonsense_evaluate.py takes the first re.findall match of a
fixed alternation per dataset. evaluate.py removes commas and takes the last match of
-?\\d+\\.?\\d* as a float (inf when there is none), or for AQuA the first of A|B|C|D|E.
tests/test_task_generate.cpp compares models::extract_answer with this file.
Usage: python3 tests/reference/extract_answer_ref.py --out tests/golden"""
import argparse
import json
import os
import re

PATTERNS = {
    "boolq": r"true|false",
    "piqa": r"solution1|solution2",
    "social_i_qa": r"answer1|answer2|answer3|answer4|answer5",
    "ARC-Easy": r"answer1|answer2|answer3|answer4|answer5",
    "hellaswag": r"ending1|ending2|ending3|ending4",
    "winogrande": r"option1|option2",
    "AQuA": r"A|B|C|D|E",
}
# The choices each dataset's items list in "Answer format:" (empty: an arithmetic item).
CHOICES = {
    "boolq": ["true", "false"],
    "piqa": ["solution1", "solution2"],
    "social_i_qa": ["answer1", "answer2", "answer3"],
    "ARC-Easy": ["answer1", "answer2", "answer3", "answer4"],
    "hellaswag": ["ending1", "ending2", "ending3", "ending4"],
    "winogrande": ["option1", "option2"],
    "AQuA": [],
    "gsm8k": [],
}
GOLD = {"AQuA": "C", "gsm8k": "18.0"}

REPLIES = [
    "the correct answer is true", "True.", "untrue", "false, then true", "", "   answer5 answer2",
    "Answer1 then answer3", "solution2solution1", "The answer is 1,234.5 and then -3.", "7.0.",
    "ending4 ending1", "option2 or option1", "Choices: (D) 12", "A B", "no digits here", "-0.5 apples",
    "answer10", "3.14.15", "endingending2", "optionoption1 true",
]


def extract(dataset, reply):
    s = reply.strip()
    if dataset in PATTERNS:
        found = re.findall(PATTERNS[dataset], s)
        return found[0] if found else ""
    found = re.findall(r"-?\d+\.?\d*", reply.replace(",", ""))
    return float(found[-1]) if found else float("inf")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/golden")
    args = ap.parse_args()
    rows = []
    for dataset in CHOICES:
        for reply in REPLIES:
            e = extract(dataset, reply)
            rows.append({"dataset": dataset, "choices": CHOICES[dataset], "gold": GOLD.get(dataset, CHOICES[dataset][0] if CHOICES[dataset] else ""),
                         "reply": reply, "extracted": e if isinstance(e, str) else None,
                         "number": e if isinstance(e, float) and e != float("inf") else None})
    with open(os.path.join(args.out, "extract_answer.json"), "w") as f:
        json.dump(rows, f, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()
