"""`wedsync-realtime serve` with a tuned cyclic garbage collector: an experiment, not a change.

The fan-out profile shows a third of the server's CPU in `gc_collect_main` (full collections
walking every connection's tasks, futures and protocol objects). This runs the unchanged server
with larger collection thresholds, to measure what tuning the collector would buy:

    python -m benchmarks.fanout -n 5000 \\
        --server-cmd ".venv/bin/python -m benchmarks.gc_tuned_server --port {port}"

`--threshold0/1/2` are `gc.set_threshold` arguments (CPython defaults 700, 10, 10);
`--freeze` also moves everything alive after start-up into the permanent generation.
"""

from __future__ import annotations

import argparse
import gc
import sys

from wedsync_realtime.cli import main as cli_main

__all__ = ["main"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threshold0", type=int, default=100_000)
    parser.add_argument("--threshold1", type=int, default=50)
    parser.add_argument("--threshold2", type=int, default=1000)
    parser.add_argument("--freeze", action="store_true")
    args = parser.parse_args()
    gc.set_threshold(args.threshold0, args.threshold1, args.threshold2)
    if args.freeze:
        gc.freeze()
    return cli_main(["serve", "--host", "127.0.0.1", "--port", str(args.port)])


if __name__ == "__main__":
    sys.exit(main())
