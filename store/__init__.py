"""stepwell storage: SQLite (WAL) store, file store and the read API."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.contracts.files import detect_mime
    from engine.contracts.store import PersistedRun, PersistedStep, Store
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
    from store.sqlite import Durability, SQLiteStore

# Imported on first use: ``import store.base`` (the runner's path) stays light.
_HOMES = {
    "LegacyStep": "store.api", "ListMetadata": "store.api", "Page": "store.api",
    "ReadAPI": "store.api", "Step": "store.api", "WorkflowRun": "store.api",
    "sdk_block_type": "store.api", "sdk_legacy_step": "store.api", "sdk_run": "store.api",
    "sdk_step": "store.api", "PersistedRun": "engine.contracts.store", "PersistedStep": "engine.contracts.store",
    "Store": "engine.contracts.store", "Client": "store.client", "LocalFileStore": "store.files",
    "detect_mime": "engine.contracts.files", "Durability": "store.sqlite", "SQLiteStore": "store.sqlite",
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
    "Page",
    "PersistedRun",
    "PersistedStep",
    "ReadAPI",
    "SQLiteStore",
    "Step",
    "Store",
    "WorkflowRun",
    "detect_mime",
    "sdk_block_type",
    "sdk_legacy_step",
    "sdk_run",
    "sdk_step",
]
