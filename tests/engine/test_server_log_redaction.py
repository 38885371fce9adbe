"""Access-log redaction decodes query keys first: a percent-encoded ``access_token`` (the
server accepts it, since query keys are decoded) is redacted like the plain one."""

from __future__ import annotations

import logging

import pytest

from engine.server.security import RedactQueryKeys, redact

KEY = "sk_live_0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("key", ["access_token", "ACCESS_TOKEN", "access%5Ftoken",
                                 "access%5ftoken", "%61ccess_token", "Access%255Ftoken"])
def test_every_spelling_of_the_key_is_redacted(key: str) -> None:
    line = f'127.0.0.1:5 - "GET /v1/workflows?limit=2&{key}={KEY} HTTP/1.1" 200'
    redacted = redact(line)
    assert KEY not in redacted and f"{key}=[REDACTED]" in redacted and "limit=2" in redacted


def test_other_pairs_and_plain_text_are_kept() -> None:
    assert redact("GET /v1/x?access_tokens=1&token=2") == "GET /v1/x?access_tokens=1&token=2"
    assert redact("no pairs here") == "no pairs here"


def test_uvicorn_access_record_arguments_are_redacted() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", f"/v1/runs?access%5Ftoken={KEY}", "1.1",
                                200), None)
    assert RedactQueryKeys().filter(record)
    assert KEY not in record.getMessage()
