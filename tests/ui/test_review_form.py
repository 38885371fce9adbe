"""The review form's round trip: untouched data approves the proposal as it is."""

from __future__ import annotations

import html
import re
from typing import Any

from fastapi.testclient import TestClient

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
    for name, body in re.findall(r'<select[^>]* name="(field\.[\w.]+)">(.*?)</select>',
                                 page, re.DOTALL):
        chosen = re.search(r'<option(?: value="([^"]*)")? selected>([^<]*)<', body)
        assert chosen, body
        form[name] = chosen.group(1) if chosen.group(1) is not None else chosen.group(2)
    return form


def test_an_untouched_form_approves_the_proposal_as_it_is(
        local: tuple[TestClient, Seeded]) -> None:
    client, _ = local
    run_id, review_id = _hil_review(client, TRICKY)
    page = client.get(f"/reviews/{review_id}").text
    form = _form_of(page)
    assert set(form) == {f"field.{k}" for k in TRICKY}
    assert 'name="field.addr"' in re.search(r"<textarea[^>]*field\.addr[^>]*>", page).group(0)
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
    review_id = re.search(r'href="/reviews/(rev_[0-9a-f]+)"',
                          client.get("/reviews").text).group(1)
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
