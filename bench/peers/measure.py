"""One peer measurement per process: ``python -m bench.peers.measure PEER WORKLOAD STEPS
DURABILITY [--repeat N]``.

Like ``bench.measure``: one warm-up run that is not counted, then ``--repeat`` runs, each
in a fresh database; prints one JSON line with the median wall seconds, the persisted
step count (read back from the database and checked), database bytes per step after the
run and this process's peak RSS.
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import statistics
import sys
import tempfile
from pathlib import Path

from bench.measure import _db_bytes, settle_heap
from bench.peers import get_peer


def measure(peer_key: str, workload: str, steps: int, durability: str,
            repeat: int) -> dict[str, float]:
    """Median wall seconds of ``repeat`` runs of ``workload`` on a peer, plus size and RSS.

    Raises:
        SystemExit: the peer cannot express ``workload``, or a run persisted a different
            number of steps than asked.
    """
    peer = get_peer(peer_key)
    module = importlib.import_module(peer.module)
    if workload not in module.WORKLOADS:
        raise SystemExit(f"{peer.key} has no {workload!r} workload; it has "
                         f"{', '.join(module.WORKLOADS)}")
    walls: list[float] = []
    size = 0
    with tempfile.TemporaryDirectory(prefix=f"stepwell-bench-{peer.key}-") as tmp:
        for index in range(repeat + 1):
            db = Path(tmp) / f"{workload}-{index}.sqlite"
            settle_heap()  # as stepwell's runs: the previous run's garbage collected
            wall, written = module.run(workload, steps, db, durability)
            if written != steps:
                raise SystemExit(f"{peer.key} {workload}: expected {steps} persisted steps, "
                                 f"found {written}")
            if index:  # the first run warms imports and caches
                walls.append(wall)
                size = _db_bytes(db)
    return {"wall": statistics.median(walls), "steps": steps, "bytes_per_step": size / steps,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, measure, print one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench.peers.measure")
    parser.add_argument("peer")
    parser.add_argument("workload")
    parser.add_argument("steps", type=int)
    parser.add_argument("durability", choices=["process", "full"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    result = measure(args.peer, args.workload, args.steps, args.durability, args.repeat)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
