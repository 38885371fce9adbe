"""Forms and access: login, organization isolation, CSRF, decide, cancel, resume, rerun."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

from fastapi.testclient import TestClient

from bench.ui_seed import ITEMS_YAML
from engine.contracts.events import NewRun
from engine.definition import Workflow
from engine.server import app_state
from tests.ui.conftest import csrf_of, sign_in, wait_status
from tests.ui.test_review_form import HIL_YAML
from tests.ui.workflows import Seeded


def _review_id(client: TestClient) -> str:
    return re.search(r'href="/reviews/(rev_[0-9a-f]+)"', client.get("/reviews").text).group(1)


def test_login_is_needed_when_keys_are_configured(keyed: tuple[TestClient, Seeded]) -> None:
    client, runs = keyed
    first = client.get(f"/runs/{runs.items}", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == f"/login?next=%2Fruns%2F{runs.items}"
    form = client.get("/login")
    wrong = client.post("/login", data={"api_key": "sk_wrong", "csrf_token": csrf_of(form.text)})
    assert wrong.status_code == 401 and "not one of this server" in wrong.text
    forged = client.post("/login", data={"api_key": "sk_a", "csrf_token": "0" * 64})
    assert forged.status_code == 401
    sign_in(client, "sk_a")
    assert client.cookies.get("stepwell_session")
    page = client.get(f"/runs/{runs.items}")
    assert page.status_code == 200 and "Item checks" in page.text and "Sign out" in page.text
    out = client.post("/logout", data={"csrf_token": csrf_of(page.text)},
                      follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"].startswith("/login")
    assert client.get("/", follow_redirects=False).status_code == 303


def test_another_organization_sees_nothing(keyed: tuple[TestClient, Seeded]) -> None:
    client, runs = keyed
    sign_in(client, "sk_b")
    home = client.get("/").text
    assert runs.items not in home and "No runs yet" in home
    review_id = None
    sqlite = sqlite3.connect(str(app_state(client.app).readers.db_path))  # type: ignore[arg-type]
    review_id = sqlite.execute("SELECT id FROM reviews").fetchone()[0]
    file_id = sqlite.execute("SELECT json_extract(inputs, '$.upload.id') FROM runs "
                             "WHERE id = ?", (runs.review,)).fetchone()[0]
    sqlite.close()
    for path in (f"/runs/{runs.items}", f"/runs/{runs.items}/steps/total",
                 f"/runs/{runs.items}/iterations?step=each", f"/reviews/{review_id}",
                 f"/runs/{runs.review}/steps/read_invoice/files/{file_id}",
                 f"/runs/{runs.review}/steps/read_invoice/files/{file_id}/pages/1.png"):
        assert client.get(path).status_code == 404, path
    assert review_id not in client.get("/reviews", params={"show": "all"}).text
    token = csrf_of(client.get("/").text)
    for action in ("cancel", "resume", "rerun"):
        response = client.post(f"/runs/{runs.review}/{action}",
                               data={"csrf_token": token, "from_step": "sort"})
        assert response.status_code == 404, action
    decided = client.post(f"/reviews/{review_id}/decide",
                          data={"csrf_token": token, "decision": "approve"})
    assert decided.status_code == 404
    events = client.get(f"/ui/events?run={runs.review}").text
    assert "event: end" in events  # nothing to follow, and nothing said about the run


def test_forms_need_their_csrf_token(local: tuple[TestClient, Seeded]) -> None:
    client, runs = local
    client.get("/")  # gets the CSRF cookie
    for data in ({}, {"csrf_token": "f" * 64}):
        refused = client.post(f"/runs/{runs.review}/cancel", data=data)
        assert refused.status_code == 403 and "Nothing was done" in refused.text
    other = TestClient(client.app, base_url="http://127.0.0.1:8000")
    token = csrf_of(client.get(f"/runs/{runs.review}").text)  # client's, not other's
    other.get("/")
    assert other.post(f"/runs/{runs.review}/cancel", data={"csrf_token": token}
                      ).status_code == 403
    assert wait_status(client, runs.review, {"awaiting_review"}) == "awaiting_review"


def test_single_user_mode_answers_loopback_hosts_only(local: tuple[TestClient, Seeded]
                                                      ) -> None:
    client, _ = local
    assert client.get("/", headers={"host": "evil.example:8000"}).status_code == 421
    assert client.get("/", headers={"host": "localhost:8000"}).status_code == 200
    assert client.get("/login", follow_redirects=False).status_code == 303


def test_approve_with_a_correction_and_the_run_goes_on(local: tuple[TestClient, Seeded]
                                                       ) -> None:
    client, runs = local
    review_id = _review_id(client)
    page = client.get(f"/reviews/{review_id}").text
    fields = dict(re.findall(r'name="(field\.[a-z_]+)" value="([^"]*)"', page))
    bad = client.post(f"/reviews/{review_id}/decide", data={
        **fields, "field.total_amount": "lots", "csrf_token": csrf_of(page),
        "decision": "approve"})
    assert bad.status_code == 422 and "total_amount" in bad.text and "not a number" in bad.text
    assert 'value="lots"' in bad.text  # what the reviewer typed is kept
    done = client.post(f"/reviews/{review_id}/decide", data={
        **fields, "field.total_amount": "999.5", "csrf_token": csrf_of(page),
        "decision": "approve"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith("notice=approved")
    assert wait_status(client, runs.review, {"completed", "error"}) == "completed"
    run_page = client.get(f"/runs/{runs.review}").text
    assert "999.5" in run_page and "book_invoice" in run_page  # under 1000: booked
    after = client.get(done.headers["location"]).text
    assert "Approved. The run continues" in after and "Decided data" in after
    again = client.post(f"/reviews/{review_id}/decide", data={
        "csrf_token": csrf_of(page), "decision": "reject"}, follow_redirects=False)
    assert again.headers["location"].endswith("notice=already_decided")


def test_reject_skips_what_depends_on_the_step(local: tuple[TestClient, Seeded]) -> None:
    client, runs = local
    review_id = _review_id(client)
    token = csrf_of(client.get(f"/reviews/{review_id}").text)
    client.post(f"/reviews/{review_id}/decide",
                data={"csrf_token": token, "decision": "reject", "reason": "not ours"})
    wait_status(client, runs.review, {"completed", "error", "cancelled"})
    page = client.get(f"/runs/{runs.review}").text
    assert "skipped" in page
    assert "not ours" in client.get(f"/reviews/{review_id}").text


def _badges(html: str) -> list[tuple[str, str, str]]:
    """(status class, symbol, word) of every badge in ``html``, in order."""
    return re.findall(r'<span class="badge st-(\w+)"><span aria-hidden="true">([^<]*)</span> '
                      r"([^<]*?)\s*(?:<|$)", html)


def _decision_badges(client: TestClient, review_id: str) -> tuple[list[tuple[str, str, str]],
                                                                  list[tuple[str, str, str]]]:
    """The badges of the review's state on its page and of its row in the decided queue."""
    page = client.get(f"/reviews/{review_id}").text
    state = re.search(r'<p class="status-line">(.*?)· run', page, re.DOTALL)
    queue = client.get("/reviews", params={"show": "decided"}).text
    row = re.search(rf'<tr>\s*<td><a href="/reviews/{review_id}">.*?</tr>', queue, re.DOTALL)
    assert state and row, (page, queue)
    return _badges(state.group(1)), _badges(row.group(0))


def test_a_rejected_review_looks_rejected_not_completed(keyed: tuple[TestClient, Seeded]
                                                         ) -> None:
    client, runs = keyed
    sign_in(client, "sk_a")
    review_id = _review_id(client)
    token = csrf_of(client.get(f"/reviews/{review_id}").text)
    client.post(f"/reviews/{review_id}/decide",
                data={"csrf_token": token, "decision": "reject", "reason": "not ours"})
    wait_status(client, runs.review, {"completed", "error", "cancelled"})
    rejected = [("rejected", "✗", "rejected")]
    assert _decision_badges(client, review_id) == (rejected, rejected)
    css = client.get("/ui/static/app.css").text
    assert ".st-rejected { color: var(--error); }" in css  # red, as errors: not green
    # an approved review keeps its own badge (a check mark, green)
    run = app_state(client.app).engine.run(  # type: ignore[arg-type]
        Workflow.from_yaml(HIL_YAML), {"start": {"a": 1}})
    approved_id = client.get("/v1/workflows/reviews", params={"run_id": run.run_id},
                             headers={"Api-Key": "sk_a"}).json()["data"][0]["id"]
    token = csrf_of(client.get(f"/reviews/{approved_id}").text)
    client.post(f"/reviews/{approved_id}/decide",
                data={"csrf_token": token, "decision": "approve"})
    approved = [("approved", "✓", "approved")]
    assert _decision_badges(client, approved_id) == (approved, approved)
    # another organization sees neither review
    sign_in(client, "sk_b")
    assert client.get(f"/reviews/{review_id}").status_code == 404
    assert client.get(f"/reviews/{approved_id}").status_code == 404
    decided = client.get("/reviews", params={"show": "decided"}).text
    assert review_id not in decided and approved_id not in decided


def test_cancel_a_waiting_run(local: tuple[TestClient, Seeded]) -> None:
    client, runs = local
    page = client.get(f"/runs/{runs.review}").text
    response = client.post(f"/runs/{runs.review}/cancel", data={"csrf_token": csrf_of(page)},
                           follow_redirects=False)
    assert response.headers["location"] == f"/runs/{runs.review}?notice=cancelled"
    after = client.get(response.headers["location"]).text
    assert "The run was cancelled." in after and "cancelled from the web UI" in after
    assert f'action="/runs/{runs.review}/cancel"' not in after
    again = client.post(f"/runs/{runs.review}/cancel", data={"csrf_token": csrf_of(page)},
                        follow_redirects=False)
    assert again.headers["location"].endswith("notice=already_ended")


def test_resume_a_run_whose_process_is_gone(local: tuple[TestClient, Seeded]) -> None:
    client, _ = local
    state = app_state(client.app)  # type: ignore[arg-type]
    wf = Workflow.from_yaml(ITEMS_YAML)
    run_id = "run_orphan0000000000000"
    state.engine.store.create_run(NewRun(
        run_id=run_id, workflow_id="wrk_items", workflow_name=wf.name,
        workflow_digest=wf.digest(), definition=wf.to_dict(),
        inputs={"batch": {"items": [{"value": 1}, {"value": 2}]}}), now=time.time())
    page = client.get(f"/runs/{run_id}").text
    assert f'action="/runs/{run_id}/resume"' not in page  # this process owns it
    refused = client.post(f"/runs/{run_id}/resume", data={"csrf_token": csrf_of(page)},
                          follow_redirects=False)
    assert refused.headers["location"].endswith("notice=owner_alive")
    with sqlite3.connect(Path(state.readers.db_path)) as conn:
        conn.execute("UPDATE runs SET owner_pid = 2147483646, heartbeat_at = 1 WHERE id = ?",
                     (run_id,))
    lost = client.get(f"/runs/{run_id}").text
    assert "owner lost" in lost and f'action="/runs/{run_id}/resume"' in lost
    assert "owner lost" in client.get("/").text
    resumed = client.post(f"/runs/{run_id}/resume", data={"csrf_token": csrf_of(lost)},
                          follow_redirects=False)
    assert resumed.headers["location"].endswith("notice=resumed")
    assert wait_status(client, run_id, {"completed", "error"}) == "completed"


def test_rerun_from_a_step(local: tuple[TestClient, Seeded]) -> None:
    client, runs = local
    page = client.get(f"/runs/{runs.items}").text
    response = client.post(f"/runs/{runs.items}/rerun",
                           data={"csrf_token": csrf_of(page), "from_step": "total"},
                           follow_redirects=False)
    new_id = re.match(r"/runs/(run_\w+)\?notice=rerun_started", response.headers["location"])
    assert new_id and new_id.group(1) != runs.items, response.headers["location"]
    assert wait_status(client, new_id.group(1), {"completed", "error"}) == "completed"
    assert f"rerun of <a href=\"/runs/{runs.items}\"" in client.get(
        f"/runs/{new_id.group(1)}").text
    unknown = client.post(f"/runs/{runs.items}/rerun",
                          data={"csrf_token": csrf_of(page), "from_step": "each_iter_3_check"})
    assert unknown.status_code == 404


def _versions(client: TestClient, review_id: str) -> list[dict[str, object]]:
    response = client.get("/v1/workflows/reviews/versions", params={"review_id": review_id},
                          headers={"Api-Key": "sk_gen"})
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def test_a_correction_is_the_review_version_the_api_lists(local: tuple[TestClient, Seeded]
                                                         ) -> None:
    client, runs = local
    review_id = _review_id(client)
    page = client.get(f"/reviews/{review_id}").text
    fields = dict(re.findall(r'name="(field\.[a-z_]+)" value="([^"]*)"', page))
    done = client.post(f"/reviews/{review_id}/decide", data={
        **fields, "field.total_amount": "999.5", "note": "typo in the total",
        "csrf_token": csrf_of(page), "decision": "approve"}, follow_redirects=False)
    assert done.status_code == 303
    proposal, correction = _versions(client, review_id)
    assert proposal["parent_id"] is None and correction["parent_id"] == proposal["id"]
    assert correction["snapshot"]["total_amount"] == 999.5
    assert correction["snapshot"]["invoice_number"] == fields["field.invoice_number"]
    assert correction["note"] == "typo in the total"
    assert correction["author"]["id"] == "org_local"
    review = client.get(f"/v1/workflows/reviews/{review_id}",
                        headers={"Api-Key": "sk_gen"}).json()
    assert review["decision"]["verdict"] == "approved"
    assert review["decision"]["version_id"] == correction["id"]
    shown = client.get(f"/reviews/{review_id}").text
    row = re.search(r'<tr class="selected">(.*?)</tr>', shown, re.DOTALL)
    assert row and correction["id"] in row.group(1) and "✓ approved" in row.group(1)
    wait_status(client, runs.review, {"completed", "error"})


def test_the_form_starts_from_a_correction_made_over_the_api(
        local: tuple[TestClient, Seeded]) -> None:
    client, runs = local
    review_id = _review_id(client)
    (proposal,) = _versions(client, review_id)
    snapshot = {**proposal["snapshot"], "total_amount": 1.5}  # type: ignore[dict-item]
    # a NUL and a lone surrogate (escaped, as JSON allows): kept as text, not a failed write
    body = json.dumps({"review_id": review_id, "parent_id": proposal["id"],
                       "snapshot": snapshot, "note": "from the\x00 SDK \ud83e"})
    made = client.post("/v1/workflows/reviews/versions", content=body.encode(),
                       headers={"Api-Key": "sk_gen", "Content-Type": "application/json"})
    assert made.status_code == 200, made.text
    assert made.json()["note"] == "from the SDK \ufffd"
    page = client.get(f"/reviews/{review_id}").text
    assert 'name="field.total_amount" value="1.5"' in page and "from the SDK \ufffd" in page
    fields = dict(re.findall(r'name="(field\.[a-z_]+)" value="([^"]*)"', page))
    client.post(f"/reviews/{review_id}/decide", data={
        **fields, "csrf_token": csrf_of(page), "decision": "approve"})
    versions = _versions(client, review_id)
    assert len(versions) == 2  # unchanged data approves the API's version as it is
    review = client.get(f"/v1/workflows/reviews/{review_id}",
                        headers={"Api-Key": "sk_gen"}).json()
    assert review["decision"]["version_id"] == made.json()["id"]
    assert wait_status(client, runs.review, {"completed", "error"}) == "completed"
    assert "1.5" in client.get(f"/runs/{runs.review}").text


def test_rerun_only_the_failed_items(local: tuple[TestClient, Seeded]) -> None:
    from bench import ui_seed

    client, runs = local
    page = client.get(f"/runs/{runs.items}").text
    assert "Rerun the 4 failed items" in page
    ui_seed.FIXED.update({3, 10, 17, 24})
    ui_seed.CHECKED.clear()
    try:
        response = client.post(f"/runs/{runs.items}/rerun",
                               data={"csrf_token": csrf_of(page), "failed": "1"},
                               follow_redirects=False)
        found = re.match(r"/runs/(run_\w+)\?notice=rerun_failed_started",
                         response.headers["location"])
        assert found, response.headers["location"]
        new_id = found.group(1)
        assert wait_status(client, new_id, {"completed", "error"}) == "completed"
        assert sorted(ui_seed.CHECKED) == [3, 10, 17, 24]  # only the failed items ran
    finally:
        ui_seed.FIXED.clear()
    rerun = client.get(f"/runs/{new_id}").text
    assert "30/30 items" in rerun and f'rerun of <a href="/runs/{runs.items}"' in rerun
    assert "failed item" not in rerun  # nothing failed: no rerun of failed items offered
    nothing = client.post(f"/runs/{new_id}/rerun",
                          data={"csrf_token": csrf_of(rerun), "failed": "1"},
                          follow_redirects=False)
    assert nothing.headers["location"] == f"/runs/{new_id}?notice=no_failed"


def test_new_forms_need_csrf_and_the_organization(keyed: tuple[TestClient, Seeded]) -> None:
    client, runs = keyed
    sign_in(client, "sk_b")
    token = csrf_of(client.get("/").text)
    assert client.post(f"/runs/{runs.items}/rerun", data={"csrf_token": token, "failed": "1"}
                       ).status_code == 404
    assert client.get(f"/runs/{runs.chatty}/steps/talk/logs").status_code == 404
    sqlite = sqlite3.connect(str(app_state(client.app).readers.db_path))  # type: ignore[arg-type]
    review_id = sqlite.execute("SELECT id FROM reviews").fetchone()[0]
    sqlite.close()
    assert client.post(f"/reviews/{review_id}/decide", data={
        "csrf_token": token, "decision": "approve", "field.total_amount": "1"}
                       ).status_code == 404
    assert client.get(f"/reviews/{review_id}/decide").status_code == 404
    assert client.get("/reviews/rev_%2F%2Fevil/decide").status_code == 404
    client.cookies.clear()
    sign_in(client, "sk_a")
    page = client.get(f"/runs/{runs.items}").text
    for data in ({"failed": "1"}, {"failed": "1", "csrf_token": "0" * 64}):
        assert client.post(f"/runs/{runs.items}/rerun", data=data).status_code == 403
    review = client.get(f"/reviews/{review_id}").text
    refused = client.post(f"/reviews/{review_id}/decide", data={
        "decision": "approve", "field.total_amount": "1", "note": "forged"})
    assert refused.status_code == 403
    assert "forged" not in client.get(f"/reviews/{review_id}").text
    assert "the form starts here" in review
    state = app_state(client.app)  # type: ignore[arg-type]
    assert state.store.review_versions(review_id) == []  # nothing stored by either
    assert state.store.reviews(run_id=runs.review)[0].decision is None
    assert "Rerun the 4 failed items" in page
