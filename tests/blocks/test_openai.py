"""The OpenAI-compatible provider against a loopback server, alone and through the engine."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from blocks import pdf
from blocks.providers import MODEL_PROVIDER_SERVICE, Label, step_usage
from blocks.providers.openai import OpenAIProvider, retry_after_seconds
from blocks.providers.openai_prompts import strict_schema
from engine import Engine, Workflow
from engine.contracts.errors import ErrorCategory, PermanentError, QuotaError, TransientError
from engine.runner import RetryPolicy
from tests.blocks import pdfs
from tests.blocks.conftest import CALL_CTX, CATEGORIES, INVOICE_SCHEMA
from tests.blocks.loopback import LoopbackServer, Reply, chat_reply

pytestmark = pytest.mark.anyio


# ----------------------------------------------------------------------------- openai


def _openai(server: LoopbackServer, **kwargs: Any) -> OpenAIProvider:
    return OpenAIProvider(base_url=server.url + "/v1", api_key="sk-test", timeout=5, **kwargs)


async def test_openai_sends_the_schema_and_records_usage() -> None:
    answer = {"invoice_number": "A-1", "issue_date": "2026-01-02", "supplier": "X",
              "total_amount": 12.5, "currency": "EUR"}
    with LoopbackServer([chat_reply(answer, prompt=1000, completion=200)]) as server:
        result = await _openai(server).extract(["Invoice A-1"], INVOICE_SCHEMA,
                                               model="retab-small", n_consensus=1, context=CALL_CTX)
    request = server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer sk-test"
    sent = request.json
    assert sent["model"] == "gpt-4o-mini"  # retab-* names fall back to the configured model
    fmt = sent["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["properties"]["total_amount"]["type"] == [
        "number", "null"]
    assert "Invoice A-1" in sent["messages"][1]["content"]
    assert result.data == answer and result.likelihoods["total_amount"] == 1.0
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (1000, 200)
    assert result.usage.cost == pytest.approx((1000 * 0.15 + 200 * 0.60) / 1e6)


async def test_openai_unknown_model_has_no_cost_and_consensus_votes() -> None:
    replies = [chat_reply({"a": "x"}, model="local-llm"), chat_reply({"a": "y"}, model="local-llm"),
               chat_reply({"a": "x"}, model="local-llm")]
    with LoopbackServer(replies) as server:
        result = await _openai(server).extract(["t"], {"type": "object", "properties": {
            "a": {"type": "string"}}}, model="local-llm", n_consensus=3, context=CALL_CTX)
    assert len(server.requests) == 3
    assert result.data == {"a": "x"} and result.likelihoods == {"a": 0.6667}
    assert result.usage.cost is None and result.usage.model == "local-llm"
    assert step_usage(result.usage)["tokens"]["total_tokens"] == 450


@pytest.mark.parametrize(("reply", "error", "message"), [
    (Reply(429, {"error": "slow down"}, {"Retry-After": "7"}), QuotaError, "rate limiting"),
    (Reply(503, {"error": "down"}), TransientError, "HTTP 503"),
    (Reply(401, {"error": "bad key"}), PermanentError, "STEPWELL_OPENAI_API_KEY"),
    (Reply(404, {"error": "no model"}), PermanentError, "Check STEPWELL_OPENAI_BASE_URL"),
    (Reply(400, {"error": "bad request"}), PermanentError, "HTTP 400"),
    (chat_reply("Sure! The total is 12."), PermanentError, "did not return JSON"),
    (Reply(200, "<html>proxy</html>"), PermanentError, "did not return JSON"),
])
async def test_openai_errors_are_classified(reply: Reply, error: type, message: str) -> None:
    with LoopbackServer([reply]) as server:
        with pytest.raises(error, match=message) as info:
            await _openai(server).classify(["p"], CATEGORIES, model=None, first_n_pages=None,
                                           context=CALL_CTX)
    if error is QuotaError:
        assert info.value.retry_after == 7.0


async def test_openai_unreachable_and_slow_endpoints_are_transient() -> None:
    dead = OpenAIProvider(base_url="http://127.0.0.1:9/v1", timeout=2)
    with pytest.raises(TransientError, match="cannot reach"):
        await dead.extract(["t"], INVOICE_SCHEMA, model=None, n_consensus=1, context=CALL_CTX)
    with LoopbackServer([Reply(200, {}, delay=1.0)]) as server:
        slow = OpenAIProvider(base_url=server.url, timeout=0.2)
        with pytest.raises(TransientError, match="did not answer within 0.2s"):
            await slow.extract(["t"], INVOICE_SCHEMA, model=None, n_consensus=1, context=CALL_CTX)


async def test_openai_routing_calls() -> None:
    replies = [
        chat_reply({"reasoning": "has a total", "category": "invoice", "confidence": 0.8,
                    "scores": [{"category": "invoice", "score": 0.8},
                               {"category": "receipt", "score": 0.15}]}),
        chat_reply({"parts": [{"name": "b", "pages": [3, 9], "confidence": 0.7},
                              {"name": "a", "pages": [1, 2], "confidence": 0.9}]}),
        chat_reply({"partitions": [{"key": "K1", "pages": [1, 2]}], "unassigned_pages": []}),
        chat_reply({"values": [{"field": "name", "value": "Ada"}]}),
        chat_reply({"text": "RECEIPT total 3.00"}),
    ]
    with LoopbackServer(replies) as server:
        provider = _openai(server)
        classified = await provider.classify(["p"], CATEGORIES, model=None, first_n_pages=1,
                                             context=CALL_CTX)
        split = await provider.split(["1", "2", "3"], [Label(name="a"), Label(name="b")],
                                     model=None, allow_multiple=False, context=CALL_CTX)
        parts = await provider.partition(["1", "2", "3"], "id", model=None, allow_overlap=False,
                                         context=CALL_CTX)
        form = await provider.map_form_fields(pdf.form_fields(pdfs.form([("name", "text")])),
                                               {"n": "Ada"}, model=None, context=CALL_CTX)
        image = await provider.describe_image(b"\x89PNG", "image/png", model=None, context=CALL_CTX)
    assert (classified.category, classified.likelihood, classified.scores["other"]) == (
        "invoice", 0.8, 0.0)
    assert [(p.name, p.pages) for p in split.parts] == [("a", [1, 2]), ("b", [3])]
    assert parts.unassigned_pages == [3] and form.values == {"name": "Ada"}
    assert image.pages == ["RECEIPT total 3.00"]
    content = server.requests[4].json["messages"][1]["content"]
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_strict_schema_and_retry_after() -> None:
    strict, ok = strict_schema({"type": "object", "properties": {
        "a": {"type": "string", "enum": ["x"]}, "b": {"type": "object"}}})
    assert not ok and strict["required"] == ["a", "b"]
    assert strict["properties"]["a"] == {"type": ["string", "null"], "enum": ["x", None]}
    assert retry_after_seconds("2.5") == 2.5 and retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


# ----------------------------------------------------------------------------- through Engine


def _extract_workflow() -> Workflow:
    return (Workflow.builder("openai extract")
            .block("upload", "start_document")
            .block("read", "extract", config={"json_schema": INVOICE_SCHEMA})
            .edge("upload", "read", source_handle="output-file-0",
                  target_handle="input-file-document")
            .build())


def _retries(db: Path, run_id: str, step: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT status, detail FROM transitions WHERE run_id = ? AND "
                        "step_id = ? ORDER BY seq", (run_id, step)).fetchall()
    conn.close()
    return [json.loads(d) for s, d in rows if s == "queued" and d]


def test_engine_retries_quota_and_transient_model_errors(tmp_path: Path) -> None:
    answer = {"invoice_number": "INV-1", "total_amount": 10}
    replies = [Reply(429, {"error": "rate"}, {"Retry-After": "0.3"}), Reply(500, {"e": 1}),
               chat_reply(answer, prompt=50, completion=10)]
    document = tmp_path / "invoice.pdf"
    document.write_bytes(pdfs.invoice_colon())
    # Retry-After waits up to max_interval_s (engine.options.RetryPolicy.delay): room for
    # the 0.3 s it asks, while the 500's own backoff stays at 0.02 s
    policy = RetryPolicy(max_attempts=4, initial_interval_s=0.01, max_interval_s=1.0, jitter=0)
    with LoopbackServer(replies) as server:
        provider = _openai(server)
        with Engine(tmp_path / "run.db", services={MODEL_PROVIDER_SERVICE: provider},
                    retry=policy) as engine:
            result = engine.run(_extract_workflow(), {"upload": document})
            step = engine.client.workflows.steps.get("read", run_id=result.run_id)
    assert result.ok, result.error
    assert len(server.requests) == 3
    assert server.requests[1].at - server.requests[0].at >= 0.3  # Retry-After honoured
    assert step.retry_count == 2 and step.model == "gpt-4o-mini"
    assert step.tokens == {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
    assert step.handle_outputs["output-json-0"].data["invoice_number"] == "INV-1"
    retries = _retries(tmp_path / "run.db", result.run_id, "read")
    assert [r["error"]["category"] for r in retries] == [ErrorCategory.QUOTA,
                                                         ErrorCategory.TRANSIENT]


def test_engine_does_not_retry_a_bad_request(tmp_path: Path) -> None:
    document = tmp_path / "invoice.pdf"
    document.write_bytes(pdfs.invoice_colon())
    with LoopbackServer([Reply(400, {"error": "bad schema"})]) as server:
        with Engine(tmp_path / "run.db", services={MODEL_PROVIDER_SERVICE: _openai(server)},
                    retry=RetryPolicy(initial_interval_s=0.01, jitter=0)) as engine:
            result = engine.run(_extract_workflow(), {"upload": document})
            step = engine.client.workflows.steps.get("read", run_id=result.run_id)
    assert result.status == "error" and result.failing_step_id == "read"
    assert len(server.requests) == 1 and step.retry_count == 0
    assert step.lifecycle.category == "permanent" and step.lifecycle.stage == "execution"
    assert "extract block 'read'" in step.lifecycle.message


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed on exit: nothing listens there


def _branches_workflow() -> Workflow:
    """extract -> reshape downstream, and an independent parse branch."""
    return (Workflow.builder("model failure")
            .block("upload", "start_document")
            .block("read", "extract", config={"json_schema": INVOICE_SCHEMA})
            .block("pick", "reshape", config={"mappings": {"number": "invoice_number"}})
            .block("pages", "parse")
            .edge("upload", "read", source_handle="output-file-0",
                  target_handle="input-file-document")
            .edge("read", "pick", source_handle="output-json-0", target_handle="input-json-0")
            .edge("upload", "pages", source_handle="output-file-0",
                  target_handle="input-file-0")
            .build())


def _run_with(tmp_path: Path, provider: OpenAIProvider) -> tuple[Any, dict[str, Any]]:
    document = tmp_path / "invoice.pdf"
    document.write_bytes(pdfs.invoice_colon())
    policy = RetryPolicy(max_attempts=2, initial_interval_s=0.01, max_interval_s=0.02, jitter=0)
    with Engine(tmp_path / "run.db", services={MODEL_PROVIDER_SERVICE: provider},
                retry=policy) as engine:
        result = engine.run(_branches_workflow(), {"upload": document})
        steps = {s.step_id: s for s in engine.client.workflows.steps.list(result.run_id).data}
    return result, steps


def _rest_of_run_per_spec(result: Any, steps: dict[str, Any]) -> None:
    assert result.status == "error" and result.failing_step_id == "read"
    assert steps["pick"].lifecycle.status == "skipped"
    assert steps["pick"].lifecycle.reason == "upstream_error: read"
    assert steps["pages"].lifecycle.status == "completed"  # the independent branch ran


def test_a_model_endpoint_that_is_down_fails_the_step_after_retries(tmp_path: Path) -> None:
    dead = OpenAIProvider(base_url=f"http://127.0.0.1:{_free_port()}/v1", timeout=2)
    result, steps = _run_with(tmp_path, dead)
    read = steps["read"]
    assert (read.lifecycle.status, read.lifecycle.stage, read.lifecycle.category) == (
        "error", "execution", "transient")
    assert read.lifecycle.details.error_code == "MODEL_UNREACHABLE"
    assert read.retry_count == 1  # two attempts, as the policy allows
    assert "extract block 'read': cannot reach the model endpoint" in read.lifecycle.message
    assert "Check STEPWELL_OPENAI_BASE_URL" in read.lifecycle.message
    _rest_of_run_per_spec(result, steps)


@pytest.mark.parametrize(("reply", "fix"), [
    (chat_reply("Sure! The total is 12."), "supports structured output"),
    (Reply(200, "<html>proxy error</html>", {"Content-Type": "text/html"}),
     "Point STEPWELL_OPENAI_BASE_URL at an OpenAI-compatible API root"),
])
def test_a_model_that_answers_non_json_fails_at_once(tmp_path: Path, reply: Reply,
                                                     fix: str) -> None:
    with LoopbackServer([reply, reply]) as server:
        result, steps = _run_with(tmp_path, _openai(server))
        calls = len(server.requests)
    read = steps["read"]
    assert (read.lifecycle.status, read.lifecycle.stage, read.lifecycle.category) == (
        "error", "execution", "permanent")
    assert read.lifecycle.details.error_code == "MODEL_NOT_JSON"
    assert calls == 1 and read.retry_count == 0
    assert "did not return JSON" in read.lifecycle.message and fix in read.lifecycle.message
    _rest_of_run_per_spec(result, steps)
