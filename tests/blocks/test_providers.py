"""Model providers: offline heuristics, consensus voting, scripted double, openai client."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from blocks import pdf
from blocks.providers import (
    MODEL_PROVIDER_SERVICE,
    CallContext,
    Label,
    Usage,
    json_as_text,
    provider_for,
    resolve_provider,
    step_usage,
)
from blocks.providers import coerce as co
from blocks.providers.consensus import min_likelihood, vote, vote_label, vote_pages
from blocks.providers.offline import OfflineProvider
from blocks.providers.offline_extract import extract_offline
from blocks.providers.openai import OpenAIProvider, retry_after_seconds
from blocks.providers.openai_prompts import strict_schema
from blocks.providers.scripted import ScriptedProvider
from engine import Engine, Workflow
from engine.contracts.errors import ErrorCategory, PermanentError, QuotaError, TransientError
from engine.runner import RetryPolicy
from tests.blocks import pdfs
from tests.blocks.conftest import MakeCtx
from tests.blocks.loopback import LoopbackServer, Reply, chat_reply

pytestmark = pytest.mark.anyio
CTX = CallContext(run_id="run_1", step_id="read", block_id="read", block_type="extract")
INVOICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string"},
        "issue_date": {"type": "string", "format": "date"},
        "supplier": {"type": "string", "description": "the vendor or seller"},
        "total_amount": {"type": "number"},
        "currency": {"type": "string"},
    },
    "required": ["invoice_number", "total_amount"],
}


# ----------------------------------------------------------------------------- coercion


@pytest.mark.parametrize(("text", "value"), [
    ("€1,234.56", 1234.56), ("1.234,56", 1234.56), ("$ 12", 12), ("EUR 2,125.00", 2125.0),
    ("12,50", 12.5), ("1,234", 1234), ("1.234.567", 1234567), ("(12.00)", -12.0),
    ("-5", -5), ("1'234.50", 1234.5), ("INV-2026", None), ("no number", None),
])
def test_parse_number(text: str, value: float | None) -> None:
    assert co.parse_number(text) == value


@pytest.mark.parametrize(("text", "iso"), [
    ("2026-03-12", "2026-03-12"), ("12/03/2026", "2026-03-12"), ("March 12, 2026", "2026-03-12"),
    ("12 Mar 2026", "2026-03-12"), ("12-Mar-26", "2026-03-12"), ("03/25/2026", "2026-03-25"),
    ("12.03.2026", "2026-03-12"), ("Mar. 3rd, 2026", "2026-03-03"), ("31/02/2026", None),
])
def test_parse_date(text: str, iso: str | None) -> None:
    assert co.parse_date(text) == iso


def test_coerce_by_schema() -> None:
    assert co.coerce("yes", {"type": "boolean"}) is True
    assert co.coerce("☐", {"type": "boolean"}) is False
    assert co.coerce("10 pcs", {"type": "integer"}) == 10
    assert co.coerce("10.5", {"type": "integer"}) is None
    assert co.coerce("paid in full", {"type": "string", "enum": ["open", "paid"]}) == "paid"
    assert co.coerce("on 2026-01-02 at 10:30", {"type": "string", "format": "date-time"}) == (
        "2026-01-02T10:30:00")
    assert co.coerce("  ACME  ", {"type": ["string", "null"]}) == "ACME"


# ----------------------------------------------------------------------------- offline extract


def _text(document: bytes) -> str:
    return "\n\n".join(pdf.page_texts(document))


def test_offline_extracts_label_colon_value_lines() -> None:
    data, likelihoods = extract_offline(_text(pdfs.invoice_colon()), INVOICE_SCHEMA)
    assert data == {"invoice_number": "INV-2026-0042", "issue_date": "2026-03-12",
                    "supplier": "ACME Supplies GmbH", "total_amount": 2125.0, "currency": "EUR"}
    assert likelihoods == dict.fromkeys(data, 1.0)


def test_offline_extracts_labels_above_values() -> None:
    data, likelihoods = extract_offline(_text(pdfs.invoice_above()), INVOICE_SCHEMA)
    assert data == {"invoice_number": "A-1007", "issue_date": "2026-03-12",
                    "supplier": "Initech LLC", "total_amount": 1234.56, "currency": "USD"}
    assert all(0 < v < 1 for v in likelihoods.values())  # synonyms and layout: not exact


def test_offline_extracts_a_table_row_with_european_formats() -> None:
    data, _ = extract_offline(_text(pdfs.invoice_table()), INVOICE_SCHEMA)
    assert data == {"invoice_number": "2026/77", "issue_date": "2026-01-05",
                    "supplier": "Müller Werkzeuge AG", "total_amount": 1234.56,
                    "currency": "EUR"}


def test_offline_missing_fields_are_null_with_likelihood_zero() -> None:
    schema = {"type": "object", "properties": {"po_number": {"type": "string"},
                                               "paid": {"type": "boolean"}}}
    data, likelihoods = extract_offline("Invoice Number: 1\nPaid: yes", schema)
    assert data == {"po_number": None, "paid": True}
    assert likelihoods == {"po_number": 0.0, "paid": 1.0}


def test_offline_nested_objects_arrays_titles_and_descriptions() -> None:
    text = ("Ref. code: Q-7\nTags: urgent, export\n\nBill to\nGlobex Corp\n12 Main Street\n"
            "Springfield\n\nItem          Qty      Price\nBolts         10       1.50\n"
            "Nuts          200      0.05\n")
    schema = {"type": "object", "properties": {
        "quote": {"type": "string", "title": "Ref code"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "customer": {"type": "object", "properties": {"name": {"type": "string"},
                                                      "address": {"type": "string"}}},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}},
    }, "$defs": {"line": {"type": "object", "properties": {
        "item": {"type": "string"}, "quantity": {"type": "integer"},
        "unit_price": {"type": "number", "description": "labelled Price"}}}}}
    data, likelihoods = extract_offline(text, schema)
    assert data["quote"] == "Q-7" and likelihoods["quote"] == 1.0
    assert data["tags"] == ["urgent", "export"]
    assert data["customer"] == {"name": "Globex Corp", "address": "12 Main Street, Springfield"}
    assert data["lines"] == [{"item": "Bolts", "quantity": 10, "unit_price": 1.5},
                             {"item": "Nuts", "quantity": 200, "unit_price": 0.05}]
    assert len(likelihoods["lines"]) == 2


async def test_offline_consensus_agrees_with_itself() -> None:
    provider = OfflineProvider()
    result = await provider.extract([_text(pdfs.invoice_above())], INVOICE_SCHEMA, model=None,
                                    n_consensus=3, context=CTX)
    assert len(result.choices) == 3 and result.data["invoice_number"] == "A-1007"
    assert set(result.likelihoods.values()) == {1.0}
    missing = await provider.extract(["nothing here"], INVOICE_SCHEMA, model=None,
                                     n_consensus=3, context=CTX)
    assert set(missing.likelihoods.values()) == {0.0}
    assert result.usage.model == "offline" and result.usage.total_tokens == 0


async def test_offline_json_context_is_searched_after_the_document() -> None:
    result = await OfflineProvider().extract(["Invoice Number: 9"], INVOICE_SCHEMA, model=None,
                                             n_consensus=1, context=CTX,
                                             extra={"meta": {"currency": "CHF"}})
    assert result.data["invoice_number"] == "9" and result.data["currency"] == "CHF"
    assert json_as_text({"a_b": {"c": [1, 2]}, "ok": True}) == "a b c: 1, 2\nok: yes"


# ----------------------------------------------------------------------------- offline routing

CATEGORIES = [Label(name="invoice", description="a bill with invoice number and total due"),
              Label(name="receipt", description="proof of payment from a shop or till"),
              Label(name="other", description="anything else")]


@pytest.mark.parametrize(("document", "category"), [
    (pdfs.invoice_colon(), "invoice"), (pdfs.invoice_above(), "invoice"),
    (pdfs.invoice_table(), "invoice"), (pdfs.receipt(), "receipt"),
    (pdfs.pages(1, "lorem ipsum"), "other"),
])
async def test_offline_classify(document: bytes, category: str) -> None:
    result = await OfflineProvider().classify(pdf.page_texts(document), CATEGORIES, model=None,
                                              first_n_pages=None, context=CTX)
    assert result.category == category
    assert set(result.scores) == {"invoice", "receipt", "other"}
    assert result.reasoning


async def test_offline_classify_ties_go_to_the_first_category() -> None:
    labels = [Label(name="alpha"), Label(name="beta")]
    result = await OfflineProvider().classify(["alpha beta"], labels, model=None,
                                              first_n_pages=None, context=CTX)
    assert result.category == "alpha" and result.scores == {"alpha": 0.5, "beta": 0.5}


async def test_offline_split_groups_consecutive_pages() -> None:
    subdocuments = [Label(name="invoice", description="invoice number, total due"),
                    Label(name="bank statement", description="balance and transactions"),
                    Label(name="contract", description="agreement between parties")]
    result = await OfflineProvider().split(pdf.page_texts(pdfs.three_documents()), subdocuments,
                                           model=None, allow_multiple=False, context=CTX)
    assert [(p.name, p.pages) for p in result.parts] == [
        ("invoice", [1, 2]), ("bank statement", [3, 4]), ("contract", [5, 6])]


async def test_offline_partition_by_key() -> None:
    result = await OfflineProvider().partition(
        ["cover letter", *pdf.page_texts(pdfs.invoices_by_number())], "invoice number",
        model=None, allow_overlap=False, context=CTX)
    assert [(p.key, p.pages) for p in result.partitions] == [
        ("A-100", [2, 3]), ("B-200", [4]), ("C-300", [5, 6])]
    assert result.unassigned_pages == [1]


async def test_offline_maps_form_fields() -> None:
    fields = pdf.form_fields(pdfs.form([("Full Name", "text"), ("email_address", "text"),
                                        ("agree", "checkbox"), ("unrelated", "text")]))
    data = {"applicant": {"full_name": "Ada Lovelace"}, "email": "ada@example.com",
            "agree": "yes"}
    mapping = await OfflineProvider().map_form_fields(fields, data, model=None, context=CTX)
    assert mapping.values == {"Full Name": "Ada Lovelace", "email_address": "ada@example.com",
                              "agree": "Yes"}


# ----------------------------------------------------------------------------- consensus


def test_vote_is_a_majority_per_leaf() -> None:
    choices = [{"a": 1, "b": {"c": "x"}, "items": [1, 2]},
               {"a": 1.0, "b": {"c": "y"}, "items": [1, 2]},
               {"a": 2, "b": {"c": "x"}, "items": [1, 3, 4]}]
    data, likelihoods = vote(choices)
    assert data == {"a": 1, "b": {"c": "x"}, "items": [1, 2]}
    assert likelihoods == {"a": 0.6667, "b": {"c": 0.6667}, "items": [1.0, 0.6667]}
    assert min_likelihood(likelihoods) == 0.6667
    assert vote([{"a": "x"}, {"a": "y"}])[0] == {"a": "x"}  # ties: earliest answer
    assert vote_label(["b", "a", "b"]) == ("b", 0.6667)
    assert vote_pages([{1: "a", 2: "a"}, {1: "a", 2: "b"}, {1: "a"}], 2) == (
        {1: "a", 2: "a"}, {1: 1.0, 2: 0.3333})
    with pytest.raises(ValueError):
        vote([])


# ----------------------------------------------------------------------------- scripted


async def test_scripted_answers_per_block_step_and_call() -> None:
    boom = TransientError("flaky")
    provider = ScriptedProvider({"read": [{"x": 1}, {"x": 2}], "each_iter_1_read": boom,
                                 "votes": [{"x": 1}, {"x": 1}, {"x": 3}]})
    first = await provider.extract([], {}, model=None, n_consensus=1, context=CTX)
    second = await provider.extract([], {}, model=None, n_consensus=1, context=CTX)
    assert (first.data, second.data, first.likelihoods) == ({"x": 1}, {"x": 2}, {"x": 1.0})
    with pytest.raises(PermanentError, match="ran out of answers"):
        await provider.extract([], {}, model=None, n_consensus=1, context=CTX)
    with pytest.raises(TransientError):
        await provider.extract([], {}, model=None, n_consensus=1, context=CallContext(
            step_id="each_iter_1_read", block_id="read"))
    voted = await provider.extract([], {}, model=None, n_consensus=3,
                                   context=CallContext(step_id="votes", block_id="votes"))
    assert voted.data == {"x": 1} and voted.likelihoods == {"x": 0.6667}
    with pytest.raises(PermanentError, match="no answer for step 'nope'"):
        await provider.classify([], [], model=None, first_n_pages=None,
                                context=CallContext(step_id="nope", block_id="nope"))
    assert [c.method for c in provider.calls][:2] == ["extract", "extract"]


# ----------------------------------------------------------------------------- resolution


def test_resolve_and_choose_providers(make_ctx: MakeCtx) -> None:
    assert resolve_provider(None, {}).name == "offline"
    openai = resolve_provider(None, {"STEPWELL_MODEL_PROVIDER": "openai",
                                     "OPENAI_API_KEY": "k", "STEPWELL_OPENAI_MODEL": "m1"})
    assert isinstance(openai, OpenAIProvider) and (openai.api_key, openai.model) == ("k", "m1")
    with pytest.raises(PermanentError, match="Known providers: offline, openai"):
        resolve_provider("claude", {})
    scripted = ScriptedProvider({})
    ctx = make_ctx("extract", services={MODEL_PROVIDER_SERVICE: scripted})
    assert provider_for(ctx, "retab-small") == (scripted, "retab-small")
    provider, model = provider_for(make_ctx("extract"), "openai:gpt-4.1")
    assert provider.name == "openai" and model == "gpt-4.1"
    assert provider_for(make_ctx("extract"), "llama3:8b")[0].name == "offline"
    with pytest.raises(PermanentError, match="extract block 'blk': unknown model provider"):
        provider_for(make_ctx("extract", env={"STEPWELL_MODEL_PROVIDER": "nope"}), None)


def test_usage_becomes_step_fields() -> None:
    usage = Usage(model="m", prompt_tokens=10, completion_tokens=5, cost=0.25) + Usage(
        prompt_tokens=1, completion_tokens=1, cost=None)
    assert step_usage(usage) == {"model": "m", "tokens": {
        "prompt_tokens": 11, "completion_tokens": 6, "total_tokens": 17}, "cost": None}


# ----------------------------------------------------------------------------- openai


def _openai(server: LoopbackServer, **kwargs: Any) -> OpenAIProvider:
    return OpenAIProvider(base_url=server.url + "/v1", api_key="sk-test", timeout=5, **kwargs)


async def test_openai_sends_the_schema_and_records_usage() -> None:
    answer = {"invoice_number": "A-1", "issue_date": "2026-01-02", "supplier": "X",
              "total_amount": 12.5, "currency": "EUR"}
    with LoopbackServer([chat_reply(answer, prompt=1000, completion=200)]) as server:
        result = await _openai(server).extract(["Invoice A-1"], INVOICE_SCHEMA,
                                               model="retab-small", n_consensus=1, context=CTX)
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
            "a": {"type": "string"}}}, model="local-llm", n_consensus=3, context=CTX)
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
                                           context=CTX)
    if error is QuotaError:
        assert info.value.retry_after == 7.0


async def test_openai_unreachable_and_slow_endpoints_are_transient() -> None:
    dead = OpenAIProvider(base_url="http://127.0.0.1:9/v1", timeout=2)
    with pytest.raises(TransientError, match="cannot reach"):
        await dead.extract(["t"], INVOICE_SCHEMA, model=None, n_consensus=1, context=CTX)
    with LoopbackServer([Reply(200, {}, delay=1.0)]) as server:
        slow = OpenAIProvider(base_url=server.url, timeout=0.2)
        with pytest.raises(TransientError, match="did not answer within 0.2s"):
            await slow.extract(["t"], INVOICE_SCHEMA, model=None, n_consensus=1, context=CTX)


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
                                             context=CTX)
        split = await provider.split(["1", "2", "3"], [Label(name="a"), Label(name="b")],
                                     model=None, allow_multiple=False, context=CTX)
        parts = await provider.partition(["1", "2", "3"], "id", model=None, allow_overlap=False,
                                         context=CTX)
        form = await provider.map_form_fields(pdf.form_fields(pdfs.form([("name", "text")])),
                                               {"n": "Ada"}, model=None, context=CTX)
        image = await provider.describe_image(b"\x89PNG", "image/png", model=None, context=CTX)
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
    policy = RetryPolicy(max_attempts=4, initial_interval_s=0.01, max_interval_s=0.05, jitter=0)
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
