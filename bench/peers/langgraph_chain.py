"""LangGraph peer: a ``StateGraph`` with a ``SqliteSaver`` checkpointer, durability "sync".

- W1 ``chain``: nodes ``f0 -> f1 -> ... -> f{steps-1}``, each ``{"n": n + 1}``; one
  superstep per node, so a checkpoint per step.
- W2 ``fanout``: a ``start`` node feeding ``steps - 1`` independent nodes that each append
  ``n + 1`` to a list channel (``operator.add`` reducer); one superstep runs them all and
  each task's writes are saved as it finishes.

Durability "sync" makes LangGraph save each checkpoint before the next superstep starts.
The saver's connection is in WAL mode (``SqliteSaver.setup`` sets it) and its
``synchronous`` pragma follows stepwell's durability mode: NORMAL for ``process``, FULL
for ``full``. The wall time covers ``compile()`` and ``invoke()``; the persisted step
count is the number of tasks with saved writes, read back from the database.
"""

from __future__ import annotations

import operator
import sqlite3
import sys
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

WORKLOADS = ("chain", "fanout")
SYNCHRONOUS = {"process": "NORMAL", "full": "FULL"}


class ChainState(TypedDict):
    """The chain's state: one integer."""

    n: int


class FanoutState(TypedDict):
    """The fan-out's state: the input and the list every branch appends to."""

    n: int
    out: Annotated[list[int], operator.add]


def bump(state: ChainState) -> dict[str, int]:
    """The trivial step: n + 1."""
    return {"n": state["n"] + 1}


def bump_into_list(state: FanoutState) -> dict[str, list[int]]:
    """A fan-out branch: append n + 1."""
    return {"out": [state["n"] + 1]}


def start(state: FanoutState) -> dict[str, int]:
    """The fan-out's first node: pass the input on."""
    return {"n": state["n"]}


def chain_graph(steps: int) -> StateGraph:
    """W1: ``steps`` nodes in a line."""
    graph = StateGraph(ChainState)
    prev = START
    for i in range(steps):
        graph.add_node(f"f{i}", bump)
        graph.add_edge(prev, f"f{i}")
        prev = f"f{i}"
    graph.add_edge(prev, END)
    return graph


def fanout_graph(steps: int) -> StateGraph:
    """W2: a start node feeding ``steps - 1`` independent nodes."""
    graph = StateGraph(FanoutState)
    graph.add_node("start", start)
    graph.add_edge(START, "start")
    for i in range(steps - 1):
        graph.add_node(f"f{i}", bump_into_list)
        graph.add_edge("start", f"f{i}")
        graph.add_edge(f"f{i}", END)
    return graph


def _connect(db: Path, durability: str) -> sqlite3.Connection:
    conn = sqlite3.connect(db, check_same_thread=False)
    conn.execute(f"PRAGMA synchronous={SYNCHRONOUS[durability]}")
    return conn


def run(workload: str, steps: int, db: Path, durability: str) -> tuple[float, int]:
    """One run of ``workload`` in a fresh database ``db``.

    Returns:
        (wall seconds of compile + invoke, persisted steps read back from ``db``).

    Raises:
        SystemExit: the run's result or the persisted step count is not what the
            workload promises.
    """
    graph = chain_graph(steps) if workload == "chain" else fanout_graph(steps)
    inputs: dict[str, Any] = {"n": 0} if workload == "chain" else {"n": 0, "out": []}
    config: RunnableConfig = {"configurable": {"thread_id": "bench"},
                              "recursion_limit": steps + 10}
    conn = _connect(db, durability)
    try:
        begin = time.perf_counter()
        app = graph.compile(checkpointer=SqliteSaver(conn))
        result = app.invoke(inputs, config, durability="sync")
        wall = time.perf_counter() - begin
        tasks = conn.execute("SELECT count(DISTINCT task_id) FROM writes").fetchone()[0]
    finally:
        conn.close()
    expected = {"n": steps} if workload == "chain" else {"n": 0, "out": [1] * (steps - 1)}
    if result != expected:
        raise SystemExit(f"langgraph {workload}: unexpected result {str(result)[:200]}")
    return wall, tasks - 1  # the input is saved as a task of its own


def cold(db: Path) -> None:
    """W4: a one-node graph, checkpointed to ``db`` with durability "sync"."""
    graph = StateGraph(ChainState)
    graph.add_node("f0", bump)
    graph.add_edge(START, "f0")
    graph.add_edge("f0", END)
    conn = _connect(db, "process")
    try:
        app = graph.compile(checkpointer=SqliteSaver(conn))
        app.invoke({"n": 0}, {"configurable": {"thread_id": "cold"}}, durability="sync")
    finally:
        conn.close()


if __name__ == "__main__":
    cold(Path(sys.argv[1]))
