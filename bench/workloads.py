"""Benchmark workloads: each builds a workflow whose steps are trivial in-process functions.

Every workload returns ``(workflow, inputs, persisted_steps)``; ``persisted_steps`` is
the number of step rows the run writes (containers, sentinels and iterations included),
checked against the database after the run.
"""

from __future__ import annotations

import argparse
from typing import Any

from engine.definition import Workflow

STEP = "bench.workloads:bump"
#: Each workload's size in ``python -m bench`` (steps asked for; see each builder).
DEFAULT_STEPS = {"chain": 1000, "fanout": 1000, "for_each": 10_000, "while": 3003}
#: Every workload's size, those run only when named included.
STEPS = {**DEFAULT_STEPS, "chain_printing": 1000}
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def bump(data: Any) -> dict[str, int]:
    """The trivial step: n + 1."""
    n = data["n"] if isinstance(data, dict) else data.n
    return {"n": n + 1}


def bump_printing(data: Any) -> dict[str, int]:
    """:func:`bump` that prints a line, as functions being debugged do (the line goes to
    the step's log)."""
    n = data["n"] if isinstance(data, dict) else data.n
    print(f"n is {n}")
    return {"n": n + 1}


async def nap(data: Any) -> dict[str, int]:
    """A step that waits ``$STEPWELL_BENCH_NAP_MS`` milliseconds (a model or HTTP call's
    stand-in: the process is idle meanwhile), then n + 1."""
    import os

    import anyio

    await anyio.sleep(float(os.environ.get("STEPWELL_BENCH_NAP_MS", "0")) / 1000)
    n = data["n"] if isinstance(data, dict) else data.n
    return {"n": n + 1}


def _fn() -> dict[str, Any]:
    return {"python": STEP, "output_schema": SCHEMA}


def chain(steps: int, target: str = STEP) -> tuple[Workflow, dict[str, Any], int]:
    """W1: start_json -> f0 -> f1 -> ... (``steps`` persisted steps in all); every
    function runs ``target`` (default :func:`bump`)."""
    b = Workflow.builder("bench-chain").block("start", "start_json")
    prev = "start"
    for i in range(steps - 1):
        b.block(f"f{i}", "function", config={**_fn(), "python": target}).edge(prev, f"f{i}")
        prev = f"f{i}"
    return b.build(), {"start": {"n": 0}}, steps


def chain_printing(steps: int) -> tuple[Workflow, dict[str, Any], int]:
    """W1p: :func:`chain` whose functions each print a line (:func:`bump_printing`): what
    a step's log adds to its commit."""
    return chain(steps, "bench.workloads:bump_printing")


def fanout(steps: int) -> tuple[Workflow, dict[str, Any], int]:
    """W2: start_json feeding ``steps - 1`` independent functions."""
    b = Workflow.builder("bench-fanout").block("start", "start_json")
    for i in range(steps - 1):
        b.block(f"f{i}", "function", config=_fn()).edge("start", f"f{i}")
    return b.build(), {"start": {"n": 0}}, steps


def for_each(steps: int, concurrency: int = 8, target: str = STEP
             ) -> tuple[Workflow, dict[str, Any], int]:
    """W2b: for_each over ``items`` array items, one trivial function per item.

    Steps: start + container + per item (sentinel start, child, sentinel end) + end.
    ``steps`` is rounded to that shape (10,000 -> 3,332 items, 9,999 steps).
    ``concurrency`` is the container's ``max_concurrency`` (items in flight); every item
    runs ``target`` (default :func:`bump`).
    """
    items = max(1, (steps - 3) // 3)
    config: dict[str, Any] = {"map_method": "iterate_array", "map_source_path": "items",
                              "max_concurrency": concurrency}
    if items > 10_000:  # for_each refuses more than max_items (10,000 by default)
        config["max_items"] = items
    b = (Workflow.builder("bench-for-each")
         .block("start", "start_json")
         .block("each", "for_each", config=config)
         .block("bump", "function", config={**_fn(), "python": target}, parent="each")
         .block("done", "end")
         .edge("start", "each", target_handle="fe-left-in")
         .edge("each", "bump", source_handle="fe-left-out")
         .edge("bump", "each", target_handle="fe-right-in")
         .edge("each", "done", source_handle="fe-right-out"))
    inputs = {"start": {"items": [{"n": i} for i in range(items)]}}
    return b.build(), inputs, 3 + 3 * items


def while_loop(steps: int) -> tuple[Workflow, dict[str, Any], int]:
    """W3: a while_loop whose body bumps ``n`` until ``max_iterations``.

    Steps: start + container + per iteration (sentinel start, child, sentinel end) + end.
    """
    iterations = max(1, (steps - 3) // 3)
    b = (Workflow.builder("bench-while")
         .block("start", "start_json")
         .block("loop", "while_loop", config={
             "max_iterations": iterations,
             "termination_condition": {"logical_operator": "and", "sub_conditions": [
                 {"path_ref": {"input": "default", "path": "n"},
                  "operator": "greater_than", "value": iterations + 1}]}})
         .block("bump", "function", config=_fn(), parent="loop")
         .block("done", "end")
         .edge("start", "loop", target_handle="loop-left-in")
         .edge("loop", "bump", source_handle="loop-left-out")
         .edge("bump", "loop", target_handle="loop-right-in")
         .edge("loop", "done", source_handle="loop-right-out"))
    return b.build(), {"start": {"n": 0}}, 3 + 3 * iterations


WORKLOADS = {"chain": chain, "fanout": fanout, "for_each": for_each, "while": while_loop,
             "chain_printing": chain_printing}


def workload_parser(prog: str, description: str, steps_help: str, *,
                    repeat: int | None = None, repeat_help: str = "") -> argparse.ArgumentParser:
    """An argument parser for a bench tool that takes comma-separated workload names (the
    four of W1-W3 by default), ``--steps`` and, given a default ``repeat``, ``--repeat``;
    :func:`workload_args` parses and checks them."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("workloads", nargs="?", default="chain,fanout,for_each,while",
                        help="comma-separated workloads (default: the four of W1-W3; also "
                             "chain_printing)")
    parser.add_argument("--steps", type=int, default=None, help=steps_help)
    if repeat is not None:
        parser.add_argument("--repeat", type=int, default=repeat, help=repeat_help)
    return parser


def workload_args(parser: argparse.ArgumentParser, argv: list[str] | None
                  ) -> tuple[argparse.Namespace, list[str]]:
    """``argv`` parsed, and the workloads it names (:func:`chosen_workloads`); exits
    through ``parser.error`` on a ``--repeat`` under 1 too."""
    args = parser.parse_args(argv)
    if getattr(args, "repeat", 1) < 1:
        parser.error("--repeat must be at least 1")
    return args, chosen_workloads(parser, args)


def chosen_workloads(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The workloads ``args`` names, in order; exits through ``parser.error`` on an
    unknown one or on ``--steps`` below 2."""
    if args.steps is not None and args.steps < 2:
        parser.error("--steps must be at least 2")
    names = [w for w in args.workloads.split(",") if w]
    unknown = [w for w in names if w not in STEPS]
    if unknown:
        parser.error(f"unknown workload {unknown[0]!r}; choose from {', '.join(STEPS)}")
    return names
