#!/usr/bin/env bash
# scripts/check-docs.sh — keeps the guided tour in docs/ from rotting: runs every command
# shown there and compares the outputs shown there. Prints one line per check and a closing
# line "docs: N passed, M failed"; exit status 1 if any check fails.
# Usage: scripts/check-docs.sh [PAGE.md ...]   (default: docs/README.md docs/[0-9][0-9]-*.md)
#
# What a page may contain, and what is checked (the rules are also in docs/README.md):
#   ```sh [exit=N] [timeout=S] [needs=PATH]
#                                   a shell block: run with bash -eo pipefail from the repo root,
#                                   blocks of a page in order; must exit N (default 0) within
#                                   S seconds (default 60). needs=PATH: skipped (and so is its
#                                   output block) when PATH (e.g. ../shared/data) is absent;
#                                   under CI=true an absent PATH fails instead.
#                                   ```bash, ```shell and ```console are refused, so that no
#                                   command escapes the check.
#   ```text output-of-previous [approx]
#                                   the output (stdout and stderr together) of the sh block
#                                   just above it. Compared line by line after normalising:
#                                   trailing blanks dropped; a number with a time unit
#                                   (12.3 ms, 0.4 s, 0s, 5120 tok/s, 3.1 items/s, ms/step) becomes <t>; an
#                                   expected line "..." matches any run of lines (none included).
#                                   With approx, numbers also match when within a relative 1e-3
#                                   or both at most 1e-6 in size (rounding noise).
#   ```cpp excerpt PATH:A-B         must equal lines A..B of PATH exactly.
#   [text](../PATH#LA-LB "first … last")
#                                   a link into the code, on one line: PATH must exist, have
#                                   line B, line A contain "first" (line B "last", when given),
#                                   and a text of the form PATH:A-B agree with the target.
# The blocks run with OMP_NUM_THREADS=1 unless the caller sets it: chaingrad's results do not
# depend on the thread count, and on a busy machine one thread is much faster.
# Other fenced blocks (```cpp without excerpt, ```text without output-of-previous, ```json)
# are illustrations and are not checked.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
if [ $# -eq 0 ]; then set -- docs/README.md docs/[0-9][0-9]-*.md; fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec /usr/bin/python3 - "$@" <<'PY'
import os, re, subprocess, sys, time

NUM = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?"
TIME = re.compile(r"(?<![\w.])" + NUM + r" ?(?:ms/step|ms|us|µs|s|tok/s|rows/s|it/s|items/s)(?![\w/])")
TOKEN = re.compile(r"(" + NUM + r")")
FENCE = re.compile(r"^```(\S*)(.*)$")
LINK = re.compile(r"\[([^\]]*)\]\(([^)\s#]+)#L(\d+)(?:-L(\d+))?(?:\s+\"([^\"]*)\")?\)")
LOOSE = re.compile(r"\]\([^)\s]*#L\d")

passed = failed = skipped = 0
SKIP = object()  # the "output" of a skipped sh block


def report(ok, where, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    print(f"{'ok  ' if ok else 'FAIL'} {where} {what}")
    if detail and not ok:
        for line in detail.rstrip("\n").split("\n")[-40:]:
            print("     | " + line)
    sys.stdout.flush()


def norm_lines(text):
    lines = [TIME.sub("<t>", l.rstrip()) for l in text.replace("\r", "").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def num_close(a, b):
    x, y = float(a), float(b)
    if abs(x) <= 1e-6 and abs(y) <= 1e-6:
        return True
    return abs(x - y) <= 1e-3 * max(abs(x), abs(y))


def line_match(exp, act, approx):
    if exp == act:
        return True
    if not approx:
        return False
    e, a = TOKEN.split(exp), TOKEN.split(act)
    if len(e) != len(a):
        return False
    for i, (p, q) in enumerate(zip(e, a)):
        if i % 2 == 0:
            if p != q:
                return False
        elif not num_close(p, q):
            return False
    return True


def match(exp, act, approx):
    # exp may hold "..." lines that match any run of actual lines; dynamic programming.
    n, m = len(exp), len(act)
    ok = [[False] * (m + 1) for _ in range(n + 1)]
    ok[n][m] = True
    for i in range(n - 1, -1, -1):
        for j in range(m, -1, -1):
            if exp[i] == "...":
                ok[i][j] = ok[i + 1][j] or (j < m and ok[i][j + 1])
            else:
                ok[i][j] = j < m and line_match(exp[i], act[j], approx) and ok[i + 1][j + 1]
    return ok[0][0]


def first_mismatch(exp, act, approx):
    j = 0
    for i, e in enumerate(exp):
        if e == "...":
            return f"(mismatch after a '...' line; expected line {i + 1}: {e!r})"
        if j >= len(act):
            return f"expected line {i + 1} {e!r}, but the output ended"
        if not line_match(e, act[j], approx):
            return f"line {j + 1}: expected {e!r}\n         got      {act[j]!r}"
        j += 1
    return f"output has {len(act) - j} extra line(s), first: {act[j]!r}" if j < len(act) else "?"


def parse_opts(words):
    opts = {}
    for w in words:
        k, _, v = w.partition("=")
        opts[k] = v
    return opts


def check_page(page):
    with open(page, encoding="utf-8") as f:
        lines = f.read().split("\n")
    base = os.path.dirname(page)
    last_output, last_where = None, None
    i = 0
    while i < len(lines):
        line = lines[i]
        found = [m.start(2) for m in LINK.finditer(line)]
        for m in LINK.finditer(line):
            check_link(page, i + 1, base, m)
        for m in LOOSE.finditer(line):
            if m.start() + 2 not in found:
                report(False, f"{page}:{i + 1}", f"malformed code link {line[m.start():m.start() + 60]!r}: "
                       'write [text](../PATH#LA-LB "first … last") on one line')
        fm = FENCE.match(line)
        if not fm:
            i += 1
            continue
        lang, words = fm.group(1), fm.group(2).split()
        start = i + 1
        j = start
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        if j == len(lines):
            report(False, f"{page}:{i + 1}", "unclosed code fence")
            return
        body = "\n".join(lines[start:j])
        where = f"{page}:{i + 1}"
        if lang in ("bash", "shell", "console", "shell-session"):
            report(False, where, f"```{lang} block: mark commands ```sh so that they are run")
        elif lang == "sh":
            opts = parse_opts(words)
            if opts.get("needs") and not os.path.exists(opts["needs"]) and os.environ.get("CI") == "true":
                report(False, where, f"sh: CI=true and {opts['needs']} is absent (CI must provide it)")
                last_output, last_where = SKIP, where
            elif opts.get("needs") and not os.path.exists(opts["needs"]):
                global skipped
                skipped += 1
                print(f"skip {where} sh: {opts['needs']} is absent")
                last_output, last_where = SKIP, where
            else:
                last_output, last_where = run_block(where, body, opts)
        elif lang == "text" and words and words[0] == "output-of-previous":
            if last_output is SKIP:
                last_output = None
            elif last_output is None:
                report(False, where, "output block without a sh block before it")
            else:
                approx = "approx" in words[1:]
                exp, act = norm_lines(body), norm_lines(last_output)
                ok = match(exp, act, approx)
                report(ok, where, f"output of {last_where}{' (approx)' if approx else ''}",
                       "" if ok else first_mismatch(exp, act, approx) + "\n--- actual output:\n" + "\n".join(act))
                last_output = None
        elif words and words[0] == "excerpt":
            check_excerpt(where, body, words[1] if len(words) > 1 else "")
        i = j + 1


def run_block(where, body, opts):
    want = int(opts.get("exit", "0") or 0)
    limit = float(opts.get("timeout", "60") or 60)
    t0 = time.time()
    try:
        p = subprocess.run(["bash", "-eo", "pipefail", "-c", body], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=limit)
        out, rc = p.stdout.decode("utf-8", "replace"), p.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = (e.stdout or b"").decode("utf-8", "replace"), None
    dt = time.time() - t0
    first = body.strip().split("\n")[0]
    desc = f"sh `{first[:70]}{'…' if len(first) > 70 else ''}` ({dt:.1f} s)"
    if rc is None:
        report(False, where, desc + f": timed out after {limit:.0f} s", out)
    else:
        report(rc == want, where, desc + ("" if rc == want else f": exit {rc}, expected {want}"), out)
    return out, where


def check_excerpt(where, body, spec):
    m = re.fullmatch(r"(.+):(\d+)-(\d+)", spec)
    if not m:
        report(False, where, f"excerpt needs PATH:A-B, got {spec!r}")
        return
    path, a, b = m.group(1), int(m.group(2)), int(m.group(3))
    try:
        with open(path, encoding="utf-8") as f:
            src = f.read().split("\n")
    except OSError as e:
        report(False, where, f"excerpt {spec}: {e}")
        return
    want = "\n".join(src[a - 1:b])
    ok = b <= len(src) and want == body
    report(ok, where, f"excerpt {spec}", "" if ok else "--- the file now says:\n" + want)


def check_link(page, lineno, base, m):
    text, target, a = m.group(1), m.group(2), int(m.group(3))
    b = int(m.group(4)) if m.group(4) else a
    title = m.group(5)
    path = os.path.normpath(os.path.join(base, target))
    where = f"{page}:{lineno}"
    what = f"link {path}#L{a}" + (f"-L{b}" if b != a else "")
    if not os.path.isfile(path):
        report(False, where, what + ": no such file")
        return
    with open(path, encoding="utf-8") as f:
        src = f.read().split("\n")
    if src and src[-1] == "":
        src.pop()
    if not (1 <= a <= b <= len(src)):
        report(False, where, what + f": {path} has {len(src)} lines")
        return
    tm = re.fullmatch(r"(\S+):(\d+)(?:-(\d+))?", text)
    if tm and (os.path.normpath(tm.group(1)) != path or int(tm.group(2)) != a or int(tm.group(3) or tm.group(2)) != b):
        report(False, where, what + f": the link text says {text}")
        return
    if not title:
        report(False, where, what + ': give the link a title "text on the first line [… text on the last]"')
        return
    first, _, last = (s.strip() for s in title.partition("…"))
    ok = first in src[a - 1] and (not last or last in src[b - 1])
    report(ok, where, what + f' "{title}"',
           "" if ok else f"line {a}: {src[a - 1]!r}\nline {b}: {src[b - 1]!r}")


for page in sys.argv[1:]:
    if not os.path.isfile(page):
        report(False, page, "no such page")
        continue
    check_page(page)
print(f"docs: {passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed else 0)
PY
