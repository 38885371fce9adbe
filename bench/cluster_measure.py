"""One PostgreSQL measurement per process, for ``bench.cluster``.

``python -m bench.cluster_measure stepwell WORKLOAD STEPS DURABILITY URL [--repeat N]``
runs W1 ``chain`` or W2 ``fanout`` on a PostgreSQL store (a fresh schema per run, its
layout created before the clock starts, as DBOS is launched before its clock starts);
``python -m bench.cluster_measure dbos WORKLOAD STEPS - URL [--repeat N]`` runs DBOS's
version of it (``bench.peers.dbos_chain``'s workflows) with its system database on the
same server (a database of its own, ``<database>_dbos``, created by DBOS). Each prints
one JSON line: the median wall seconds of ``--repeat`` runs after one warm-up run, and
the step count (stepwell's read back from the database, DBOS's workflow result checked).

``python -m bench.cluster_measure floor row ROWS DURABILITY URL [--repeat N]`` measures
the floor: ``ROWS`` small JSON rows, each inserted and committed on its own through
psycopg (one round trip, an autocommit statement), on a connection with the session
settings the store gives that durability (``process``: ``synchronous_commit = off``;
``full``: the server's own, on by default). With the workload ``row-prepared`` the
insert is a statement prepared on libpq, sent as the store sends a step's writes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def stepwell_run(workload: str, steps: int, durability: str, url: str) -> float:
    """Wall seconds of one stepwell run of ``workload`` on a fresh schema of ``url``."""
    from bench.workloads import WORKLOADS
    from engine.core import Engine
    from store.pg.scratch import scratch_schema

    workflow, inputs, count = WORKLOADS[workload](steps)
    with scratch_schema(url) as scratch, \
            Engine(scratch, durability=durability, max_concurrency=8) as engine:
        engine.store  # noqa: B018 - open it (create the layout) before the clock starts
        start = time.perf_counter()
        result = engine.run(workflow, inputs)
        wall = time.perf_counter() - start
        if not result.ok:
            raise SystemExit(f"{workload} run failed: {result.error}")
        written = len(engine.store.load_steps(result.run_id))
    if written != count:
        raise SystemExit(f"{workload}: expected {count} steps, found {written}")
    return wall


def floor_rows(rows: int, durability: str, url: str, *, prepared: bool = False) -> float:
    """Wall seconds of ``rows`` committed one-row inserts on a fresh schema of ``url``,
    through psycopg's ``execute``, or (``prepared``) as a statement prepared on libpq
    the way the store sends a step's writes (:mod:`store.pg.prepared`)."""
    from store.pg.connection import connect
    from store.pg.prepared import PreparedStatements
    from store.pg.scratch import scratch_schema

    body = json.dumps({"n": 1})
    with scratch_schema(url) as scratch:
        conn = connect(scratch, synchronous_commit=durability == "full")
        try:
            conn.execute("CREATE TABLE t (id BIGSERIAL PRIMARY KEY, step TEXT, body TEXT)")
            insert = "INSERT INTO t (step, body) VALUES (%s, %s)"
            run: Any = conn.execute
            if prepared:
                insert = "INSERT INTO t (step, body) VALUES ($1, $2)"
                run = PreparedStatements(conn).run
            for i in range(20):
                run(insert, (f"warm{i}", body))
            start = time.perf_counter()
            for i in range(rows):
                run(insert, (f"s{i}", body))
            wall = time.perf_counter() - start
            count = conn.execute("SELECT count(*) FROM t").fetchone()
        finally:
            conn.close()
    if count is None or count[0] != rows + 20:
        raise SystemExit(f"floor: expected {rows + 20} rows, found {count}")
    return wall


def dbos_database(url: str) -> str:
    """DBOS's system database: ``<database>_dbos`` on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "_dbos", query=""))


def dbos_runs(workload: str, steps: int, url: str, repeat: int) -> list[float]:
    """Wall seconds of ``repeat + 1`` DBOS runs (the first warms up), one launch."""
    import logging

    from dbos import DBOS

    from bench.peers import dbos_chain

    logging.getLogger("dbos").setLevel(logging.WARNING)
    DBOS(config={"name": "stepwell-bench", "system_database_url": dbos_database(url),
                 "log_level": "WARNING"})
    DBOS.launch()
    walls = []
    try:
        for _ in range(repeat + 1):
            start = time.perf_counter()
            if workload == "chain":
                result: object = dbos_chain.chain(steps)
                expected: object = steps
            else:
                result = asyncio.run(dbos_chain.fanout(steps))
                expected = [1] * (steps - 1)
            walls.append(time.perf_counter() - start)
            if result != expected:
                raise SystemExit(f"dbos {workload}: unexpected result {str(result)[:200]}")
    finally:
        DBOS.destroy()
    return walls


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, measure, print one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_measure")
    parser.add_argument("system", choices=["stepwell", "dbos", "floor"])
    parser.add_argument("workload", choices=["chain", "fanout", "row", "row-prepared"])
    parser.add_argument("steps", type=int)
    parser.add_argument("durability", help="process or full (stepwell, floor); - for dbos")
    parser.add_argument("url")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.system == "floor":
        walls = [floor_rows(args.steps, args.durability, args.url,
                            prepared=args.workload == "row-prepared")
                 for _ in range(args.repeat + 1)]
    elif args.system == "stepwell":
        walls = [stepwell_run(args.workload, args.steps, args.durability, args.url)
                 for _ in range(args.repeat + 1)]
    else:
        walls = dbos_runs(args.workload, args.steps, args.url, args.repeat)
    json.dump({"wall": statistics.median(walls[1:]), "steps": args.steps}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
