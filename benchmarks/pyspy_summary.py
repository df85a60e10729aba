"""Summarise a `py-spy record --format raw` profile (collapsed stacks): where the time goes.

    .venv/bin/python -m benchmarks.pyspy_summary profile.txt [--top 30]

Prints the self time per function (the innermost Python frame; C code such as `transport.write`
or `orjson.dumps` is charged to the Python function calling it, unless py-spy ran with
`--native`), the inclusive time of the frames that matter for a fan-out, and the self time
grouped by layer (uvicorn, websockets, starlette/fastapi, asyncio, wedsync_realtime, ...).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

__all__ = ["layer_of", "load", "main"]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

LAYERS = (
    ("wedsync_realtime/", "wedsync_realtime (our code)"),
    ("uvicorn/", "uvicorn"),
    ("websockets/", "websockets (sans-I/O framing)"),
    ("starlette/", "starlette/fastapi"),
    ("fastapi/", "starlette/fastapi"),
    ("asyncio/", "asyncio (Python part)"),
    ("uvloop", "uvloop (native)"),
    ("orjson", "orjson"),
    ("logging/", "logging"),
    ("jwt/", "pyjwt"),
)


def layer_of(frame: str) -> str:
    for needle, name in LAYERS:
        if needle in frame:
            return name
    if frame.startswith("<module>") or "runners.py" in frame:
        return "event loop / process"
    return "other: " + frame.split(" (", 1)[0][:40]


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks: list[tuple[list[str], int]] = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks.append((stack.split(";"), int(count)))
    return stacks


def short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    file = m["file"]
    for prefix in ("site-packages/", "src/"):
        if prefix in file:
            file = file.split(prefix, 1)[1]
    return f"{m['func']} ({file}:{m['line']})" if m["line"] else f"{m['func']} ({file})"


def function_of(frame: str) -> str:
    """The frame without its line number: `func (file)`."""
    m = _FRAME.match(frame)
    return f"{m['func']} ({m['file']})" if m else frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    stacks = load(args.profile)
    total = sum(c for _, c in stacks)
    self_line: Counter[str] = Counter()
    self_func: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    for frames, count in stacks:
        leaf = frames[-1]
        self_line[short(leaf)] += count
        self_func[short(function_of(leaf))] += count
        layers[layer_of(leaf)] += count
        for func in {function_of(f) for f in frames}:
            inclusive[short(func)] += count

    def pct(n: int) -> str:
        return f"{100.0 * n / total:5.1f}%"

    print(f"{total} samples\n\n## self time by layer (innermost Python frame)")
    for name, n in layers.most_common():
        print(f"{pct(n)}  {name}")
    print(f"\n## self time by function (top {args.top})")
    for name, n in self_func.most_common(args.top):
        print(f"{pct(n)}  {name}")
    print(f"\n## self time by line (top {args.top})")
    for name, n in self_line.most_common(args.top):
        print(f"{pct(n)}  {name}")
    print(f"\n## inclusive time (top {args.top})")
    for name, n in inclusive.most_common(args.top):
        print(f"{pct(n)}  {name}")


if __name__ == "__main__":
    main()
