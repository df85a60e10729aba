"""`wedsync-realtime serve` that logs its long garbage-collector passes: a probe, not a change.

    python -m benchmarks.core_fields --gc-log /tmp/gc.jsonl      # runs the server through this

Every full (generation 2) collection, and every other one that takes at least `--min-ms`, is
appended to `--log` as one JSON line ``{"t": <time.time()>, "gen": 2, "ms": 587.6,
"collected": 0}``. The callback only reads the clock, so the server is otherwise unchanged.
`--threshold0/1/2` (``gc.set_threshold``) and `--freeze` (``gc.freeze()`` at start-up) try a
tuned collector under the same probe.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from typing import Any

from wedsync_realtime.cli import main as cli_main

__all__ = ["main"]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True, help="JSON lines file, appended to")
    parser.add_argument("--min-ms", type=float, default=5.0, help="log gen 0/1 passes this long")
    parser.add_argument("--threshold0", type=int, default=None)
    parser.add_argument("--threshold1", type=int, default=None)
    parser.add_argument("--threshold2", type=int, default=None)
    parser.add_argument("--freeze", action="store_true")
    args = parser.parse_args()
    given = (args.threshold0, args.threshold1, args.threshold2)
    if any(t is not None for t in given):
        current = gc.get_threshold()
        gc.set_threshold(*(c if t is None else t for c, t in zip(current, given, strict=True)))
    if args.freeze:
        gc.freeze()
    out = open(args.log, "a", buffering=1)  # noqa: SIM115 - open for the process's lifetime
    started = [0.0]
    min_s = args.min_ms / 1000.0

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        took = time.perf_counter() - started[0]
        generation = int(info["generation"])
        if generation == 2 or took >= min_s:
            record = {
                "t": round(time.time(), 4),
                "gen": generation,
                "ms": round(took * 1000.0, 2),
                "collected": info["collected"],
            }
            out.write(json.dumps(record) + "\n")

    gc.callbacks.append(on_gc)
    return cli_main(["serve", "--host", "127.0.0.1", "--port", str(args.port)])


if __name__ == "__main__":
    sys.exit(main())
