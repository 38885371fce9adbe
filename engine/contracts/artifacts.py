"""Artifact ids: Retab's per-operation prefixes, deterministic per step attempt.

Retab derives an artifact's kind from its id prefix (``GET /workflows/artifacts/{id}``
"infers the backing artifact operation from the id prefix"). The prefixes below are
the ones Retab's public responses, SDK fixtures and CLI help show; three operations
have no public example and use stepwell's own (marked). The part after the prefix is
derived from run, step and attempt, so a resumed run writes the same id again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from importlib import import_module
from typing import Any, cast

#: operation -> id prefix (without the ``_``).
ARTIFACT_ID_PREFIXES: dict[str, str] = {
    "extraction": "extr",  # `extr_…` (CLI help, SDK fixtures)
    "split": "splt",  # `splt_…` (CLI experiments help, SDK fixtures)
    "classification": "clss",  # `clss_…` (CLI artifacts help, SDK docstring)
    "parse": "prs",  # `prs_…` (SDK fixtures)
    "edit": "edt",  # `edt_…` (SDK fixtures)
    "partition": "prtn",  # `prtn_…` (CLI experiments help, SDK fixtures)
    "conditional_evaluation": "ceval",  # `ceval_…` (artifacts API reference)
    "function_invocation": "fninv",  # `fninv_…` (artifacts API reference, CLI tests)
    "api_call_invocation": "apiinv",  # stepwell's own: no public example
    "while_loop_termination": "wlterm",  # stepwell's own: no public example
    "review_trigger_evaluation": "rteval",  # stepwell's own: no public example
}
#: The prefix of an operation no table entry names (block types of plugins).
DEFAULT_PREFIX = "art"


def _builtin_sha256() -> Callable[[bytes], Any]:
    """CPython's own SHA-256 (``_sha2`` from 3.12, ``_sha256`` before), else hashlib's.

    The digest is the same; only the code differs. hashlib's goes through OpenSSL, whose
    lookups cost about 3 us per call once a step's other work has pushed them out of
    the CPU's caches (0.8 us in a tight loop): about 2% of a chain step, for the 32
    bytes every recorded artifact hashes (``docs/performance.md``). A Python built
    without its own hashes falls back to hashlib.
    """
    for module in ("_sha2", "_sha256"):
        try:
            return cast("Callable[[bytes], Any]", import_module(module).sha256)
        except (ImportError, AttributeError):
            continue
    return hashlib.sha256


_sha256 = _builtin_sha256()


def artifact_prefix(operation: str) -> str:
    """The id prefix of artifacts of ``operation`` (``art`` for unknown operations)."""
    return ARTIFACT_ID_PREFIXES.get(operation, DEFAULT_PREFIX)


def artifact_id(operation: str, run_id: str, step_id: str, attempt: int) -> str:
    """The id of the artifact one step attempt records.

    Args:
        operation: the artifact's ``operation`` (``extraction``, ...).
        run_id, step_id: where it was recorded.
        attempt: the step's retry count when it was recorded.

    Returns:
        ``<prefix>_<12 hex digits>``, e.g. ``extr_3f9a0c1b2d4e``; the same inputs always
        give the same id.
    """
    return f"{artifact_prefix(operation)}_{artifact_digest(run_id, step_id, attempt)[:12]}"


def artifact_digest(run_id: str, step_id: str, attempt: int) -> str:
    """The sha256 hex digest an artifact id takes its digits from (see :func:`artifact_id`;
    stores that put a row number in the id keep a shorter part of it)."""
    return _sha256(f"{run_id}\x00{step_id}\x00{attempt}".encode()).hexdigest()


def operation_of(artifact_id_: str) -> str | None:
    """The operation an artifact id's prefix names, or None for ``art_`` and unknown ones."""
    prefix = artifact_id_.split("_", 1)[0]
    for operation, known in ARTIFACT_ID_PREFIXES.items():
        if known == prefix:
            return operation
    return None
