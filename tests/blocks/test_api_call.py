"""api_call against a real loopback server: body, templating, errors, retries, redaction."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from blocks.api_call import ApiCall, idempotency_key, parse_body, request_body
from engine import Engine, Workflow
from engine.contracts.errors import ErrorStage, PermanentError, QuotaError, TransientError
from engine.definition import BlockDef
from engine.runner import RetryPolicy
from tests.blocks.conftest import MakeCtx
from tests.blocks.harness import parse, run_block
from tests.blocks.loopback import LoopbackServer, Reply

pytestmark = pytest.mark.anyio
SECRET = "s3cr3t-token-4f9a1c"


def _codes(raw: dict[str, Any]) -> set[str]:
    impl = ApiCall()
    block = BlockDef(id="call", type="api_call", config=raw)
    return {d.code for d in impl.check(block, parse(impl, raw), "spec.blocks.call")}


def test_config_and_checks() -> None:
    impl = ApiCall()
    cfg = parse(impl, {"url": "https://x.test", "method": "put", "timeout_seconds": 0,
                       "output_schema": {"type": "object"}})
    assert (cfg.method, cfg.timeout_seconds) == ("PUT", 180.0)
    assert impl.output_schema(cfg, "output-json-0") == {"type": "object"}
    assert _codes({"url": "${BASE}/x"}) == set()
    assert _codes({"url": "ftp://x"}) == {"INVALID_URL"}
    assert _codes({"url": "https://x", "request_schema": {"type": 5}}) == {"INVALID_JSON_SCHEMA"}
    with pytest.raises(ValueError):
        parse(impl, {"url": "https://x", "method": "FETCH"})
    with pytest.raises(ValueError):
        parse(impl, {"url": "https://x", "body": "{}"})


def test_body_settings_on_a_request_without_body_are_ignored() -> None:
    impl = ApiCall()
    raw = {"url": "https://x.test", "method": "get", "field_mappings": {"id": "invoice_id"},
           "request_schema": {"type": "object", "properties": {"invoice_id": {}}}}
    found = impl.check(BlockDef(id="call", type="api_call", config=raw), parse(impl, raw),
                       "spec.blocks.call")
    assert [(d.code, d.severity, d.path) for d in found] == [
        ("IGNORED_BODY_SETTING", "warning", "spec.blocks.call.config.field_mappings"),
        ("IGNORED_BODY_SETTING", "warning", "spec.blocks.call.config.request_schema")]
    assert found[0].message == ("api_call block 'call': field_mappings shapes the request "
                                "body, and a GET request is sent without one")
    assert found[0].fix == ("use method: POST, PUT or PATCH to send the input as the body, "
                            "or remove field_mappings")
    for method in ("POST", "PUT", "PATCH"):
        assert _codes({**raw, "method": method}) == set()
    assert _codes({"url": "https://x.test", "method": "DELETE"}) == set()


async def test_a_get_sends_no_body_whatever_the_mappings(make_ctx: MakeCtx) -> None:
    with LoopbackServer([Reply(200, b"{}")]) as server:
        cfg = {"url": server.url, "method": "GET", "field_mappings": {"id": "invoice_id"}}
        result = await run_block(ApiCall(), make_ctx("api_call"), cfg,
                                 {"input-json-0": {"id": 7}})
    [attempt] = result.artifact["attempts"]
    assert attempt["request_method"] == "GET" and attempt["request_body"] is None
    [seen] = server.requests
    assert (seen.method, seen.body) == ("GET", b"")


def test_body_mapping_and_filtering(make_ctx: MakeCtx) -> None:
    ctx = make_ctx("api_call", "call")
    cfg = parse(ApiCall(), {"url": "https://x", "field_mappings": {"b": "a", "c": "renamed"},
                            "request_schema": {"properties": {"a": {}, "renamed": {}, "d": {}}}})
    assert request_body(ctx, cfg, {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}) == {
        "a": 2, "renamed": 3, "d": 4}
    plain = parse(ApiCall(), {"url": "https://x"})
    assert request_body(ctx, plain, [1, 2]) == [1, 2]
    with pytest.raises(PermanentError, match="need a JSON object"):
        request_body(ctx, cfg, [1])
    assert parse_body("") is None and parse_body("ok") == "ok" and parse_body("[1]") == [1]
    expected = hashlib.sha256(b"run_1:call:2").hexdigest()[:32]
    assert idempotency_key("run_1", "call", 2) == expected


async def _call(make_ctx: MakeCtx, config: dict[str, Any], data: Any = None,
                **ctx: Any) -> Any:
    inputs = {} if data is None else {"input-json-0": data}
    return await run_block(ApiCall(), make_ctx("api_call", "call", **ctx), config, inputs)


async def test_request_templating_and_output(make_ctx: MakeCtx) -> None:
    with LoopbackServer([Reply(200, {"id": 7, "status": "created"})]) as server:
        cfg = {"url": "${BASE}/tickets?token=${TOKEN}&q=${UNKNOWN}",
               "headers": {"Authorization": "Bearer ${TOKEN}", "X-Trace": "abc",
                           "Content-Type": "text/plain"},
               "output_schema": {"type": "object", "required": ["id"]}}
        result = await _call(make_ctx, cfg, {"title": "hi"},
                             env={"BASE": server.url, "TOKEN": SECRET})
    seen = server.requests[0]
    assert seen.method == "POST" and seen.path == f"/tickets?token={SECRET}&q=${{UNKNOWN}}"
    assert seen.headers["Authorization"] == f"Bearer {SECRET}"
    assert seen.headers["Content-Type"] == "application/json" and seen.json == {"title": "hi"}
    assert seen.headers["Idempotency-Key"] == idempotency_key("run_1", "call", 0)
    assert result.outputs["output-json-0"].data == {"id": 7, "status": "created"}
    attempt = result.artifact["attempts"][0]
    assert result.artifact["operation"] == "api_call_invocation"
    assert attempt["request_url"] == cfg["url"]  # the template: no secret in the record
    assert attempt["request_headers"]["Authorization"] == "[REDACTED]"
    assert attempt["request_headers"]["X-Trace"] == "abc"
    assert attempt["response_status"] == 200 and attempt["attempt_number"] == 0
    assert attempt["duration_ms"] >= 0 and attempt["request_body"] == {"title": "hi"}


async def test_get_sends_no_body(make_ctx: MakeCtx) -> None:
    with LoopbackServer([Reply(200, "")]) as server:
        result = await _call(make_ctx, {"url": server.url + "/ping", "method": "GET"}, {"a": 1})
    assert server.requests[0].body == b"" and result.outputs["output-json-0"].data is None


@pytest.mark.parametrize(("reply", "error", "code"), [
    (Reply(429, {"e": 1}, {"Retry-After": "3"}), QuotaError, "HTTP_429"),
    (Reply(502, {"e": 1}), TransientError, "HTTP_502"),
    (Reply(408, {"e": 1}), TransientError, "HTTP_408"),
    (Reply(404, {"e": 1}), PermanentError, "HTTP_404"),
    (Reply(200, {"id": "x"}), PermanentError, "OUTPUT_SCHEMA_MISMATCH"),
])
async def test_status_classification(make_ctx: MakeCtx, reply: Reply, error: type,
                                     code: str) -> None:
    with LoopbackServer([reply]) as server:
        with pytest.raises(error) as info:
            await _call(make_ctx, {"url": server.url, "output_schema": {
                "type": "object", "properties": {"id": {"type": "integer"}}}}, {})
    assert info.value.code == code and info.value.stage is ErrorStage.EXECUTION
    assert "api_call block 'call'" in info.value.message
    assert len(info.value.context["attempts"]) == 1
    if error is QuotaError:
        assert info.value.retry_after == 3.0


async def test_network_failures_are_transient(make_ctx: MakeCtx) -> None:
    with pytest.raises(TransientError, match="cannot reach"):
        await _call(make_ctx, {"url": "http://127.0.0.1:9/x"}, {})
    with LoopbackServer([Reply(200, {}, delay=1.0)]) as server:
        with pytest.raises(TransientError, match="timed out after 0.2s"):
            await _call(make_ctx, {"url": server.url, "timeout_seconds": 0.2}, {})


async def test_missing_secret(make_ctx: MakeCtx) -> None:
    cfg = {"url": "https://x.test", "mounts": {"secrets": [{"name": "t", "env": "TOK"}]}}
    with pytest.raises(PermanentError, match="'TOK', which is not set"):
        await _call(make_ctx, cfg, {})


# ----------------------------------------------------------------------------- engine


def _workflow(url: str) -> Workflow:
    return (Workflow.builder("call")
            .block("order", "start_json")
            .block("call", "api_call", config={
                "url": url, "headers": {"Authorization": "Bearer ${TOKEN}",
                                        "X-Api-Key": "literal-key-77"},
                "output_schema": {"type": "object"}})
            .edge("order", "call", source_handle="output-json-0", target_handle="input-json-0")
            .build())


def _bytes_on_disk(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()
                    and p.suffix != ".pdf")


def test_retries_are_recorded_and_secrets_redacted(tmp_path: Path) -> None:
    replies = [Reply(503, {"e": "busy"}), Reply(429, {"e": "slow"}, {"Retry-After": "0.2"}),
               Reply(200, {"booked": True})]
    # Retry-After is honoured up to the policy's max_interval_s.
    policy = RetryPolicy(max_attempts=4, initial_interval_s=0.01, max_interval_s=0.5, jitter=0)
    with LoopbackServer(replies) as server:
        with Engine(tmp_path / "run.db", retry=policy, env={"TOKEN": SECRET}) as engine:
            result = engine.run(_workflow(server.url + "/book"), {"order": {"n": 1}})
            step = engine.client.workflows.steps.get("call", run_id=result.run_id)
            record = engine.client.api.get_artifact(step.artifact.id)
    assert result.ok, result.error
    assert step.retry_count == 2 and step.handle_outputs["output-json-0"].data == {"booked": True}
    attempts = record["attempts"]
    assert [a["attempt_number"] for a in attempts] == [0, 1, 2]
    assert [a["response_status"] for a in attempts] == [503, 429, 200]
    assert "HTTP 503" in attempts[0]["error"] and "error" not in attempts[2]
    keys = [r.headers["Idempotency-Key"] for r in server.requests]
    assert len(set(keys)) == 3 and keys[2] == idempotency_key(result.run_id, "call", 2)
    assert server.requests[2].at - server.requests[1].at >= 0.2
    for attempt in attempts:
        assert attempt["request_headers"] == {"Authorization": "[REDACTED]",
                                              "X-Api-Key": "[REDACTED]"}
    assert all(r.headers["Authorization"] == f"Bearer {SECRET}" for r in server.requests)
    on_disk = _bytes_on_disk(tmp_path)
    assert SECRET.encode() not in on_disk and b"[REDACTED]" in on_disk
    # a key written literally in the workflow is part of the stored definition; only the
    # recorded request hides it
    assert "literal-key-77" not in str(record)


def test_a_bad_request_is_not_retried(tmp_path: Path) -> None:
    with LoopbackServer([Reply(400, {"error": f"bad token {SECRET}"})]) as server:
        with Engine(tmp_path / "run.db", env={"TOKEN": SECRET},
                    retry=RetryPolicy(initial_interval_s=0.01, jitter=0)) as engine:
            result = engine.run(_workflow(server.url), {"order": {"n": 1}})
            step = engine.client.workflows.steps.get("call", run_id=result.run_id)
    assert result.status == "error" and len(server.requests) == 1
    assert (step.lifecycle.category, step.lifecycle.details.error_code) == ("permanent",
                                                                            "HTTP_400")
    assert SECRET.encode() not in _bytes_on_disk(tmp_path)  # echoed secrets are scrubbed
