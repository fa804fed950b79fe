#!/usr/bin/env python3
"""Folds `perf script` output into call stacks and draws them as a flame graph (SVG), plus a
text table of the functions with the most self time and inclusive time: where a run's CPU goes.

    perf script -i perf.data | perf-scripts/bench-flame.py --title "PUT 64 MiB" OUT_PREFIX
    -> OUT_PREFIX.folded  (one "frame;frame;frame count" line per distinct stack)
       OUT_PREFIX.svg     (the flame graph: width = share of samples, root at the bottom)
       OUT_PREFIX.top.txt (top functions by self and by inclusive samples)
"""

import argparse
import hashlib
import html
import re
import sys
from collections import Counter, defaultdict

RUST_HASH = re.compile(r"::h[0-9a-f]{16}$")
OFFSET = re.compile(r"\+0x[0-9a-f]+$")


def clean(symbol):
    symbol = OFFSET.sub("", symbol.strip())
    symbol = RUST_HASH.sub("", symbol)
    return symbol or "[unknown]"


def fold(lines):
    """Counts each distinct stack (root first) in `perf script` text."""
    stacks = Counter()
    comm = None
    frames = []

    def flush():
        if comm is not None:
            stacks[";".join([comm] + list(reversed(frames)))] += 1

    for raw in lines:
        line = raw.rstrip("\n")
        if not line.strip():
            flush()
            comm, frames = None, []
        elif line[0] not in " \t":
            flush()
            comm, frames = line.split()[0], []
        else:
            parts = line.strip().split(None, 1)
            if len(parts) < 2:
                continue
            symbol = parts[1]
            # Drop the trailing "(dso)".
            if symbol.endswith(")") and " (" in symbol:
                symbol = symbol[: symbol.rindex(" (")]
            frames.append(clean(symbol))
    flush()
    return stacks


def color(name):
    digest = hashlib.md5(name.encode()).digest()
    return f"rgb({200 + digest[0] % 55},{80 + digest[1] % 120},{30 + digest[2] % 40})"


def svg(stacks, title, width=1200, row=16):
    total = sum(stacks.values())
    # A tree of frames: node = (name -> [count, children]).
    root = [0, {}]
    for stack, count in stacks.items():
        node = root
        node[0] += count
        for frame in stack.split(";"):
            node = node[1].setdefault(frame, [0, {}])
            node[0] += count

    def depth(node):
        return 1 + max((depth(c) for c in node[1].values()), default=0)

    rows = depth(root)
    height = rows * row + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="monospace" font-size="11">',
        f'<rect width="100%" height="100%" fill="#fafafa"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14">'
        f"{html.escape(title)} ({total} samples)</text>",
    ]
    minimum = total / width * 0.5  # skip frames narrower than half a pixel

    def draw(name, node, x, level):
        count = node[0]
        if count < minimum:
            return
        w = count / total * width
        y = height - (level + 1) * row
        share = 100.0 * count / total
        label = html.escape(name)
        out.append(
            f'<g><title>{label} ({count} samples, {share:.2f}%)</title>'
            f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{row - 1}" '
            f'fill="{color(name)}" rx="1"/>'
        )
        chars = int(w / 7)
        if chars >= 3:
            text = name if len(name) <= chars else name[: chars - 2] + ".."
            out.append(f'<text x="{x + 3:.2f}" y="{y + row - 4}">{html.escape(text)}</text>')
        out.append("</g>")
        child_x = x
        for child_name, child in sorted(node[1].items()):
            draw(child_name, child, child_x, level + 1)
            child_x += child[0] / total * width

    x = 0.0
    for name, node in sorted(root[1].items()):
        draw(name, node, x, 0)
        x += node[0] / total * width
    out.append("</svg>")
    return "\n".join(out)


def top(stacks, limit=25):
    total = sum(stacks.values()) or 1
    self_time = Counter()
    inclusive = defaultdict(int)
    for stack, count in stacks.items():
        frames = stack.split(";")
        self_time[frames[-1]] += count
        for frame in set(frames[1:]):
            inclusive[frame] += count
    lines = [f"{total} samples", "", "self %  function"]
    for name, count in self_time.most_common(limit):
        lines.append(f"{100.0 * count / total:6.2f}  {name}")
    lines += ["", "incl %  function"]
    for name, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:limit]:
        lines.append(f"{100.0 * count / total:6.2f}  {name}")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefix")
    parser.add_argument("--title", default="profile")
    parser.add_argument("--input", default="-")
    args = parser.parse_args()
    source = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8", errors="replace")
    stacks = fold(source)
    if not stacks:
        print("bench-flame: no samples in the input", file=sys.stderr)
        sys.exit(1)
    with open(args.prefix + ".folded", "w") as f:
        for stack, count in sorted(stacks.items()):
            f.write(f"{stack} {count}\n")
    with open(args.prefix + ".svg", "w") as f:
        f.write(svg(stacks, args.title))
    with open(args.prefix + ".top.txt", "w") as f:
        f.write(top(stacks))
    print(f"wrote {args.prefix}.svg, .folded, .top.txt ({sum(stacks.values())} samples)")


if __name__ == "__main__":
    main()
