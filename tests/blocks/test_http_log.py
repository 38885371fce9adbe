"""api_call writes a request/response summary per attempt to the step's log, secrets out."""

from __future__ import annotations

import pytest

from blocks.api_call import ApiCall
from engine.contracts.errors import PermanentError, TransientError
from engine.contracts.logs import StepLog
from tests.blocks.conftest import MakeCtx
from tests.blocks.harness import run_block
from tests.blocks.loopback import LoopbackServer, Reply

pytestmark = pytest.mark.anyio
SECRET = "s3cr3t-token-77ab"


async def test_a_request_and_its_response_are_summarised(make_ctx: MakeCtx) -> None:
    log = StepLog()
    with LoopbackServer([Reply(201, {"id": 7, "token": SECRET})]) as server:
        cfg = {"url": "${BASE}/tickets?token=${TOKEN}",
               "headers": {"Authorization": "Bearer ${TOKEN}", "X-Trace": "abc"}}
        ctx = make_ctx("api_call", "call", env={"BASE": server.url, "TOKEN": SECRET}, log=log)
        await run_block(ApiCall(), ctx, cfg, {"input-json-0": {"title": "hi"}})
    request, response = (e.message for e in log.entries())
    assert request.startswith("→ POST ${BASE}/tickets?token=${TOKEN}")
    assert '"Authorization": "[REDACTED]"' in request and '"X-Trace": "abc"' in request
    assert request.endswith('body: {"title": "hi"}')
    assert response.startswith("← 201 in ") and "content-type: application/json" in response
    assert SECRET not in request + response
    assert {e.stream for e in log.entries()} == {"http"}


async def test_a_failed_attempt_is_summarised_too(make_ctx: MakeCtx) -> None:
    log = StepLog()
    with LoopbackServer([Reply(404, {"detail": "no such ticket"})]) as server:
        ctx = make_ctx("api_call", "call", log=log)
        with pytest.raises(PermanentError):
            await run_block(ApiCall(), ctx, {"url": server.url + "/t/9", "method": "GET"}, {})
    request, response = (e.message for e in log.entries())
    assert request == f"→ GET {server.url}/t/9"
    assert response.startswith("← 404 in ") and "no such ticket" in response
    assert "error: " in response


async def test_no_answer_is_a_failure_line(make_ctx: MakeCtx) -> None:
    log = StepLog()
    ctx = make_ctx("api_call", "call", log=log)
    with pytest.raises(TransientError):
        await run_block(ApiCall(), ctx, {"url": "http://127.0.0.1:9/x", "method": "GET"}, {})
    failure = log.entries()[-1].message
    assert failure.startswith("× GET http://127.0.0.1:9/x failed in ")
    assert "cannot reach" in failure
