"""Peers: the same workloads run on other durable-execution libraries, on SQLite.

Each peer module (``langgraph_chain``, ``dbos_chain``) offers the same three calls:

- ``run(workload, steps, db, durability) -> (wall seconds, persisted steps)``: one run
  of W1 ``chain`` or W2 ``fanout`` in a fresh database, the step count read back from it;
- ``WORKLOADS``: the workloads the peer can express;
- run as ``python -m bench.peers.<module> DB``: W4, a one-step persisted workflow as a
  whole process (what the cold start times).

``bench.peers.measure`` runs one (peer, workload) in its own process and prints a JSON
line; ``bench.peers.report`` drives those processes and prints the comparison table.
The peers' packages come with the ``bench`` extra (``pip install -e '.[bench]'``);
nothing here imports them until a peer actually runs.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

INSTALL_HINT = "pip install -e '.[bench]'"


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer:
    """One peer: its label, the module that drives it and the packages it needs."""

    key: str
    label: str
    distribution: str
    """The package whose version is shown next to the label."""
    module: str
    requires: tuple[str, ...]
    storage: dict[str, str]
    """How the peer persists, by stepwell durability mode (printed under the table)."""


_DBOS_SQLITE = "SQLite system database as shipped: rollback journal, synchronous=FULL"
PEERS = (
    Peer(key="langgraph", label="LangGraph", distribution="langgraph",
         module="bench.peers.langgraph_chain",
         requires=("langgraph", "langgraph.checkpoint.sqlite"),
         storage={"process": "SqliteSaver, durability sync, WAL, synchronous=NORMAL",
                  "full": "SqliteSaver, durability sync, WAL, synchronous=FULL"}),
    Peer(key="dbos", label="DBOS", distribution="dbos", module="bench.peers.dbos_chain",
         requires=("dbos",), storage={"process": _DBOS_SQLITE, "full": _DBOS_SQLITE}),
)


def missing_packages() -> list[str]:
    """Modules of the ``bench`` extra that cannot be found (without importing them)."""
    missing = []
    for peer in PEERS:
        for name in peer.requires:
            try:
                found = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                missing.append(name)
    return missing


def get_peer(key: str) -> Peer:
    """The peer called ``key``; raises ``SystemExit`` naming the known peers."""
    for peer in PEERS:
        if peer.key == key:
            return peer
    raise SystemExit(f"unknown peer {key!r}; choose from "
                     f"{', '.join(p.key for p in PEERS)}")
