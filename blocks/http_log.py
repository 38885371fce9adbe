"""A request/response summary of one HTTP attempt, for the step's log (``api_call``).

The summary is built from the attempt record the block keeps for its artifact, after
secrets were scrubbed and sensitive headers redacted, so the log never holds more than
the artifact does. Two entries per attempt on the ``http`` stream::

    → POST https://api.example.com/tickets  headers: {...}  body: {"id": 7}
    ← 201 in 84.2 ms  content-type: application/json  1,204 bytes  body: {"ok": true}

or ``× POST https://... failed after 5003.1 ms: <the error>`` when no answer came back.
Bodies are cut to :data:`BODY_EXCERPT` characters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from engine.contracts.logs import LogStream, StepLog

#: Characters of a request or response body shown in the log.
BODY_EXCERPT = 500


def log_attempt(log: StepLog | None, attempt: Mapping[str, Any]) -> None:
    """Write the summary of one (scrubbed) attempt record to ``log``.

    Args:
        log: the step's log (nothing is written when None).
        attempt: ``request_method``, ``request_url``, ``request_headers``,
            ``request_body``, and when answered ``response_status``,
            ``response_headers``, ``response_body``; ``duration_ms``; ``error``.
    """
    if log is None:
        return
    method, url = attempt.get("request_method"), attempt.get("request_url")
    request = f"→ {method} {url}"
    if attempt.get("request_headers"):
        request += f"  headers: {_compact(attempt['request_headers'])}"
    if attempt.get("request_body") is not None:
        request += f"  body: {_excerpt(attempt['request_body'])}"
    log.write(LogStream.HTTP, request)
    duration = attempt.get("duration_ms")
    took = f" in {duration} ms" if duration is not None else ""
    status = attempt.get("response_status")
    if status is None:
        error = attempt.get("error") or "no response"
        log.write(LogStream.HTTP, f"× {method} {url} failed{took}: {error}")
        return
    headers = attempt.get("response_headers") or {}
    body = attempt.get("response_body") or ""
    line = f"← {status}{took}"
    kind = _header(headers, "content-type")
    if kind:
        line += f"  content-type: {kind}"
    line += f"  {len(body):,} bytes  body: {_excerpt(body)}"
    if attempt.get("error"):
        line += f"  error: {attempt['error']}"
    log.write(LogStream.HTTP, line)


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if str(key).lower() == name:
            return str(value)
    return None


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))


def _excerpt(value: Any) -> str:
    text = value if isinstance(value, str) else _compact(value)
    text = " ".join(text.split())
    if len(text) <= BODY_EXCERPT:
        return text
    return f"{text[:BODY_EXCERPT]}… [{len(text) - BODY_EXCERPT} more characters]"
