"""``python -m bench.cluster``: stepwell beyond one machine, in one invocation.

- **Per step on PostgreSQL**: W1 ``chain`` and W2 ``fanout`` (``bench.workloads``) on a
  PostgreSQL store, at both durabilities, in multiples of the floor (one small row
  inserted and committed through psycopg on the same server, with the session settings
  the store gives that durability; ``floor, prepared`` sends it as the store sends a
  step's writes, a statement prepared on libpq), beside DBOS on the same server (its native
  backend; its own database ``<database>_dbos``). DBOS commits every step
  synchronously, like stepwell's ``full``; ``process`` is stepwell's default.
- **Runs per second with 1, 2 and 4 workers**: queued runs of a start block and three
  functions, drained by that many ``stepwell worker`` processes; the clock runs from
  the first run's start to the last one's end, as the database records them, so
  process start-up is not counted. Twice: ``--runs`` runs with trivial functions,
  ``--in-flight`` at a time per worker (the CPUs are the limit), and ``--nap-runs``
  runs whose functions wait ``--nap-ms`` (as a model or HTTP call does: the workers are
  idle meanwhile), ``--nap-in-flight`` at a time per worker: long enough waits that
  neither the CPUs nor the database limit the throughput, which the waits bound
  (column ``bound``) and the workers' CPU time shows.
- **A for_each on Dask**: ``--items`` items, one function each, with ``--executor
  dask://...`` on a ``dask scheduler`` with 1 and 2 ``dask worker`` processes (one thread
  each), the run stored in PostgreSQL; with trivial functions (Dask's own cost per task)
  and with functions that wait ``--dask-nap-ms`` (work the Dask workers share out).

The database is ``--url`` or ``$STEPWELL_BENCH_POSTGRES_URL`` (a user that may create
schemas and, for DBOS, a database). Each measurement gets a fresh schema. DBOS comes
with the ``bench`` extra; without it (or with ``--no-dbos``) its column is left out.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def _measure(*args: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-m", "bench.cluster_measure", *args],
                          capture_output=True, text=True, env=_env(), cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"measurement {args[:3]} failed:\n{done.stderr or done.stdout}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


#: Rows of the floor measurement (one committed row each).
FLOOR_ROWS = 1000


def per_step(url: str, steps: int, repeat: int, dbos: bool) -> Table:
    """W1/W2 per step on PostgreSQL: stepwell (both durabilities) in multiples of the
    floor (one committed row through psycopg, same server, same session settings), and
    DBOS."""
    def floor_us(kind: str, durability: str) -> float:
        r = _measure("floor", kind, str(FLOOR_ROWS), durability, url, "--repeat", str(repeat))
        return r["wall"] / FLOOR_ROWS * 1e6

    floor = {d: floor_us("row", d) for d in ("process", "full")}
    bare = {d: floor_us("row-prepared", d) for d in ("process", "full")}
    table = Table(title=f"Per step on PostgreSQL ({steps} steps, median of {repeat}; floor: "
                        "one committed row through psycopg)")
    for col in ("workload", "process us", "x floor", "full us", "x floor", "DBOS us",
                "DBOS / full", "DBOS / process"):
        table.add_column(col, justify="left" if col == "workload" else "right")
    table.add_row("floor", f"{floor['process']:,.0f}", "1.0x", f"{floor['full']:,.0f}",
                  "1.0x", "-", "-", "-")
    table.add_row("floor, prepared", f"{bare['process']:,.0f}",
                  f"{bare['process'] / floor['process']:.1f}x", f"{bare['full']:,.0f}",
                  f"{bare['full'] / floor['full']:.1f}x", "-", "-", "-")
    for workload in ("chain", "fanout"):
        cells = {}
        for durability in ("process", "full"):
            r = _measure("stepwell", workload, str(steps), durability, url,
                         "--repeat", str(repeat))
            cells[durability] = r["wall"] / steps * 1e6
        ratio_full = ratio_process = dbos_us = "-"
        if dbos:
            d = _measure("dbos", workload, str(steps), "-", url, "--repeat", str(repeat))
            us = d["wall"] / steps * 1e6
            dbos_us = f"{us:,.0f}"
            ratio_full = f"{us / cells['full']:.1f}x"
            ratio_process = f"{us / cells['process']:.1f}x"
        table.add_row(workload, f"{cells['process']:,.0f}",
                      f"{cells['process'] / floor['process']:.1f}x", f"{cells['full']:,.0f}",
                      f"{cells['full'] / floor['full']:.1f}x", dbos_us, ratio_full,
                      ratio_process)
    return table


def throughput(url: str, runs: int, counts: tuple[int, ...], nap_ms: float,
               in_flight: int) -> Table:
    """Runs per second drained by 1, 2, 4... worker processes, ``in_flight`` runs at a
    time each.

    With ``nap_ms`` every function waits that long (``bench.workloads.nap``: the process
    is idle meanwhile, as during a model or HTTP call); without, functions are trivial
    and the machine's CPUs are the limit. ``bound`` is what the waits alone allow
    (every slot of every worker always busy); ``worker CPU`` is the CPU time the worker
    processes used while they drained the queue, against the time the machine's CPUs
    offered meanwhile. The runs are queued once every worker is up.
    """
    from bench.workloads import chain
    from engine.core import Engine
    from engine.queue import enqueue
    from store.pg.scratch import scratch_schema

    what = f"functions waiting {nap_ms:g} ms" if nap_ms else "trivial functions"
    table = Table(title=f"Queued runs drained by workers ({runs} runs of a start block and "
                        f"3 {what}, {in_flight} runs at a time per worker)")
    for col in ("workers", "seconds", "runs/s", "steps/s", "x one worker", "bound runs/s",
                "worker CPU"):
        table.add_column(col, justify="right")
    target = "bench.workloads:nap" if nap_ms else "bench.workloads:bump"
    env = {**_env(), "STEPWELL_BENCH_NAP_MS": str(nap_ms)}
    base = None
    for count in counts:
        with scratch_schema(url) as scratch, Engine(scratch) as engine:
            workflow, _, _ = chain(4, target)
            procs = [subprocess.Popen([sys.executable, "-m", "engine.cli", "worker", "--db",
                                       scratch, "--concurrency", str(in_flight)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True, env=env, cwd=ROOT) for _ in range(count)]
            try:
                for proc in procs:  # each says so once its engine is open
                    if proc.stderr is None or not proc.stderr.readline():
                        raise SystemExit(f"a worker did not start (exit {proc.wait()})")
                cpu = -sum(_cpu_seconds(proc.pid) for proc in procs)
                ids = [enqueue(engine, workflow, {"start": {"n": i}}) for i in range(runs)]
                records = _wait_ended(engine, ids)
                cpu += sum(_cpu_seconds(proc.pid) for proc in procs)
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    proc.communicate(timeout=120)
        if any(r.status != "completed" for r in records):
            raise SystemExit(f"{count} workers: not every run completed")
        span = max(r.completed_at or 0 for r in records) - min(r.started_at or 0
                                                               for r in records)
        rate = runs / span
        base = base or rate
        bound = f"{count * in_flight / (3 * nap_ms / 1000):,.1f}" if nap_ms else "-"
        table.add_row(str(count), f"{span:.2f}", f"{rate:,.1f}", f"{rate * 4:,.0f}",
                      f"{rate / base:.2f}", bound,
                      f"{cpu:.1f} s ({cpu / (span * (os.cpu_count() or 1)):.0%})")
    return table


def _wait_ended(engine: object, ids: list[str], timeout: float = 1800) -> list[object]:
    """The runs' records once every one of them ended."""
    from engine.contracts.values import RunStatus

    store = engine.store  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while True:
        records = [store.read_run(run_id) for run_id in ids]
        if all(RunStatus(r.status).terminal for r in records):
            return records
        if time.monotonic() > deadline:
            raise SystemExit(f"runs still active after {timeout:g} s")
        time.sleep(0.2)


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a process used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dask_for_each(url: str, items: int, counts: tuple[int, ...], nap_ms: float) -> Table:
    """A for_each over ``items`` items on a Dask cluster of 1, 2... worker processes (one
    thread each); with ``nap_ms`` every item's function waits that long."""
    from bench.workloads import for_each
    from engine.core import Engine
    from engine.executors import DaskExecutor
    from store.pg.scratch import scratch_schema

    what = f"a function waiting {nap_ms:g} ms" if nap_ms else "a trivial function"
    table = Table(title=f"for_each of {items:,} items on Dask ({what} per item)")
    for col in ("Dask workers", "seconds", "items/s", "x one worker"):
        table.add_column(col, justify="right")
    target = "bench.workloads:nap" if nap_ms else "bench.workloads:bump"
    env = {**_env(), "STEPWELL_BENCH_NAP_MS": str(nap_ms)}
    base = None
    for count in counts:
        port = _free_port()
        cluster = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                                     "--port", str(port), "--no-dashboard"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env=env, cwd=ROOT)]
        address = f"tcp://127.0.0.1:{port}"
        cluster += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker",
                                      address, "--nthreads", "1", "--no-dashboard"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=env, cwd=ROOT) for _ in range(count)]
        executor = DaskExecutor(address)
        try:
            client = _connect(executor)
            client.wait_for_workers(count, timeout=120)  # type: ignore[attr-defined]
            workflow, inputs, _ = for_each(3 * items + 3, concurrency=64, target=target)
            with scratch_schema(url) as scratch, \
                    Engine(scratch, executor=executor, max_concurrency=64) as engine:
                start = time.perf_counter()
                result = engine.run(workflow, inputs)
                wall = time.perf_counter() - start
            if not result.ok:
                raise SystemExit(f"for_each on Dask failed: {result.error}")
        finally:
            executor.close()
            for proc in reversed(cluster):
                proc.terminate()
                proc.wait()
        rate = items / wall
        base = base or rate
        table.add_row(str(count), f"{wall:.2f}", f"{rate:,.0f}", f"{rate / base:.2f}")
    return table


def _connect(executor: object) -> object:
    """Connect once the scheduler listens (it may take a while to start)."""
    from engine.contracts.errors import UsageError

    deadline = time.monotonic() + 120
    while True:
        try:
            return executor.connect()  # type: ignore[attr-defined]
        except UsageError:
            if time.monotonic() > deadline:
                raise


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the measurements, print the tables."""
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("STEPWELL_BENCH_POSTGRES_URL"))
    parser.add_argument("--steps", type=int, default=300, help="steps of W1/W2")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runs", type=int, default=200,
                        help="queued runs per worker count (trivial functions)")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--in-flight", type=int, default=4,
                        help="runs at a time per worker (trivial functions)")
    parser.add_argument("--nap-ms", type=float, default=500.0,
                        help="how long each function waits in the second workers table "
                             "(0: no second table)")
    parser.add_argument("--nap-runs", type=int, default=256,
                        help="queued runs per worker count (waiting functions)")
    parser.add_argument("--nap-in-flight", type=int, default=16,
                        help="runs at a time per worker (waiting functions)")
    parser.add_argument("--dask-nap-ms", type=float, default=50.0,
                        help="how long each function waits in the second Dask table "
                             "(0: no second table)")
    parser.add_argument("--items", type=int, default=2000, help="for_each items on Dask")
    parser.add_argument("--dask-workers", default="1,2")
    parser.add_argument("--no-dbos", action="store_true")
    parser.add_argument("--only", default="steps,workers,dask",
                        help="comma-separated subset of steps, workers, dask")
    args = parser.parse_args(argv)
    if not args.url:
        raise SystemExit("pass --url postgresql://... or set STEPWELL_BENCH_POSTGRES_URL")
    from bench.peers import missing_packages

    dbos = not args.no_dbos and "dbos" not in missing_packages()
    console = Console(width=max(Console().width, 110))
    only = {part.strip() for part in args.only.split(",")}
    if "steps" in only:
        console.print(per_step(args.url, args.steps, args.repeat, dbos))
    if "workers" in only:
        counts = tuple(int(n) for n in args.workers.split(","))
        console.print(throughput(args.url, args.runs, counts, 0.0, args.in_flight))
        if args.nap_ms:
            console.print(throughput(args.url, args.nap_runs, counts, args.nap_ms,
                                     args.nap_in_flight))
    if "dask" in only:
        counts = tuple(int(n) for n in args.dask_workers.split(","))
        console.print(dask_for_each(args.url, args.items, counts, 0.0))
        if args.dask_nap_ms:
            console.print(dask_for_each(args.url, args.items, counts, args.dask_nap_ms))
    console.print(f"machine: {os.cpu_count()} CPUs, load average "
                  f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
