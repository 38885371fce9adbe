"""The pages, rendered over the seeded runs (no browser): content, escaping, fragments."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient

from tests.ui.workflows import SCRIPT_XSS, XSS, Seeded


def test_runs_list_shows_statuses_counts_and_filters(local: tuple[TestClient, Seeded]) -> None:
    client, runs = local
    page = client.get("/")
    assert page.status_code == 200
    for run_id in (runs.review, runs.items, runs.hostile):
        assert f'href="/runs/{run_id}"' in page.text
    assert "awaiting review" in page.text and "waiting since" in page.text
    assert "26/30" in page.text and "4 failed" in page.text  # items done / total, failed
    assert 'data-events="/ui/events"' in page.text
    only = client.get("/", params={"status": "awaiting_review"}).text
    assert runs.review in only and runs.items not in only
    bad = client.get("/", params={"status": "bogus", "from": "yesterday"}).text
    assert "unknown status" in bad and "is not a date" in bad and runs.items in bad
    found = client.get("/", params={"q": "Item checks"}).text
    assert runs.items in found and runs.review not in found


def test_runs_list_up_to_the_last_day_a_date_field_takes(
        local: tuple[TestClient, Seeded]) -> None:
    client, runs = local  # "to" is a whole day: its end is the day after, past date.max
    page = client.get("/", params={"from": "0001-01-01", "to": "9999-12-31"})
    assert page.status_code == 200 and runs.items in page.text
    assert "is not a date" not in page.text


def test_runs_list_pages_with_cursors(local: tuple[TestClient, Seeded],
                                      monkeypatch: object) -> None:
    from engine.server.ui import runs_view

    client, runs = local
    monkeypatch.setattr(runs_view, "PAGE_SIZE", 2)  # type: ignore[attr-defined]
    first = client.get("/").text
    older = re.search(r'href="(/\?after=[^"]+)" rel="next"', first)
    assert older, first
    second = client.get(older.group(1).replace("&amp;", "&")).text
    assert runs.review in second and runs.review not in first.split("<tbody>")[1]
    assert 'rel="prev"' in second
    stale = client.get("/", params={"after": "run_gone"})
    assert stale.status_code == 200 and runs.hostile in stale.text


def test_run_page_statuses_skip_reason_items_and_graph(local: tuple[TestClient, Seeded]
                                                       ) -> None:
    client, runs = local
    page = client.get(f"/runs/{runs.items}").text
    assert "branch_not_selected: size.output-json-else" in page  # why Small batch skipped
    assert "26/30 items, 4 failed" in page
    assert re.search(r"item \d+ is not allowed \(3 mod 7\)", page)
    graph = json.loads(re.search(r'id="graph-data">(.*?)</script>', page, re.DOTALL).group(1))
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes["each"]["container"] and nodes["check"]["parent"] == "each"
    assert nodes["small_batch"]["status"] == "skipped" and nodes["check"]["status"] == "error"
    assert nodes["each"]["failed_items"] == 4
    edges = {(e["source"], e["source_end"], e["target"], e["target_end"]) for e in graph["edges"]}
    assert ("batch", "", "each", "start") in edges and ("each", "end", "total", "") in edges
    assert ("check", "", "each", "end") in edges  # generated exit edge, drawn dotted
    assert f'action="/runs/{runs.items}/rerun"' in page
    assert f'action="/runs/{runs.items}/cancel"' not in page  # it ended


def test_block_selection_lists_its_steps(local: tuple[TestClient, Seeded]) -> None:
    client, runs = local
    page = client.get(f"/runs/{runs.items}", params={"block": "check"}).text
    assert 'id="steps"' in page and "each_iter_3_check" in page and "each_iter_29_check" in page
    assert client.get(f"/runs/{runs.items}", params={"block": "check", "after": "nope"}
                      ).status_code == 200


def test_iterations_page_and_failed_filter(local: tuple[TestClient, Seeded]) -> None:
    client, runs = local
    page = client.get(f"/runs/{runs.items}/iterations", params={"step": "each"}).text
    assert "30 iterations" in page and page.count('class="failed"') == 4
    failed = client.get(f"/runs/{runs.items}/iterations",
                        params={"step": "each", "show": "failed"}).text
    assert failed.count("<tr") == 5 and "item 10" in failed and "item 11<" not in failed
    fragment = client.get(f"/runs/{runs.items}/iterations", params={"step": "each"},
                          headers={"X-Stepwell-Fragment": "1"}).text
    assert not fragment.lstrip().startswith("<!doctype") and "item 0" in fragment
    assert client.get(f"/runs/{runs.items}/iterations", params={"step": "total"}
                      ).status_code == 404


def test_step_page_error_trail_and_artifacts(local: tuple[TestClient, Seeded]) -> None:
    client, runs = local
    failed = client.get(f"/runs/{runs.items}/steps/each_iter_3_check").text
    assert "item 3 is not allowed" in failed and "permanent" in failed and "execution" in failed
    assert "BLOCK_ERROR" in failed and "Stack trace" in failed
    assert failed.count("badge st-") >= 4  # pending, queued, running, error
    extract = client.get(f"/runs/{runs.review}/steps/read_invoice").text
    assert "INV-2026-0042" in extract and 'value="0.85"' in extract  # total's likelihood
    assert re.search(r"/files/file_[0-9a-f]+/pages/1\.png", extract)
    classify = client.get(f"/runs/{runs.review}/steps/sort").text
    assert "chosen" in classify and "invoice" in classify
    conditional = client.get(f"/runs/{runs.items}/steps/size").text
    assert "Condition evaluations" in conditional and "greater_than" in conditional
    assert "Nothing was logged." in conditional


def test_html_in_names_is_text(local: tuple[TestClient, Seeded]) -> None:
    client, runs = local
    for path in ("/", f"/runs/{runs.hostile}", f"/runs/{runs.hostile}/steps/shout",
                 f"/runs/{runs.hostile}/steps/start"):
        page = client.get(path)
        assert page.status_code == 200
        assert XSS not in page.text and SCRIPT_XSS not in page.text, path
        assert "&lt;img src=x" in page.text or "\\u003cimg" in page.text, path
        assert "script-src 'self'" in page.headers["content-security-policy"]


def test_fragment_is_the_live_region_only(local: tuple[TestClient, Seeded]) -> None:
    client, runs = local
    whole = client.get(f"/runs/{runs.items}").text
    part = client.get(f"/runs/{runs.items}", headers={"X-Stepwell-Fragment": "1"}).text
    assert "<html" in whole and "<html" not in part and 'id="graph-data"' in part


def test_review_pages(local: tuple[TestClient, Seeded]) -> None:
    client, runs = local
    queue = client.get("/reviews").text
    review_id = re.search(r'href="/reviews/(rev_[0-9a-f]+)"', queue).group(1)
    page = client.get(f"/reviews/{review_id}").text
    assert 'name="field.total_amount" value="2125.0"' in page
    assert "likelihood 0.85" in page and "Why a review" in page
    assert re.search(rf"/runs/{runs.review}/steps/read_invoice/files/file_\w+/pages/1\.png",
                     page)
    assert client.get("/reviews", params={"show": "decided"}).text.count("/reviews/rev_") == 0


def test_document_pages_and_files_are_served_through_their_step(
        local: tuple[TestClient, Seeded]) -> None:
    client, runs = local
    page = client.get(f"/runs/{runs.review}/steps/read_invoice").text
    file_id = re.search(r"/files/(file_[0-9a-f]+)/pages/1\.png", page).group(1)
    png = client.get(f"/runs/{runs.review}/steps/read_invoice/files/{file_id}/pages/1.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert png.headers["content-type"] == "image/png"
    assert client.get(f"/runs/{runs.review}/steps/read_invoice/files/{file_id}/pages/2.png"
                      ).status_code == 404
    pdf = client.get(f"/runs/{runs.review}/steps/read_invoice/files/{file_id}")
    assert pdf.content.startswith(b"%PDF") and "sandbox" in pdf.headers[
        "content-security-policy"]
    # the same file through a step that does not reference it
    assert client.get(f"/runs/{runs.items}/steps/total/files/{file_id}").status_code == 404


def test_unknown_things_are_html_404s(local: tuple[TestClient, Seeded]) -> None:
    client, runs = local
    for path in ("/runs/run_nope", f"/runs/{runs.items}/steps/nope", "/reviews/rev_nope",
                 "/runs/run_nope/iterations?step=each"):
        response = client.get(path)
        assert response.status_code == 404 and "Not found" in response.text, path


def test_events_end_at_once_for_an_ended_run(local: tuple[TestClient, Seeded]) -> None:
    client, runs = local
    with client.stream("GET", f"/ui/events?run={runs.items}") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        body = "".join(stream.iter_text())
    assert "retry:" in body and "event: end" in body


def test_step_logs_by_attempt_with_cuts_marked(local: tuple[TestClient, Seeded]) -> None:
    client, runs = local
    page = client.get(f"/runs/{runs.chatty}/steps/talk").text
    assert 'id="log-attempt-0"' in page and 'id="log-attempt-1"' in page
    first, second = page.split('id="log-attempt-1"')
    assert "attempt 1 starting" in first and "careful: call 1" in first
    assert "✂ 1 cut" in first and "more characters]" in first  # the 20,000-char line
    assert "attempt 2 starting" in second and "all done" in second and "✂" not in second
    assert "WARNING" in first and "tests.ui.talk" in first
    quiet = client.get(f"/runs/{runs.items}/steps/total").text
    assert "Nothing was logged." in quiet


def test_long_logs_page_on(local: tuple[TestClient, Seeded], monkeypatch: object) -> None:
    from engine.server.ui import step_view

    client, runs = local
    monkeypatch.setattr(step_view, "LOG_PAGE", 2)  # type: ignore[attr-defined]
    page = client.get(f"/runs/{runs.chatty}/steps/talk").text
    link = re.search(rf'href="(/runs/{runs.chatty}/steps/talk/logs\?after=2)"', page)
    # the artifact quotes the whole stdout; the log section shows entries #1-#2 only
    assert link and "attempt 1 starting" in page and "#2 " in page and "#3 " not in page
    rest = client.get(link.group(1))
    assert rest.status_code == 200 and "#3 " in rest.text and "#1 " not in rest.text
    assert "From the first entry" in rest.text
    end = client.get(f"/runs/{runs.chatty}/steps/talk/logs", params={"after": 99}).text
    assert "No entries after #99" in end
    for bad in (f"/runs/{runs.chatty}/steps/nope/logs", "/runs/run_nope/steps/talk/logs"):
        assert client.get(bad).status_code == 404, bad
    assert client.get(f"/runs/{runs.chatty}/steps/talk/logs",
                      params={"after": -1}).status_code == 422


def test_review_page_lists_its_versions(local: tuple[TestClient, Seeded]) -> None:
    client, _ = local
    review_id = re.search(r'href="/reviews/(rev_[0-9a-f]+)"', client.get("/reviews").text
                          ).group(1)
    page = client.get(f"/reviews/{review_id}").text
    versions = client.get("/v1/workflows/reviews/versions", params={"review_id": review_id},
                          headers={"Api-Key": "sk_gen"}).json()["data"]
    assert len(versions) == 1 and versions[0]["id"] in page
    assert "proposal" in page and "the form starts here" in page
