"""`wedsync-realtime serve` under tracemalloc: what one idle connection's memory is made of.

    .venv/bin/python -m benchmarks.memprofile_server --port 4600 --out /tmp/mem.txt &
    kill -USR1 <pid>      # baseline snapshot (no connections)
    ... open N idle joined connections (e.g. benchmarks.fanout --url ... --settle 60) ...
    kill -USR1 <pid>      # writes the growth since the baseline, per source line and per file

Python allocations only (no allocator overhead or fragmentation, which RSS also counts), and
tracemalloc itself slows the server down: use it for the breakdown, not for the totals.
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

from wedsync_realtime.cli import main as cli_main

__all__ = ["main"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    tracemalloc.start(1)
    snapshots: list[tracemalloc.Snapshot] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        gc.collect()
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        if not snapshots:
            snapshots.append(snapshot)
            args.out.write_text("baseline taken\n")
            return
        lines = []
        for key in ("filename", "lineno"):
            diff = snapshot.compare_to(snapshots[0], key)
            growth = sum(d.size_diff for d in diff)
            lines.append(f"## growth by {key}: {growth / 1024:.0f} KiB total")
            for d in diff[: args.top]:
                lines.append(
                    f"{d.size_diff / 1024:10.1f} KiB {d.count_diff:+8d} blocks  {d.traceback}"
                )
            lines.append("")
        args.out.write_text("\n".join(lines))

    signal.signal(signal.SIGUSR1, on_signal)
    return cli_main(["serve", "--host", "127.0.0.1", "--port", str(args.port)])


if __name__ == "__main__":
    sys.exit(main())
