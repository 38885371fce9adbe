"""The review form's round trip: untouched data approves the proposal as it is."""

from __future__ import annotations

import html
import re
from typing import Any

from fastapi.testclient import TestClient

from bench.ui_seed import INVOICE_PDF, review_yaml
from engine.definition import Workflow
from engine.server import app_state
from engine.server.ui.review_view import FormField, form_fields, read_correction
from tests.ui.conftest import csrf_of, wait_status
from tests.ui.workflows import Seeded

HIL_YAML = """\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: Plain review
spec:
  blocks:
    start: {type: start_json, label: Start}
    gate: {type: hil, label: Gate}
    done: {type: end}
  edges:
    - {source: {block: start, handle: output-json-0}, target: {block: gate, handle: input-json-0}}
    - {source: {block: gate, handle: output-json-0}, target: {block: done, handle: input-json-0}}
"""
TRICKY = {"empty": "", "addr": "Line1\nLine2", "big": 12345678901234567891, "pad": "  x  ",
          "lead": "\nstarts with a break", "none": None, "flag": True, "ratio": 1e20,
          "nested": {"a": [1, 2]}}


def _hil_review(client: TestClient, data: dict[str, Any]) -> tuple[str, str]:
    """Start the plain review workflow on ``data``: (run id, review id)."""
    engine = app_state(client.app).engine  # type: ignore[arg-type]
    run = engine.run(Workflow.from_yaml(HIL_YAML), {"start": data})
    assert run.status == "awaiting_review", run
    reviews = client.get("/v1/workflows/reviews", params={"run_id": run.run_id},
                         headers={"Api-Key": "sk_gen"})
    assert reviews.status_code == 200, reviews.text
    return run.run_id, reviews.json()["data"][0]["id"]


def _versions(client: TestClient, review_id: str) -> list[dict[str, Any]]:
    response = client.get("/v1/workflows/reviews/versions", params={"review_id": review_id},
                          headers={"Api-Key": "sk_gen"})
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def _form_of(page: str) -> dict[str, str]:
    """What a browser submits for the review form as shown (textarea values with CRLF)."""
    form = {name: html.unescape(value) for name, value in
            re.findall(r'<input[^>]* name="(field\.[\w.]+)" value="([^"]*)"', page)}
    for name, value in re.findall(
            r'<textarea[^>]* name="(field\.[\w.]+)"[^>]*>\n(.*?)</textarea>', page, re.DOTALL):
        form[name] = html.unescape(value).replace("\n", "\r\n")
    for name, body in re.findall(r'<select[^>]* name="(field\.[\w.]+)"[^>]*>(.*?)</select>',
                                 page, re.DOTALL):
        chosen = re.search(r'<option(?: value="([^"]*)")? selected>([^<]*)<', body)
        assert chosen, body
        form[name] = html.unescape(chosen.group(1) if chosen.group(1) is not None
                                   else chosen.group(2))
    return form


def test_an_untouched_form_approves_the_proposal_as_it_is(
        local: tuple[TestClient, Seeded]) -> None:
    client, _ = local
    run_id, review_id = _hil_review(client, TRICKY)
    page = client.get(f"/reviews/{review_id}").text
    form = _form_of(page)
    assert set(form) == {f"field.{k}" for k in TRICKY}
    textarea = re.search(r"<textarea[^>]*field\.addr[^>]*>", page)
    assert textarea and 'name="field.addr"' in textarea.group(0)
    done = client.post(f"/reviews/{review_id}/decide", data={
        **form, "csrf_token": csrf_of(page), "decision": "approve"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith("notice=approved")
    assert len(_versions(client, review_id)) == 1  # no "human" version was recorded
    assert wait_status(client, run_id, {"completed", "error"}) == "completed"
    review = client.get(f"/v1/workflows/reviews/{review_id}",
                        headers={"Api-Key": "sk_gen"}).json()
    assert review["decision"]["version_id"] == _versions(client, review_id)[0]["id"]


def test_a_post_without_the_fields_changes_nothing(local: tuple[TestClient, Seeded]) -> None:
    client, _ = local
    run_id, review_id = _hil_review(client, TRICKY)
    page = client.get(f"/reviews/{review_id}").text
    done = client.post(f"/reviews/{review_id}/decide", data={
        "csrf_token": csrf_of(page), "decision": "approve"}, follow_redirects=False)
    assert done.headers["location"].endswith("notice=approved")
    assert len(_versions(client, review_id)) == 1
    assert wait_status(client, run_id, {"completed", "error"}) == "completed"


def test_one_edited_field_changes_only_that_field(local: tuple[TestClient, Seeded]) -> None:
    client, _ = local
    _, review_id = _hil_review(client, TRICKY)
    page = client.get(f"/reviews/{review_id}").text
    done = client.post(f"/reviews/{review_id}/decide", data={
        **_form_of(page), "field.big": "12345678901234567892", "csrf_token": csrf_of(page),
        "decision": "approve"}, follow_redirects=False)
    assert done.headers["location"].endswith("notice=approved")
    _, correction = _versions(client, review_id)
    assert correction["snapshot"] == {**TRICKY, "big": 12345678901234567892}


def test_parsing_keeps_integers_exact_and_empty_strings_empty() -> None:
    fields = form_fields({"n": 1, "s": "a", "maybe": None}, None, {})
    data, problems = read_correction(fields, {"field.n": "9007199254740993", "field.s": "",
                                              "field.maybe": "x"}, {"n": 1, "s": "a"})
    assert problems == [] and data == {"n": 9007199254740993, "s": "", "maybe": "x"}
    nullable = [FormField(name="s", kind="string", text="a", nullable=True)]
    assert read_correction(nullable, {"field.s": ""}, {"s": "a"})[0] == {"s": None}
    _, problems = read_correction(fields, {"field.n": "nan"}, {"n": 1})
    assert problems == ["n: 'nan' is not a finite number"]


def test_a_decision_other_than_approve_or_reject_decides_nothing(
        local: tuple[TestClient, Seeded]) -> None:
    client, _ = local
    _, review_id = _hil_review(client, {"a": 1})
    page = client.get(f"/reviews/{review_id}").text
    for data in ({"decision": "Approve"}, {"decision": "rejected"}, {}):
        refused = client.post(f"/reviews/{review_id}/decide",
                              data={**data, "csrf_token": csrf_of(page)})
        assert refused.status_code == 422 and "Nothing was decided" in refused.text, data
    review = client.get(f"/v1/workflows/reviews/{review_id}",
                        headers={"Api-Key": "sk_gen"}).json()
    assert review.get("decision") is None, review


def test_unchanged_data_with_a_null_is_approved_without_the_schema_check(
        local: tuple[TestClient, Seeded]) -> None:
    client, runs = local
    found = re.search(r'href="/reviews/(rev_[0-9a-f]+)"', client.get("/reviews").text)
    assert found
    review_id = found.group(1)
    (proposal,) = _versions(client, review_id)
    made = client.post("/v1/workflows/reviews/versions", headers={"Api-Key": "sk_gen"},
                       json={"review_id": review_id, "parent_id": proposal["id"],
                             "snapshot": {**proposal["snapshot"], "currency": None}})
    assert made.status_code == 200, made.text
    page = client.get(f"/reviews/{review_id}").text
    token = csrf_of(page)
    edited = client.post(f"/reviews/{review_id}/decide", data={
        **_form_of(page), "field.supplier": "Other", "csrf_token": token,
        "decision": "approve"})
    assert edited.status_code == 422 and "currency" in edited.text  # changed: checked
    again = client.post(f"/reviews/{review_id}/decide", data={
        **_form_of(page), "field.supplier": "Other", "csrf_token": token,
        "decision": "approve"})
    assert again.status_code == 422  # a reload of the refused page decides nothing
    reloaded = client.get(f"/reviews/{review_id}/decide", follow_redirects=False)
    assert reloaded.status_code == 200 and "the form starts here" in reloaded.text
    done = client.post(f"/reviews/{review_id}/decide", data={
        **_form_of(page), "csrf_token": token, "decision": "approve"},
        follow_redirects=False)
    assert done.headers["location"].endswith("notice=approved")
    twice = client.post(f"/reviews/{review_id}/decide", data={
        **_form_of(page), "csrf_token": token, "decision": "approve"},
        follow_redirects=False)
    assert twice.headers["location"].endswith("notice=already_decided")
    versions = _versions(client, review_id)
    assert len(versions) == 2
    review = client.get(f"/v1/workflows/reviews/{review_id}",
                        headers={"Api-Key": "sk_gen"}).json()
    assert review["decision"]["version_id"] == made.json()["id"]
    wait_status(client, runs.review, {"completed", "error"})


def test_a_search_underscore_is_a_literal_character(local: tuple[TestClient, Seeded]) -> None:
    client, runs = local
    assert runs.items in client.get("/", params={"q": "_"}).text  # ids hold one: matches
    assert runs.items not in client.get("/", params={"q": "ru__"}).text  # not wildcards
    assert runs.items not in client.get("/", params={"q": "r%n"}).text


BOOLEANS = {"type": "object", "properties": {
    "paid": {"type": "boolean"}, "sent": {"type": ["boolean", "null"]},
    "ok": {"type": "boolean"}, "count": {"type": "boolean"}, "said": {"type": "boolean"}}}


def test_a_boolean_field_keeps_a_proposed_value_that_is_not_a_boolean() -> None:
    proposal = {"paid": "yes", "sent": None, "ok": True, "count": 1, "said": "false"}
    fields = {f.name: f for f in form_fields(proposal, BOOLEANS, {})}
    assert {n: (f.kind, f.text, f.off_type) for n, f in fields.items()} == {
        "paid": ("boolean", '"yes"', True), "sent": ("boolean", "", False),
        "ok": ("boolean", "true", False), "count": ("boolean", "1", True),
        "said": ("boolean", '"false"', True)}  # the string "false" is not false
    shown = {f.input_name: f.text for f in fields.values()}
    data, problems = read_correction(list(fields.values()), shown, proposal)
    assert problems == [] and data == proposal  # kept exactly, nothing turned into false
    data, problems = read_correction(list(fields.values()), {
        **shown, "field.paid": "true", "field.count": "false", "field.said": ""}, proposal)
    assert problems == [] and data == {**proposal, "paid": True, "count": False, "said": None}
    _, problems = read_correction(list(fields.values()), {**shown, "field.paid": "maybe"},
                                  proposal)
    assert problems == ["paid: choose true or false"]


def test_the_review_page_shows_a_non_boolean_proposal_and_lets_the_reviewer_choose(
        local: tuple[TestClient, Seeded]) -> None:
    client, _ = local
    schema_line = 'currency: {type: string, description: "ISO currency code, e.g. EUR"}'
    text = review_yaml().replace(schema_line, schema_line + '\n            paid: '
                                 '{type: boolean, description: "Already paid"}')
    assert "paid:" in text
    engine = app_state(client.app).engine  # type: ignore[arg-type]
    run = engine.run(Workflow.from_yaml(text), {"upload": INVOICE_PDF})
    assert run.status == "awaiting_review", run
    review_id = client.get("/v1/workflows/reviews", params={"run_id": run.run_id},
                           headers={"Api-Key": "sk_gen"}).json()["data"][0]["id"]
    (proposal,) = _versions(client, review_id)
    assert proposal["snapshot"]["paid"] is None  # the extraction found nothing: null
    page = client.get(f"/reviews/{review_id}").text
    assert _form_of(page)["field.paid"] == ""  # shown as null, and kept as null
    assert re.search(r'<option value="" selected>null</option>', page)
    made = client.post("/v1/workflows/reviews/versions", headers={"Api-Key": "sk_gen"},
                       json={"review_id": review_id, "parent_id": proposal["id"],
                             "snapshot": {**proposal["snapshot"], "paid": "yes"}})
    assert made.status_code == 200, made.text
    page = client.get(f"/reviews/{review_id}").text
    select = re.search(r'<select[^>]* name="field\.paid"[^>]*>(.*?)</select>', page, re.DOTALL)
    assert select, page
    options = re.findall(r'<option value="([^"]*)"( selected)?>([^<]*)</option>',
                         select.group(1))
    assert [(html.unescape(v), bool(s), t) for v, s, t in options] == [
        ('"yes"', True, "&#34;yes&#34; (as proposed)"), ("", False, "null"),
        ("true", False, "true"), ("false", False, "false")]
    assert "which is not true or false" in page
    form = _form_of(page)
    assert form["field.paid"] == '"yes"'
    token = csrf_of(page)
    # another field edited, "yes" kept: the schema check names it, the page still shows it
    refused = client.post(f"/reviews/{review_id}/decide", data={
        **form, "field.supplier": "Other", "csrf_token": token, "decision": "approve"})
    assert refused.status_code == 422 and "paid" in refused.text
    assert _form_of(refused.text)["field.paid"] == '"yes"'
    for bad in ("maybe", "yes", "1"):  # not a choice the form offers: refused, not guessed
        refused = client.post(f"/reviews/{review_id}/decide", data={
            **form, "field.paid": bad, "csrf_token": token, "decision": "approve"})
        assert refused.status_code == 422 and "paid: choose true or false" in refused.text
    assert len(_versions(client, review_id)) == 2  # nothing stored
    done = client.post(f"/reviews/{review_id}/decide", data={
        **form, "field.paid": "true", "csrf_token": token, "decision": "approve"},
        follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith("notice=approved")
    *_, chosen = _versions(client, review_id)
    assert chosen["snapshot"] == {**proposal["snapshot"], "paid": True}
    assert wait_status(client, run.run_id, {"completed", "error"}) == "completed"
