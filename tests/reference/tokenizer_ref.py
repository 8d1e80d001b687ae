#!/usr/bin/python3
"""tests/reference/tokenizer_ref.py — an independent reference for llama2.c's BPE
tokenizer, written from the tok*.bin format and run.c's documented behaviour (shares no
code with the C++). Prints JSON with the ids (and the decoded bytes) of a fixed list of
strings; tests/golden/tokenizer_tok512.json is its output for stories260K's tok512.bin:

  /usr/bin/python3 tests/reference/tokenizer_ref.py ../shared/data/stories260K/tok512.bin \
      > tests/golden/tokenizer_tok512.json

The merge loop is run.c's literal one: rescan every adjacent pair, take the highest
score (> -1e10, float32), leftmost on ties, until no pair merges."""
import hashlib
import json
import os
import struct
import sys

import numpy as np

CASES = [
    # (bytes, bos, eos)
    (b"", True, False),
    (b"", False, False),
    (b"Once upon a time, there was a little girl named Lily.", True, False),
    (b"Once upon a time", False, True),
    (b"Hello world", True, True),
    (b"  two leading spaces and  double  spaces", True, False),
    (b"She said, \"I'm happy!\" and ran away.\nThe end.", True, False),
    (b"tab\tnewline\ncarriage\r\nreturn", True, False),
    (b"numbers 12345 and 3.14159", True, False),
    ("caf\u00e9 na\u00efve r\u00e9sum\u00e9".encode(), True, False),
    ("snowman \u2603 and emoji \U0001F600!".encode(), True, False),
    ("\u4f60\u597d\u4e16\u754c".encode(), True, False),
    (b"invalid \xff\xfe bytes \x80 lone", True, False),
    (b"truncated \xe2\x82", True, False),
    (b"five continuation \xf0\x9f\x98\x80\x80 bytes", True, False),
    (b"a", True, False),
    (b" ", True, False),
    (b"The little dog was very happy. He played with his ball all day long. "
     b"When the sun went down, he went to sleep in his warm bed.", True, True),
]


def load(path):
    data = open(path, "rb").read()
    (max_len,) = struct.unpack_from("<i", data, 0)
    pos, pieces, scores = 4, [], []
    while pos < len(data):
        score, n = struct.unpack_from("<fi", data, pos)
        pos += 8
        pieces.append(data[pos:pos + n])
        scores.append(np.float32(score))
        pos += n
    return data, max_len, pieces, scores


def encode(text, bos, eos, pieces, scores):
    index = {}
    for i, p in enumerate(pieces):
        index.setdefault(p, i)
    floor = np.float32(-1e10)
    ids = [1] if bos else []
    if text:
        ids.append(index.get(b" ", ord(" ") + 3))
    i = 0
    while i < len(text):
        # one UTF-8 character: this byte plus following continuation bytes, at most 4 in all
        j = i + 1
        while j < len(text) and (text[j] & 0xC0) == 0x80 and j - i < 4:
            j += 1
        ch = text[i:j]
        if ch in index:
            ids.append(index[ch])
        else:
            ids.extend(b + 3 for b in ch)
        i = j
    while True:
        best, best_id, best_at = floor, -1, -1
        for k in range(len(ids) - 1):
            m = index.get(pieces[ids[k]] + pieces[ids[k + 1]])
            if m is not None and scores[m] > best:
                best, best_id, best_at = scores[m], m, k
        if best_at < 0:
            break
        ids[best_at:best_at + 2] = [best_id]
    if eos:
        ids.append(2)
    return ids


def decode(ids, pieces):
    out = b""
    for k, t in enumerate(ids):
        if t in (1, 2):
            continue
        p = pieces[t]
        if k > 0 and ids[k - 1] == 1 and p[:1] == b" ":
            p = p[1:]
        if len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
            p = bytes([int(p[3:5], 16)])
        out += p
    return out


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/stories260K/tok512.bin"
    data, max_len, pieces, scores = load(path)
    cases = []
    for text, bos, eos in CASES:
        ids = encode(text, bos, eos, pieces, scores)
        cases.append({
            "text": text.decode("utf-8", errors="replace"),
            "hex": text.hex(),
            "bos": bos,
            "eos": eos,
            "ids": ids,
            "decoded_hex": decode(ids, pieces).hex(),
        })
    head = {
        "tokenizer": os.path.basename(path),
        "sha256": hashlib.sha256(data).hexdigest(),
        "vocab_size": len(pieces),
        "max_token_length": max_len,
    }
    lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()] + [' "cases": [']
    lines += ["  " + json.dumps(c, ensure_ascii=False) + ("," if k + 1 < len(cases) else "")
              for k, c in enumerate(cases)]
    lines += [" ]", "}"]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
