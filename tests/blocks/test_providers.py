"""Model providers: offline heuristics, consensus voting, scripted double, resolution.

The OpenAI-compatible client is tested in tests/blocks/test_openai.py."""

from __future__ import annotations

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
from blocks.providers.openai import OpenAIProvider
from blocks.providers.scripted import ScriptedProvider
from engine.contracts.errors import PermanentError, TransientError
from tests.blocks import pdfs
from tests.blocks.conftest import CALL_CTX, CATEGORIES, INVOICE_SCHEMA, MakeCtx

pytestmark = pytest.mark.anyio


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
                                    n_consensus=3, context=CALL_CTX)
    assert len(result.choices) == 3 and result.data["invoice_number"] == "A-1007"
    assert set(result.likelihoods.values()) == {1.0}
    missing = await provider.extract(["nothing here"], INVOICE_SCHEMA, model=None,
                                     n_consensus=3, context=CALL_CTX)
    assert set(missing.likelihoods.values()) == {0.0}
    assert result.usage.model == "offline" and result.usage.total_tokens == 0


async def test_offline_json_context_is_searched_after_the_document() -> None:
    result = await OfflineProvider().extract(["Invoice Number: 9"], INVOICE_SCHEMA, model=None,
                                             n_consensus=1, context=CALL_CTX,
                                             extra={"meta": {"currency": "CHF"}})
    assert result.data["invoice_number"] == "9" and result.data["currency"] == "CHF"
    assert json_as_text({"a_b": {"c": [1, 2]}, "ok": True}) == "a b c: 1, 2\nok: yes"


# ----------------------------------------------------------------------------- offline routing


@pytest.mark.parametrize(("document", "category"), [
    (pdfs.invoice_colon(), "invoice"), (pdfs.invoice_above(), "invoice"),
    (pdfs.invoice_table(), "invoice"), (pdfs.receipt(), "receipt"),
    (pdfs.pages(1, "lorem ipsum"), "other"),
])
async def test_offline_classify(document: bytes, category: str) -> None:
    result = await OfflineProvider().classify(pdf.page_texts(document), CATEGORIES, model=None,
                                              first_n_pages=None, context=CALL_CTX)
    assert result.category == category
    assert set(result.scores) == {"invoice", "receipt", "other"}
    assert result.reasoning


async def test_offline_classify_ties_go_to_the_first_category() -> None:
    labels = [Label(name="alpha"), Label(name="beta")]
    result = await OfflineProvider().classify(["alpha beta"], labels, model=None,
                                              first_n_pages=None, context=CALL_CTX)
    assert result.category == "alpha" and result.scores == {"alpha": 0.5, "beta": 0.5}


async def test_offline_split_groups_consecutive_pages() -> None:
    subdocuments = [Label(name="invoice", description="invoice number, total due"),
                    Label(name="bank statement", description="balance and transactions"),
                    Label(name="contract", description="agreement between parties")]
    result = await OfflineProvider().split(pdf.page_texts(pdfs.three_documents()), subdocuments,
                                           model=None, allow_multiple=False, context=CALL_CTX)
    assert [(p.name, p.pages) for p in result.parts] == [
        ("invoice", [1, 2]), ("bank statement", [3, 4]), ("contract", [5, 6])]


async def test_offline_partition_by_key() -> None:
    result = await OfflineProvider().partition(
        ["cover letter", *pdf.page_texts(pdfs.invoices_by_number())], "invoice number",
        model=None, allow_overlap=False, context=CALL_CTX)
    assert [(p.key, p.pages) for p in result.partitions] == [
        ("A-100", [2, 3]), ("B-200", [4]), ("C-300", [5, 6])]
    assert result.unassigned_pages == [1]


async def test_offline_maps_form_fields() -> None:
    fields = pdf.form_fields(pdfs.form([("Full Name", "text"), ("email_address", "text"),
                                        ("agree", "checkbox"), ("unrelated", "text")]))
    data = {"applicant": {"full_name": "Ada Lovelace"}, "email": "ada@example.com",
            "agree": "yes"}
    mapping = await OfflineProvider().map_form_fields(fields, data, model=None, context=CALL_CTX)
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
    first = await provider.extract([], {}, model=None, n_consensus=1, context=CALL_CTX)
    second = await provider.extract([], {}, model=None, n_consensus=1, context=CALL_CTX)
    assert (first.data, second.data, first.likelihoods) == ({"x": 1}, {"x": 2}, {"x": 1.0})
    with pytest.raises(PermanentError, match="ran out of answers"):
        await provider.extract([], {}, model=None, n_consensus=1, context=CALL_CTX)
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
