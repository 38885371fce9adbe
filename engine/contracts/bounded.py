"""Bounds on what callers hand to stepwell: JSON values, JSON text, and printable text.

Every value that enters a run (HTTP ``json_inputs`` and metadata, CLI ``--input``, Python
``inputs``, review data) is checked with :func:`check_json` before anything is written:

* nesting deeper than :data:`MAX_JSON_DEPTH` (64) levels is refused: deeper values crash
  recursive encoders and readers long after they were stored;
* ``NaN`` and ``Infinity`` are refused: JSON has no spelling for them (they would be
  stored as ``null`` or break strict readers);
* only JSON types are accepted (dict with string keys, list/tuple, str, int, float, bool,
  None).

The walk is iterative, so a hostile value cannot exhaust the interpreter's stack while
being checked. :func:`loads_json` parses text under the same rules (``NaN`` literals are
refused by the parser itself).

:func:`clean_text` and :func:`clean_mime` strip what must never reach a terminal or the
database from names, filenames and MIME types: control characters (C0, DEL, C1) and the
Unicode bidirectional overrides that reorder what a terminal shows.

:func:`bounded_search` runs the regular expressions of conditions and eval assertions
(``matches_regex``) under a time budget (:data:`REGEX_TIMEOUT_SECONDS`) and size limits,
so a catastrophically backtracking pattern cannot hold the server process.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from engine.contracts.errors import InputError, PermanentError

#: Deepest nesting accepted in a JSON value (a scalar is depth 0, ``[1]`` is depth 1).
MAX_JSON_DEPTH = 64

#: Longest a ``matches_regex`` search may run before it fails (seconds).
REGEX_TIMEOUT_SECONDS = 0.2
#: Longest regular expression accepted (characters).
MAX_REGEX_PATTERN = 1_000
#: Longest text a regular expression is tested against (characters).
MAX_REGEX_TEXT = 1_000_000

#: The longest text a person attaches to a review (a decision's reason, a version's note),
#: in characters.
MAX_REASON_CHARS = 2000
#: A UTF-16 surrogate code point (only ever in a ``str`` decoded from escapes).
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_MULTILINE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_MIME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$")


def json_problem(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """What makes ``value`` unacceptable as bounded JSON, or None when it is fine.

    Args:
        value: a decoded JSON value.
        max_depth: the deepest nesting allowed.

    Returns:
        A short description with the path of the first problem (``a.b.0: NaN``), or None.
    """
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth >= max_depth:
                return f"{_short(path)}: nested deeper than {max_depth} levels"
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(item, dict) and not isinstance(key, str):
                    return f"{path or '<root>'}: key {key!r} is not a string"
                stack.append((child, depth + 1, f"{path}.{key}" if path else str(key)))
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{path or '<root>'}: {item!r} is not a JSON number"
        elif not (item is None or isinstance(item, str | int | bool)):
            return f"{path or '<root>'}: a {type(item).__name__} is not a JSON value"
    return None


#: A tuple, not ``dict | list | tuple``: isinstance is about twice as fast with it.
_CONTAINERS = (dict, list, tuple)


def nesting_problem(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Where ``value`` nests deeper than ``max_depth`` levels, or None.

    Only the depth is checked (no type checks), and only containers are visited, so it is
    cheap enough for every block output.

    Args:
        value: a JSON-like value (dicts, lists and tuples are containers).
        max_depth: the deepest nesting allowed.

    Returns:
        A short description with the path (``a.b.0: nested deeper than 64 levels``).
    """
    if not isinstance(value, _CONTAINERS):
        return None
    # Depths only (no path strings): this runs on every block output. The path is
    # looked for again only when the value is too deep.
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth >= max_depth:
            return f"{_short(_deep_path(value, max_depth))}: nested deeper than {max_depth} levels"
        for child in (item.values() if isinstance(item, dict) else item):
            if isinstance(child, _CONTAINERS):
                stack.append((child, depth + 1))
    return None


def _deep_path(value: Any, max_depth: int) -> str:
    """The dotted path of the first container found ``max_depth`` levels down."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, path = stack.pop()
        if depth >= max_depth:
            return path
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        for key, child in pairs:
            if isinstance(child, _CONTAINERS):
                stack.append((child, depth + 1, f"{path}.{key}" if path else str(key)))
    return ""


def _short(path: str) -> str:
    if not path:
        return "<root>"
    return path if len(path) <= 48 else f"{path[:20]}...{path[-24:]}"


def check_json(value: Any, *, what: str = "input", max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse ``value`` unless it is bounded JSON (see the module docstring).

    Args:
        value: the decoded value.
        what: how to name it in the message (``json_inputs.invoice``, ``review data``).
        max_depth: the deepest nesting allowed.

    Raises:
        InputError: the value is too deep, holds NaN/Infinity or a non-JSON type.
    """
    problem = json_problem(value, max_depth=max_depth)
    if problem is not None:
        raise InputError(
            f"{what} is not acceptable JSON ({problem}). Send plain JSON nested at most "
            f"{max_depth} levels, with finite numbers only.")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_json(text: str | bytes, *, what: str = "input",
               max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON text and check it with :func:`check_json`.

    Args:
        text: the JSON document.
        what: how to name it in messages.
        max_depth: the deepest nesting allowed.

    Returns:
        The decoded value.

    Raises:
        InputError: not JSON, ``NaN``/``Infinity`` literals, or too deep.
    """
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise InputError(f"{what} is nested too deeply to read; send at most {max_depth} "
                         "levels.") from None
    except ValueError as exc:
        raise InputError(f"{what} is not valid JSON ({exc}). Fix it and send it again.") from None
    check_json(value, what=what, max_depth=max_depth)
    return value


def clean_text(text: str, *, limit: int | None = None, multiline: bool = False) -> str:
    """``text`` without control characters and bidi overrides, cut to ``limit`` characters.

    Args:
        text: a name, filename, label or message that will be printed or stored.
        limit: the longest result kept (None: no limit).
        multiline: keep newlines and tabs (descriptions); carriage returns still go.

    Returns:
        The cleaned text (tabs and newlines are removed too unless ``multiline``: names
        are one line).
    """
    cleaned = (_CONTROL_MULTILINE if multiline else _CONTROL).sub("", text)
    if _SURROGATE.search(cleaned):
        cleaned = paired(cleaned)
    return cleaned if limit is None else cleaned[:limit]


def paired(text: str) -> str:
    """``text`` with each UTF-16 surrogate pair joined into its character and every
    unpaired surrogate replaced by U+FFFD.

    YAML reads ``"\\ud83e\\uddfe"`` as two lone surrogates where JSON reads one emoji,
    and a lone surrogate cannot be encoded as UTF-8: printed, or stored in a text
    column, it fails. Names and labels go through here (:func:`clean_text`).
    """
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def paired_json(value: Any) -> Any:
    """``value`` with :func:`paired` applied to every string in it, keys included
    (containers copied; other values as they are).

    Used where JSON-like data crosses into UTF-8 text: workflow documents whose escapes
    split a character (:mod:`engine.loading`) and payloads the store encodes
    (:mod:`store.codec`), so what is stored reads back and prints.
    """
    if isinstance(value, str):
        return paired(value) if _SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {paired_json(key): paired_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [paired_json(item) for item in value]
    return value


def clean_mime(mime: str | None) -> str | None:
    """A MIME type as ``type/subtype`` (parameters dropped, lower case), or None when
    ``mime`` is missing or is not a well-formed type (CRLF, spaces, no slash...)."""
    if not mime:
        return None
    essence = mime.split(";", 1)[0].strip().lower()
    return essence if _MIME.match(essence) else None


class RegexBudgetError(PermanentError, ValueError):
    """A ``matches_regex`` pattern or text over its budget (a permanent step error; a
    ``ValueError`` for callers that report bad data without failing)."""


def regex_problem(pattern: str) -> str | None:
    """What makes ``pattern`` unusable as a ``matches_regex`` value, or None.

    Args:
        pattern: the regular expression (Python ``re`` syntax).
    """
    if len(pattern) > MAX_REGEX_PATTERN:
        return (f"the regular expression is {len(pattern)} characters long; the limit is "
                f"{MAX_REGEX_PATTERN}. Use a shorter pattern")
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"value {pattern!r} is not a valid regular expression: {exc}"
    return None


def bounded_search(pattern: str, text: str, *, what: str = "matches_regex") -> bool:
    """True when ``pattern`` matches somewhere in ``text`` (``re.search`` semantics).

    The search runs with the ``regex`` package in its ``re``-compatible mode (``V0``)
    without holding the interpreter lock, and gives up after
    :data:`REGEX_TIMEOUT_SECONDS`.

    Args:
        pattern: the regular expression (at most :data:`MAX_REGEX_PATTERN` characters).
        text: the text searched (at most :data:`MAX_REGEX_TEXT` characters).
        what: the condition or assertion, for messages.

    Raises:
        RegexBudgetError: the pattern or the text is too long, or the search outlived
            its budget (code ``REGEX_TOO_SLOW``).
        re.error: the pattern is not a valid regular expression.
    """
    if len(pattern) > MAX_REGEX_PATTERN:
        raise RegexBudgetError(
            f"{what}: the regular expression is {len(pattern)} characters long; the limit "
            f"is {MAX_REGEX_PATTERN}. Use a shorter pattern.", code="REGEX_TOO_LONG")
    if len(text) > MAX_REGEX_TEXT:
        raise RegexBudgetError(
            f"{what}: the text tested is {len(text)} characters long; the limit is "
            f"{MAX_REGEX_TEXT}. Test a shorter field.", code="REGEX_TEXT_TOO_LONG")
    re.compile(pattern)  # the ``re`` syntax errors callers already handle
    import regex  # here: importing it costs more than a run without regex conditions

    try:
        found = regex.search(pattern, text, flags=regex.V0, timeout=REGEX_TIMEOUT_SECONDS,
                             concurrent=True)
    except TimeoutError:
        shown = pattern if len(pattern) <= 60 else f"{pattern[:57]}..."
        raise RegexBudgetError(
            f"{what}: the regular expression {shown!r} took longer than "
            f"{REGEX_TIMEOUT_SECONDS} s on a {len(text)}-character text. Simplify the "
            "pattern (avoid nested or overlapping repeats such as (a+)+ or (a|a)+).",
            code="REGEX_TOO_SLOW") from None
    return found is not None
