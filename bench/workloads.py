"""Benchmark workloads: each builds a workflow whose steps are trivial in-process functions."""

from __future__ import annotations

from typing import Any

from engine.definition import Workflow

STEP = "bench.workloads:bump"
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def bump(data: Any) -> dict[str, int]:
    """The trivial step: n + 1."""
    n = data["n"] if isinstance(data, dict) else data.n
    return {"n": n + 1}


def _fn() -> dict[str, Any]:
    return {"python": STEP, "output_schema": SCHEMA}


def chain(steps: int) -> tuple[Workflow, dict[str, Any], int]:
    """W1: start_json -> f0 -> f1 -> ... (``steps`` persisted steps in all)."""
    b = Workflow.builder("bench-chain").block("start", "start_json")
    prev = "start"
    for i in range(steps - 1):
        b.block(f"f{i}", "function", config=_fn()).edge(prev, f"f{i}")
        prev = f"f{i}"
    return b.build(), {"start": {"n": 0}}, steps


def fanout(steps: int) -> tuple[Workflow, dict[str, Any], int]:
    """W2: start_json feeding ``steps - 1`` independent functions."""
    b = Workflow.builder("bench-fanout").block("start", "start_json")
    for i in range(steps - 1):
        b.block(f"f{i}", "function", config=_fn()).edge("start", f"f{i}")
    return b.build(), {"start": {"n": 0}}, steps


WORKLOADS = {"chain": chain, "fanout": fanout}
