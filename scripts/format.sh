#!/usr/bin/env bash
# scripts/format.sh — formats the tracked C++ and CUDA sources (.cpp .h .cu) with clang-format
# and the repo's .clang-format, then moves what the docs point at along with the code:
# code links [text](../PATH#LA-LB "first … last") and ```cpp excerpt PATH:A-B blocks in every
# tracked .md file (scripts/check-docs.sh checks both) get the new line numbers, titles and
# bodies. The mapping is exact because the style only changes whitespace (no include sorting,
# no comment reflow, no added namespace comments): the script refuses, and writes nothing,
# when clang-format would change anything else in a file. Afterwards `make format-check`
# passes; the docs' sh blocks are not rerun (scripts/check-docs.sh does that).
# Usage: scripts/format.sh [CLANG_FORMAT]   (default: clang-format-14, else clang-format)
set -euo pipefail
cd "$(dirname "$0")/.."
cf=${1:-$(command -v clang-format-14 || command -v clang-format || true)}
[[ -n $cf ]] || { echo "format: no clang-format found (apt-get install clang-format-14)" >&2; exit 2; }
[[ -f .clang-format ]] || { echo "format: no .clang-format in $(pwd)" >&2; exit 2; }
exec /usr/bin/python3 - "$cf" <<'PY'
import os, re, subprocess, sys

cf = sys.argv[1]
files = subprocess.run(["git", "ls-files", "*.cpp", "*.h", "*.cu"], check=True, stdout=subprocess.PIPE,
                       text=True).stdout.split()
pages = subprocess.run(["git", "ls-files", "*.md"], check=True, stdout=subprocess.PIPE, text=True).stdout.split()
# The same patterns as scripts/check-docs.sh.
LINK = re.compile(r"\[([^\]]*)\]\(([^)\s#]+)#L(\d+)(?:-L(\d+))?(?:\s+\"([^\"]*)\")?\)")
FENCE = re.compile(r"^```(\S*)(.*)$")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def ns(text):
    return "".join(text.split())


# 1. Format every file in memory; refuse when anything but whitespace would change.
old, new, bad = {}, {}, []
for path in files:
    src = read(path)
    out = subprocess.run([cf, "--style=file", f"--assume-filename={path}"], input=src, check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    if out != src:
        if ns(out) != ns(src):
            bad.append(path)
        old[path], new[path] = src, out
if bad:
    for path in bad:
        print(f"format: clang-format changes more than whitespace in {path} (the style must not sort includes, "
              "reflow comments or add namespace comments)", file=sys.stderr)
    sys.exit(1)


class Mapping:
    """Lines of a file before and after formatting, tied by the non-whitespace characters."""

    def __init__(self, before, after):
        self.old = before.split("\n")
        self.new = after.split("\n")
        self.old_start = []  # non-whitespace characters before each old line
        n = 0
        for line in self.old:
            self.old_start.append(n)
            n += len(ns(line))
        self.new_line = []  # new line (1-based) of each non-whitespace character
        self.new_cols = []  # its column in that line
        for i, line in enumerate(self.new):
            for c, ch in enumerate(line):
                if not ch.isspace():
                    self.new_line.append(i + 1)
                    self.new_cols.append(c)

    def ns_at(self, line, col):
        """Non-whitespace index of the first such character at or after (old line, col)."""
        return self.old_start[line - 1] + len(ns(self.old[line - 1][:col]))

    def first(self, line):  # new line of old line's first non-whitespace character (None: blank)
        if not ns(self.old[line - 1]):
            return None
        return self.new_line[self.old_start[line - 1]]

    def last(self, line):
        k = len(ns(self.old[line - 1]))
        if k == 0:
            return None
        return self.new_line[self.old_start[line - 1] + k - 1]

    def text_on(self, i, j, line):
        """The new text of non-whitespace characters [i, j) that lies on new `line` (stripped)."""
        idx = [k for k in range(i, j) if self.new_line[k] == line]
        if not idx:
            return ""
        return self.new[line - 1][self.new_cols[idx[0]]:self.new_cols[idx[-1]] + 1]

    def title_part(self, text, old_line, new_line, from_end):
        """`text` (found on old_line) as it reads on new_line after formatting; the line's own
        first or last 40 characters when none of it is there."""
        col = self.old[old_line - 1].find(text) if not from_end else self.old[old_line - 1].rfind(text)
        if text and col >= 0:
            i = self.ns_at(old_line, col)
            part = self.text_on(i, i + len(ns(text)), new_line).strip()
            if part:
                return part
        s = self.new[new_line - 1].strip()
        return s[-40:].strip() if from_end else s[:40].strip()

    def span(self, a, b):
        """New lines [A', B'] of the old lines [a, b]; blank lines at either end are kept when
        the new file has blank lines there too."""
        lead = 0
        while a + lead <= b and not ns(self.old[a + lead - 1]):
            lead += 1
        trail = 0
        while b - trail >= a + lead and not ns(self.old[b - trail - 1]):
            trail += 1
        if a + lead > b:
            return None  # only blank lines: nothing to tie them to
        na, nb = self.first(a + lead), self.last(b - trail)
        while lead and na > 1 and not self.new[na - 2].strip():
            na, lead = na - 1, lead - 1
        while trail and nb < len(self.new) and not self.new[nb].strip():
            nb, trail = nb + 1, trail - 1
        return na, nb


maps = {p: Mapping(old[p], new[p]) for p in old}
moved_links = moved_excerpts = 0
problems = []


def fix_link(page, lineno, m):
    global moved_links
    text, target, a = m.group(1), m.group(2), int(m.group(3))
    b = int(m.group(4)) if m.group(4) else a
    title = m.group(5)
    path = os.path.normpath(os.path.join(os.path.dirname(page), target))
    mp = maps.get(path)
    if mp is None:
        return m.group(0)
    if not (1 <= a <= b <= len(mp.old)) or mp.first(a) is None or mp.last(b) is None:
        problems.append(f"{page}:{lineno}: link {path}#L{a}-L{b} does not point at code; left as it is")
        return m.group(0)
    na, nb = mp.first(a), mp.last(b)
    first, sep, last = (s.strip() for s in (title or "").partition("…"))
    new_title = title
    if title is not None:
        nf = mp.title_part(first, a, na, False)
        new_title = nf + (" … " + mp.title_part(last, b, nb, True) if sep and last else "")
    tm = re.fullmatch(r"(\S+):(\d+)(?:-(\d+))?", text)
    if tm and os.path.normpath(tm.group(1)) == path:
        text = f"{tm.group(1)}:{na}" + (f"-{nb}" if nb != na else "")
    out = f"[{text}]({target}#L{na}" + (f"-L{nb}" if nb != na else "") + ")"
    if new_title is not None:
        out = out[:-1] + f' "{new_title}")'
    if out != m.group(0):
        moved_links += 1
    return out


changed_pages = []
for page in pages:
    lines = read(page).split("\n")
    before = list(lines)
    # Excerpts first (their bodies are replaced), then the links on every other line.
    in_excerpt = set()
    i = 0
    while i < len(lines):
        fm = FENCE.match(lines[i])
        if not fm:
            i += 1
            continue
        words = fm.group(2).split()
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        ex = re.fullmatch(r"(.+):(\d+)-(\d+)", words[1]) if len(words) > 1 and words[0] == "excerpt" else None
        if ex and ex.group(1) in maps:
            path, a, b = ex.group(1), int(ex.group(2)), int(ex.group(3))
            mp = maps[path]
            if "\n".join(mp.old[a - 1:b]) != "\n".join(lines[i + 1:j]):
                problems.append(f"{page}:{i + 1}: excerpt {path}:{a}-{b} did not match the source before formatting")
            sp = mp.span(a, b) if 1 <= a <= b <= len(mp.old) else None
            if sp is None:
                problems.append(f"{page}:{i + 1}: excerpt {path}:{a}-{b} holds no code; left as it is")
            else:
                na, nb = sp
                head = f"```{fm.group(1)} excerpt {path}:{na}-{nb}" + "".join(" " + w for w in words[2:])
                body = mp.new[na - 1:nb]
                if head != lines[i] or body != lines[i + 1:j]:
                    moved_excerpts += 1
                lines[i] = head
                lines[i + 1:j] = body
                j = i + 1 + len(body)
        if words and words[0] == "excerpt":
            in_excerpt.update(range(i + 1, j))
        i = j + 1
    for i in range(len(lines)):
        if i not in in_excerpt:
            lines[i] = LINK.sub(lambda m: fix_link(page, i + 1, m), lines[i])
    if lines != before:
        changed_pages.append((page, "\n".join(lines)))

# 2. Write the sources, then the pages.
for path in new:
    with open(path, "w", encoding="utf-8") as f:
        f.write(new[path])
for page, text in changed_pages:
    with open(page, "w", encoding="utf-8") as f:
        f.write(text)
for p in problems:
    print("format: " + p, file=sys.stderr)
print(f"format: {len(new)} of {len(files)} files reformatted; {moved_links} code links and {moved_excerpts} "
      f"excerpts updated in {len(changed_pages)} pages")
sys.exit(1 if problems else 0)
PY
