"""Instructions per step, counted by valgrind: ``python -m bench.instructions [WORKLOADS]``.

Wall time on a shared machine swings 15% from one invocation to the next, more than most
changes to the engine move it. The number of instructions a run executes does not
depend on the clock, so it tells two trees apart where their timings cannot: run this
in each tree and compare.

Each workload is counted twice under ``valgrind --tool=callgrind``, in a process that
builds the same four workflows, then runs the first two (or all four) on
``Engine(":memory:")``; the difference, over the two extra runs' steps, is what a warm
run costs per step (opening its Engine included), with the imports, the builds and the
first run's compiling left out. An uncounted process runs first, so that on a fresh
checkout neither count includes writing the modules' bytecode. The cyclic garbage
collector is off during the runs and the driver never yields for time
(:func:`engine.runner.untimed_yields`), so the count does not depend on how fast the
machine is; ``PYTHONHASHSEED`` is fixed. A run on
``:memory:`` still executes its SQL; only the file system is left out.

``--store`` adds what the store's ``apply`` takes of that: the counted process runs the
workload once, recording the run it creates and every batch handed to ``apply``, then
replays them into two (or four) fresh ``:memory:`` stores; the difference over the two
extra replays is the store's part of a step (planning, encoding, SQL and the
transaction), the rest being the scheduler's, the runner's and the blocks'.

``--by-library`` also says whose code executed a step's instructions: each shared object
(the interpreter's ``libpython``, ``libsqlite3``, the C library, pydantic-core, orjson...)
with the instructions it executed itself per step, read from the same two counts
(callgrind's self cost by object, see :func:`self_by_object`). Objects under 0.5% of a
step are summed on one line.

Needs valgrind (Debian: ``apt-get install valgrind``). Counting a 1,000-step workload
takes about a minute (two with ``--store``).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

#: Workflows each counting process builds (it runs the first 2 or all of them).
BUILT = 4
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")
#: An object's name in a callgrind file: ``ob=(3) /usr/lib/libc.so.6`` defines number 3,
#: a later ``ob=(3)`` refers to it (``cob=`` lines define numbers the same way).
_OBJECT = re.compile(r"c?ob=(?:\((\d+)\))?\s*(.*)")
#: Objects under this share of a step are summed on one line (``--by-library``).
SMALL_SHARE = 0.005


def run_inner(workload: str, steps: int, runs: int) -> None:
    """Build :data:`BUILT` workflows of ``workload``, then run the first ``runs``."""
    from bench.workloads import WORKLOADS
    from engine.core import Engine

    built = [WORKLOADS[workload](steps) for _ in range(BUILT)]
    gc.disable()
    for workflow, inputs, _ in built[:runs]:
        with Engine(":memory:", max_concurrency=8) as engine_:
            result = engine_.run(workflow, inputs)
        if not result.ok:
            raise SystemExit(f"{workload} run failed: {result.error}")


def run_inner_store(workload: str, steps: int, runs: int) -> None:
    """Run ``workload`` once, recording its run and its batches, open :data:`BUILT` fresh
    stores, then replay the recording into the first ``runs`` of them."""
    from bench.workloads import WORKLOADS
    from engine.core import Engine
    from store.sqlite import SQLiteStore

    workflow, inputs, _ = WORKLOADS[workload](steps)
    recorded = SQLiteStore(":memory:")
    created: list[tuple[Any, float]] = []
    batches: list[tuple[Any, ...]] = []
    create_run, apply = recorded.create_run, recorded.apply

    def record_run(run: Any, *, now: float) -> None:
        created.append((run, now))
        create_run(run, now=now)

    def record_batch(run_id: str, events: Any, run_update: Any = None, *, now: float,
                     logs: Any = ()) -> None:
        batches.append((run_id, list(events), run_update, now, list(logs)))
        apply(run_id, events, run_update, now=now, logs=logs)

    recorded.create_run = record_run  # type: ignore[method-assign]
    recorded.apply = record_batch  # type: ignore[method-assign]
    with Engine(store=recorded, max_concurrency=8) as engine_:
        result = engine_.run(workflow, inputs)
    if not result.ok:
        raise SystemExit(f"{workload} run failed: {result.error}")
    stores = [SQLiteStore(":memory:") for _ in range(BUILT)]
    gc.disable()
    for store in stores[:runs]:
        for run, now in created:
            store.create_run(run, now=now)
        for run_id, events, run_update, now, logs in batches:
            store.apply(run_id, events, run_update, now=now, logs=logs)
    for store in stores:
        store.close()


def _inner_command(workload: str, steps: int, runs: int, *, store: bool = False) -> list[str]:
    """The command line of a counted process (``store``: one that replays into stores)."""
    return [sys.executable, "-m", "bench.instructions", "--inner", workload, "--steps",
            str(steps), "--runs", str(runs), *(["--store"] if store else [])]


def _inner_env() -> dict[str, str]:
    """The counted processes' environment: a fixed hash seed, bytecode written and read."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _warm_up(workload: str, steps: int, *, store: bool = False) -> None:
    """Run the counted process once, uncounted, so both counts read compiled bytecode.

    On a fresh checkout the first process to import the project compiles every module
    and writes its ``.pyc``; counted, that would land in one count and not the other.
    """
    proc = subprocess.run(_inner_command(workload, steps, 1, store=store), capture_output=True,
                          text=True, env=_inner_env(), check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-5:])
        raise SystemExit(f"running {workload} failed (exit {proc.returncode}):\n{tail}")


def _count(workload: str, steps: int, runs: int, valgrind: str, *, store: bool = False,
           objects: dict[str, int] | None = None) -> int:
    """Instructions of one counting process (``runs`` runs, or replays with ``store``);
    ``objects``, when given, receives the instructions each shared object executed."""
    with tempfile.TemporaryDirectory(prefix="stepwell-instructions-") as tmp:
        out = Path(tmp) / "callgrind.out"
        proc = subprocess.run(
            [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}",
             *_inner_command(workload, steps, runs, store=store)],
            capture_output=True, text=True, env=_inner_env(), check=False)
        found = _COLLECTED.search(proc.stderr)
        if proc.returncode != 0 or found is None:
            tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-5:])
            raise SystemExit(f"counting {workload} failed (exit {proc.returncode}):\n{tail}")
        if objects is not None:
            objects.update(self_by_object(out))
    return int(found.group(1))


def self_by_object(path: Path) -> dict[str, int]:
    """The instructions each shared object executed itself (its functions' self cost, not
    what they called), from a callgrind output file; keys are the objects' file names.

    In callgrind's format an ``ob=`` line names the object of the cost lines after it;
    the cost line right after a ``calls=`` line is that call's inclusive cost, already
    counted where the callee's own lines are, so it is skipped.
    """
    names: dict[str, str] = {}
    totals: dict[str, int] = {}
    current = "???"
    after_call = False
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            first = line[:1]
            if first.isdigit() or first in "+-*":  # a cost line: position, then Ir
                if after_call:
                    after_call = False
                    continue
                fields = line.split()
                if len(fields) > 1:
                    totals[current] = totals.get(current, 0) + int(fields[1])
            elif line.startswith(("ob=", "cob=")):
                found = _OBJECT.match(line.rstrip("\n"))
                number, name = (found.group(1), found.group(2)) if found else (None, "")
                if number is not None and name:
                    names[number] = name
                if line.startswith("ob="):
                    named = names.get(number, name) if number is not None else name
                    current = os.path.basename(named) or "???"
            elif line.startswith("calls="):
                after_call = True
    return totals


def instructions_per_step(workload: str, steps: int | None = None, *,
                          store: bool = False, by_object: dict[str, float] | None = None
                          ) -> tuple[int, float]:
    """``(persisted steps, instructions per step)`` of a warm run of ``workload``; with
    ``store``, of the store's ``apply`` alone (see the module docstring). ``by_object``,
    when given, receives each shared object's own instructions per step.

    Raises:
        SystemExit: valgrind is missing, or a counted run failed.
    """
    from bench.workloads import STEPS, WORKLOADS

    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed: install it (Debian: apt-get install "
                         "valgrind), or compare wall times with python -m bench instead.")
    size = steps or STEPS[workload]
    count = WORKLOADS[workload](size)[2]
    _warm_up(workload, size, store=store)
    objects_two: dict[str, int] = {}
    objects_four: dict[str, int] = {}
    wanted = by_object is not None
    two = _count(workload, size, 2, valgrind, store=store,
                 objects=objects_two if wanted else None)
    four = _count(workload, size, BUILT, valgrind, store=store,
                  objects=objects_four if wanted else None)
    if four <= two:
        raise SystemExit(
            f"counting {workload} gave {four:,} instructions for {BUILT} runs and {two:,} for 2: "
            "something other than the runs differed between the two processes (a module "
            "compiled in one of them?). Count again with more --steps.")
    if by_object is not None:
        for name in objects_two.keys() | objects_four.keys():
            share = (objects_four.get(name, 0) - objects_two.get(name, 0)) / (2 * count)
            if share:
                by_object[name] = share
    return count, (four - two) / (2 * count)


def library_lines(by_object: dict[str, float], per_step: float) -> list[str]:
    """The ``--by-library`` lines of one workload: each shared object's instructions per
    step and its share of the step, largest first; objects under :data:`SMALL_SHARE`
    summed on one line."""
    lines: list[str] = []
    rest, small = 0.0, 0
    for name, value in sorted(by_object.items(), key=lambda item: -item[1]):
        if per_step <= 0 or value / per_step < SMALL_SHARE:
            rest += value
            small += 1
            continue
        module, extension, _ = name.partition(".cpython-")  # _sqlite3.cpython-311-...so
        label = f"{module} (extension module)" if extension else name
        lines.append(f"  {label:<44} {value:>12,.0f} {value / per_step:>6.1%}")
    if small:
        label = f"({small} more, each under {SMALL_SHARE:.1%})"
        lines.append(f"  {label:<44} {rest:>12,.0f} {rest / per_step if per_step > 0 else 0:>6.1%}")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Parse arguments; count each workload (or, with ``--inner``, be the counted run)."""
    from bench.workloads import workload_args, workload_parser

    parser = workload_parser("python -m bench.instructions", __doc__.split("\n\n")[0],
                             "steps per workload (default: 999, a warm run's share of the "
                             "count is then most of it)")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=BUILT, help=argparse.SUPPRESS)
    parser.add_argument("--store", action="store_true",
                        help="also count what the store's apply takes per step")
    parser.add_argument("--by-library", action="store_true",
                        help="also split each step's instructions by the shared object that "
                             "executed them (the interpreter, SQLite, the C library...)")
    args, names = workload_args(parser, argv)
    if not 1 <= args.runs <= BUILT:
        parser.error(f"--runs must be between 1 and {BUILT}")
    if args.inner:
        from engine.runner import untimed_yields

        inner = run_inner_store if args.store else run_inner
        with untimed_yields():
            inner(names[0], args.steps or 999, args.runs)
        return
    print(f"{'workload':<14} {'steps':>6} {'instructions/step':>17}"
          + (f" {'store apply/step':>16}" if args.store else ""))
    for name in names:
        by_object: dict[str, float] | None = {} if args.by_library else None
        count, per_step = instructions_per_step(name, args.steps or 999, by_object=by_object)
        line = f"{name:<14} {count:>6,} {per_step:>17,.0f}"
        if args.store:
            line += f" {instructions_per_step(name, args.steps or 999, store=True)[1]:>16,.0f}"
        print(line)
        if by_object is not None:
            print("\n".join(library_lines(by_object, per_step)))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
