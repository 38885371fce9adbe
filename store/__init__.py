"""stepwell storage: the SQLite (WAL) store, the PostgreSQL store, the in-memory store,
files and the read API.

Every store implements every protocol of :mod:`engine.contracts.store`; ``MemoryStore``
is the public test utility (nothing outlives it). ``open_store`` turns a ``--db`` value
(a path or a ``postgresql://`` URL) into a store.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.contracts.files import detect_mime
    from engine.contracts.store import (
        PersistedRun,
        PersistedStep,
        ReadStore,
        ReviewStore,
        RunStore,
        Store,
        WorkflowStore,
    )
    from store.api import (
        LegacyStep,
        ListMetadata,
        Page,
        ReadAPI,
        Step,
        WorkflowRun,
        sdk_block_type,
        sdk_legacy_step,
        sdk_run,
        sdk_step,
    )
    from store.client import Client
    from store.files import LocalFileStore
    from store.memory import MemoryStore
    from store.memory_files import MemoryFileStore
    from store.pg import PostgresStore
    from store.sqlite import Durability, SQLiteStore
    from store.urls import open_store, parse_db

# Imported on first use: ``import store`` stays light for the runner's path.
_HOMES = {
    "LegacyStep": "store.api", "ListMetadata": "store.api", "Page": "store.api",
    "ReadAPI": "store.api", "Step": "store.api", "WorkflowRun": "store.api",
    "sdk_block_type": "store.api", "sdk_legacy_step": "store.api", "sdk_run": "store.api",
    "sdk_step": "store.api", "PersistedRun": "engine.contracts.store",
    "PersistedStep": "engine.contracts.store", "Store": "engine.contracts.store",
    "RunStore": "engine.contracts.store", "ReviewStore": "engine.contracts.store",
    "WorkflowStore": "engine.contracts.store", "ReadStore": "engine.contracts.store",
    "Client": "store.client", "LocalFileStore": "store.files",
    "detect_mime": "engine.contracts.files", "Durability": "store.sqlite",
    "SQLiteStore": "store.sqlite", "MemoryStore": "store.memory",
    "MemoryFileStore": "store.memory_files", "PostgresStore": "store.pg",
    "open_store": "store.urls", "parse_db": "store.urls",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'store' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(home), name)


__all__ = [
    "Client",
    "Durability",
    "LegacyStep",
    "ListMetadata",
    "LocalFileStore",
    "MemoryFileStore",
    "MemoryStore",
    "Page",
    "PersistedRun",
    "PersistedStep",
    "PostgresStore",
    "ReadAPI",
    "ReadStore",
    "ReviewStore",
    "RunStore",
    "SQLiteStore",
    "Step",
    "Store",
    "WorkflowRun",
    "WorkflowStore",
    "detect_mime",
    "open_store",
    "parse_db",
    "sdk_block_type",
    "sdk_legacy_step",
    "sdk_run",
    "sdk_step",
]
