"""Run metadata sent over HTTP: its limits, and its cleaning before it is stored.

Metadata are tags on a run (``{"customer": "acme", "batch": "2026-03"}``): the runs list
filters on them (every pair must match exactly), the run page and every run the API
returns carry them. They are not a place for data (that is what ``json_inputs`` and
documents are for), so ``POST /v1/workflows/runs`` caps them as payment APIs cap theirs:

* at most :data:`MAX_METADATA_KEYS` (50) keys;
* keys of at most :data:`MAX_METADATA_KEY_CHARS` (40) characters;
* values of at most :data:`MAX_METADATA_VALUE_CHARS` (500) characters;
* at most :data:`MAX_METADATA_BYTES` (8 KiB) in all, as compact UTF-8 JSON: a run list
  page of 1,000 runs then carries at most 8 MiB of metadata, whatever the characters;
* no ``"`` or ``\\`` in a key: the list's filter reads a key by a JSON path, which
  SQLite cannot write for those two characters, so such a run could never be found by
  its tag.

Values are strings (the request schema refuses anything else, so metadata has no
nesting). A request over a limit is a 422 ``INVALID_INPUT`` naming the limit, what was
sent and the fix, and nothing is stored. The ``metadata`` filter of ``GET /runs`` takes
at most :data:`MAX_METADATA_KEYS` pairs too (each pair is one more comparison on every
run the list reads).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from engine.contracts.bounded import check_json, clean_text
from engine.server.errors import ApiError

#: Most keys run metadata may have.
MAX_METADATA_KEYS = 50
#: Longest metadata key (characters).
MAX_METADATA_KEY_CHARS = 40
#: Longest metadata value (characters).
MAX_METADATA_VALUE_CHARS = 500
#: Largest metadata in all, encoded as compact UTF-8 JSON (bytes).
MAX_METADATA_BYTES = 8 * 1024

_FIX = ("Keep metadata to short tags (ids, names, labels) and send larger data as "
        "json_inputs or a document.")


def _shown(text: str) -> str:
    """A key as quoted in a message: its first characters only."""
    return repr(text if len(text) <= MAX_METADATA_KEY_CHARS
                else text[:MAX_METADATA_KEY_CHARS] + "…")


def _over(limit: str, message: str, *, maximum: int, actual: int, **extra: Any) -> ApiError:
    return ApiError(422, "INVALID_INPUT", f"{message} {_FIX}",
                    {"field": "metadata", "limit": limit, "max": maximum, "actual": actual,
                     **extra})


def check_limits(metadata: Mapping[str, str]) -> None:
    """Refuse metadata over a count or length limit (before any other work on it).

    Raises:
        ApiError: 422 ``INVALID_INPUT``; ``details.limit`` is ``keys``, ``key_length``
            or ``value_length``.
    """
    if len(metadata) > MAX_METADATA_KEYS:
        raise _over("keys", f"metadata has {len(metadata)} keys; a run takes at most "
                    f"{MAX_METADATA_KEYS}. Send fewer keys.",
                    maximum=MAX_METADATA_KEYS, actual=len(metadata))
    for key, value in metadata.items():
        _check_key(key)
        if len(key) > MAX_METADATA_KEY_CHARS:
            raise _over("key_length", f"metadata key {_shown(key)} is {len(key)} characters; "
                        f"keys may have at most {MAX_METADATA_KEY_CHARS}. Use a shorter key.",
                        maximum=MAX_METADATA_KEY_CHARS, actual=len(key),
                        key=key[:MAX_METADATA_KEY_CHARS])
        if len(value) > MAX_METADATA_VALUE_CHARS:
            raise _over("value_length", f"metadata value of key {_shown(key)} is "
                        f"{len(value)} characters; values may have at most "
                        f"{MAX_METADATA_VALUE_CHARS}. Shorten it.",
                        maximum=MAX_METADATA_VALUE_CHARS, actual=len(value), key=key)


#: Characters a metadata key may not hold (see the module docstring).
_UNFILTERABLE = ('"', "\\")


def _check_key(key: str, *, error: str = "INVALID_INPUT") -> None:
    """Refuse a key the runs list could not filter on.

    Raises:
        ApiError: 422 ``error`` (``details.limit``: ``key_characters``).
    """
    if any(char in key for char in _UNFILTERABLE):
        raise ApiError(422, error, f"metadata key {_shown(key)} holds a double quote or a "
                       "backslash, which a metadata filter cannot match. Use letters, "
                       "digits and other punctuation (e.g. '-', '_', '.', ':').",
                       {"field": "metadata", "limit": "key_characters", "key": key[:80]})


def encoded_size(metadata: Mapping[str, str]) -> int:
    """Bytes of ``metadata`` as compact UTF-8 JSON (what :data:`MAX_METADATA_BYTES`
    bounds)."""
    return len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode())


def printable(metadata: Mapping[str, str]) -> dict[str, str]:
    """Metadata with control characters and bidi overrides removed from its keys and
    values (they are printed in terminals and pages), as names and labels are.

    Raises:
        ApiError: 422 when a key has no printable character left.
    """
    cleaned: dict[str, str] = {}
    for key, value in metadata.items():
        name = clean_text(key).strip()
        if not name:
            raise ApiError(422, "INVALID_INPUT", f"metadata key {key!r} has no printable "
                           "characters; use letters, digits or punctuation.",
                           {"field": "metadata"})
        cleaned[name] = clean_text(value)
    return cleaned


def run_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """The metadata of a run created over HTTP, checked and cleaned, as it is stored.

    Raises:
        ApiError: 422 ``INVALID_INPUT`` over a limit (``details.limit``: ``keys``,
            ``key_length``, ``value_length`` or ``size``) or for a key with no printable
            character.
    """
    given = dict(metadata or {})
    check_limits(given)
    cleaned = printable(given)
    size = encoded_size(cleaned)
    if size > MAX_METADATA_BYTES:
        raise _over("size", f"metadata is {size:,} bytes as UTF-8 JSON; a run takes at most "
                    f"{MAX_METADATA_BYTES:,} in all. Send fewer or shorter values.",
                    maximum=MAX_METADATA_BYTES, actual=size)
    check_json(cleaned, what="metadata")
    return cleaned


def check_filter(pairs: Mapping[str, str]) -> None:
    """Refuse a ``metadata`` list filter of more pairs than a run takes, or a key no run
    created over HTTP can hold.

    Raises:
        ApiError: 422 ``INVALID_PARAMETER``.
    """
    if len(pairs) > MAX_METADATA_KEYS:
        raise ApiError(422, "INVALID_PARAMETER",
                       f"metadata: the filter has {len(pairs)} pairs; pass at most "
                       f"{MAX_METADATA_KEYS} (a run created over HTTP has no more keys).",
                       {"parameter": "metadata", "max": MAX_METADATA_KEYS,
                        "actual": len(pairs)})
    for key in pairs:
        _check_key(key, error="INVALID_PARAMETER")
