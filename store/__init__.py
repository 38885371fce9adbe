"""stepwell storage: SQLite (WAL) store, file store and the read API."""

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
from store.base import PersistedRun, PersistedStep, Store
from store.client import Client
from store.files import LocalFileStore, detect_mime
from store.sqlite import Durability, SQLiteStore

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
