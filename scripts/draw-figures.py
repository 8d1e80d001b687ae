#!/usr/bin/python3
"""Draw the two pictures of the tour as small SVG files (no dependencies; deterministic):
  docs/figures/tape.svg        page 1: the tape of z = x·w + b, L = mean(z ⊙ z), forward and backward
  docs/figures/chain_tree.svg  page 3: ChainMatmul's product tree ((x·A)·((W₁·(W₂·W₃))·Bᵀ)) and
                               where ∂L/∂P is read

usage: scripts/draw-figures.py [OUT_DIR]   (default docs/figures)
"""
import os
import sys

FONT = 'font-family="DejaVu Sans, Arial, sans-serif"'


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Svg:
    def __init__(self, w, h):
        self.w, self.h, self.items = w, h, []

    def box(self, x, y, w, h, text, fill="#fff", stroke="#333", sub=None, bold=False):
        self.items.append(f'<rect x="{x - w / 2}" y="{y - h / 2}" width="{w}" height="{h}" rx="6" fill="{fill}" '
                          f'stroke="{stroke}" stroke-width="1.5"/>')
        dy = -6 if sub else 0
        weight = ' font-weight="bold"' if bold else ""
        self.text(x, y + 5 + dy, text, 14, extra=weight)
        if sub:
            self.text(x, y + 17, sub, 11, colour="#555")

    def text(self, x, y, s, size=13, colour="#222", anchor="middle", extra=""):
        self.items.append(f'<text x="{x}" y="{y}" font-size="{size}" fill="{colour}" text-anchor="{anchor}" '
                          f'{FONT}{extra}>{esc(s)}</text>')

    def arrow(self, x1, y1, x2, y2, colour="#333", dash=False, width=1.5):
        d = ' stroke-dasharray="6,4"' if dash else ""
        marker = "red" if colour != "#333" else "black"
        self.items.append(f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{colour}" stroke-width="{width}"{d} '
                          f'marker-end="url(#arrow-{marker})"/>')

    def write(self, path):
        defs = "".join(
            f'<marker id="arrow-{n}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            f'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="{c}"/></marker>'
            for n, c in (("black", "#333"), ("red", "#c0392b")))
        body = "\n".join(self.items)
        with open(path, "w") as f:
            f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" '
                    f'viewBox="0 0 {self.w} {self.h}">\n<defs>{defs}</defs>\n'
                    f'<rect width="100%" height="100%" fill="white"/>\n{body}\n</svg>\n')
        print(f"wrote {path}")


RED = "#c0392b"


def tape(path):
    s = Svg(860, 330)
    s.text(430, 24, "the tape of  z = x·w + b,  L = mean(z ⊙ z)   (examples/tape_tour.cpp)", 15, extra=' font-weight="bold"')
    # leaves
    s.box(70, 80, 90, 34, "x [2,3]", fill="#eee", sub="data")
    s.box(70, 150, 90, 34, "w [3,2]", fill="#fdebd0", sub="trainable *")
    s.box(260, 210, 90, 34, "b [2]", fill="#fdebd0", sub="trainable *")
    nodes = [(230, 115, "#0 matmul"), (410, 115, "#1 add"), (590, 115, "#2 mul"), (770, 115, "#3 mean_all")]
    for x, y, t in nodes:
        s.box(x, y, 120, 40, t, fill="#d6eaf8", bold=True)
    s.arrow(115, 85, 170, 108)
    s.arrow(115, 145, 170, 122)
    s.arrow(290, 115, 350, 115)
    s.arrow(300, 200, 370, 136)
    s.arrow(470, 108, 530, 108)  # z used twice
    s.arrow(470, 122, 530, 122)
    s.text(500, 100, "z", 12)
    s.text(500, 142, "z (again)", 11)
    s.arrow(650, 115, 710, 115)
    s.text(430, 165, "forward: each op appends one node, in the order it ran (a topological order)", 12)
    # backward
    s.arrow(770, 250, 600, 250, colour=RED, dash=True)
    s.text(685, 243, "¼ everywhere", 12, colour=RED)
    s.arrow(590, 250, 420, 250, colour=RED, dash=True)
    s.text(505, 243, "z/4 + z/4 = z/2", 12, colour=RED)
    s.arrow(410, 250, 240, 250, colour=RED, dash=True)
    s.text(325, 243, "z/2", 12, colour=RED)
    s.arrow(230, 258, 110, 258, colour=RED, dash=True)
    s.text(150, 276, "∂L/∂w = xᵀ·z/2", 12, colour=RED)
    s.arrow(410, 258, 305, 225, colour=RED, dash=True)
    s.text(400, 292, "∂L/∂b = Σ_rows z/2", 12, colour=RED)
    s.text(430, 320, "backward(L): walk the list from the end; each node turns the gradient of its output into "
           "its inputs' (x needs none)", 12, colour=RED)
    s.write(path)


def chain_tree(path):
    s = Svg(860, 420)
    s.text(430, 24, "ChainMatmul's product tree for y = x·A·W₁·W₂·W₃·Bᵀ (r = 4)   (examples/chain_tour.cpp)", 15,
           extra=' font-weight="bold"')
    # tree nodes: (id, x, y, label, sub)
    pos = {
        "root": (430, 70, "y = (x·A)·(P·Bᵀ)", "[64,32]"),
        "xa": (200, 160, "x·A", "[64,4]"),
        "pb": (640, 160, "P·Bᵀ", "[4,32]"),
        "x": (110, 260, "x", "[64,32] data"),
        "a": (290, 260, "A", "[32,4]"),
        "p": (540, 260, "P = W₁·(W₂·W₃)", "[4,4]  probe: ∂L/∂P"),
        "bt": (760, 260, "Bᵀ", "[4,32]"),
        "w1": (430, 360, "W₁", "[4,4]"),
        "w23": (640, 360, "W₂·W₃", "[4,4]"),
    }
    edges = [("root", "xa"), ("root", "pb"), ("xa", "x"), ("xa", "a"), ("pb", "p"), ("pb", "bt"), ("p", "w1"),
             ("p", "w23")]
    for a, b in edges:
        (x1, y1, *_), (x2, y2, *_) = pos[a], pos[b]
        s.arrow(x2, y2 - 20, x1 + (x2 - x1) * 0.15, y1 + 22)
    for k, (x, y, t, sub) in pos.items():
        fill = "#fdebd0" if k == "p" else ("#eee" if k == "x" else ("#d6eaf8" if k in ("root", "xa", "pb", "w23") else "#fff"))
        w = 170 if k in ("p", "root") else 110
        s.box(x, y, w, 42, t, fill=fill, sub=sub, stroke=RED if k == "p" else "#333")
    s.text(760, 350, "W₂·W₃ splits into", 11, colour="#555")
    s.text(760, 364, "the leaves W₂, W₃", 11, colour="#555")
    s.text(40, 330, "order: r×r factors first (17024 multiplications", 12, anchor="start")
    s.text(40, 346, "instead of 19456 left to right)", 12, anchor="start")
    s.text(30, 380, "backward: each inner node sends G·Rᵀ left and Lᵀ·G right,", 11, colour=RED, anchor="start")
    s.text(30, 396, "reusing the forward's partial products; the gradient", 11, colour=RED, anchor="start")
    s.text(30, 412, "arriving at P is ∂L/∂P, which the probe keeps", 11, colour=RED, anchor="start")
    s.write(path)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "docs/figures"
    os.makedirs(out, exist_ok=True)
    tape(os.path.join(out, "tape.svg"))
    chain_tree(os.path.join(out, "chain_tree.svg"))


if __name__ == "__main__":
    main()
