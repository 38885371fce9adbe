"""The HTTP API over plain HTTP: auth, organization isolation, and every bad input."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.server import create_app
from tests.engine.live_server import LiveServer
from tests.engine.server_workflows import (
    ECHO,
    INVOICE_PDF,
    ORDER,
    ORDER_WITH_INVOICE,
    REVIEWED,
)

A, B = "sk_org_a", "sk_org_b"
CAP = 64 * 1024
PDF_URL = "data:application/pdf;base64," + base64.b64encode(INVOICE_PDF.read_bytes()).decode()
ERROR_KEYS = {"code", "message", "details"}


class Api:
    """httpx calls against the live server with one organization's key."""

    def __init__(self, url: str, key: str | None) -> None:
        self.http = httpx.Client(base_url=url, timeout=30,
                                 headers={"Api-Key": key} if key else {})

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params)

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return self.http.post(path, json=body, **kw)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("http") / "stepwell.db"


@pytest.fixture(scope="module")
def server(db: Path) -> Iterator[LiveServer]:
    app = create_app(db, api_keys={A: "org_a", B: "org_b"}, max_body_bytes=CAP)
    with LiveServer(app) as live:
        yield live


@pytest.fixture(scope="module")
def a(server: LiveServer) -> Api:
    return Api(server.url, A)


@pytest.fixture(scope="module")
def b(server: LiveServer) -> Api:
    return Api(server.url, B)


def error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert set(detail) == ERROR_KEYS and detail["message"]
    if code is not None:
        assert detail["code"] == code, detail
    return dict(detail)


def finished(api: Api, run_id: str, statuses: tuple[str, ...] = ("completed", "error")
             ) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        run = api.get(f"/v1/workflows/runs/{run_id}").json()
        if run["lifecycle"]["status"] in statuses:
            return dict(run)
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def start_echo(api: Api, data: Any = None) -> dict[str, Any]:
    workflow_id = api.post("/v1/workflows/spec/apply", {"yaml_definition": ECHO}).json()[
        "workflow_id"]
    run = api.post("/v1/workflows/runs", {"workflow_id": workflow_id,
                                          "json_inputs": {"data": data or {"n": 1}}})
    assert run.status_code == 200, run.text
    return finished(api, run.json()["id"])


def counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        tables = ("runs", "steps", "workflows", "workflow_versions", "reviews")
        out = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}
    files = Path(f"{db}.files")
    out["files"] = sum(1 for p in files.rglob("*") if p.is_file()) if files.exists() else 0
    return out


# --------------------------------------------------------------------------- auth


def test_every_key_transport_works_and_others_are_401(server: LiveServer) -> None:
    url = f"{server.url}/v1/workflows/runs"
    assert httpx.get(url, headers={"Api-Key": A}).status_code == 200
    assert httpx.get(url, headers={"Authorization": f"Bearer {A}"}).status_code == 200
    assert httpx.get(url, params={"access_token": A}).status_code == 200
    missing = httpx.get(url)
    assert error(missing, 401, "UNAUTHORIZED")["message"].startswith("Authentication failed")
    assert missing.headers["www-authenticate"] == "Bearer"
    error(httpx.get(url, headers={"Api-Key": "sk_wrong"}), 401, "UNAUTHORIZED")
    error(httpx.get(url, headers={"Authorization": "Basic " + A}), 401, "UNAUTHORIZED")
    error(httpx.post(url, json={"workflow_id": "wf_x"}), 401, "UNAUTHORIZED")


def test_openapi_document_and_docs_are_served(server: LiveServer) -> None:
    spec = httpx.get(f"{server.url}/openapi.json", timeout=60).json()
    for path in ("/v1/workflows/runs/{run_id}/steps", "/v1/workflows/steps",
                 "/v1/workflows/steps/{step_id}", "/v1/workflows/runs/{run_id}",
                 "/v1/workflows/runs", "/v1/workflows/spec/apply", "/v1/workflows/spec/validate",
                 "/v1/workflows/runs/{run_id}/cancel", "/v1/workflows/reviews",
                 "/v1/workflows/reviews/{review_id}/approve"):
        assert path in spec["paths"], path
    assert {"ApiKey", "Bearer", "AccessToken"} <= set(spec["components"]["securitySchemes"])
    assert httpx.get(f"{server.url}/docs", timeout=60).status_code == 200


# --------------------------------------------------------------------------- organizations


def test_organizations_never_see_each_other(a: Api, b: Api) -> None:
    run = start_echo(a)
    run_id, workflow_id = run["id"], run["workflow_id"]
    assert run["lifecycle"]["status"] == "completed"
    for path in (f"/v1/workflows/runs/{run_id}", f"/v1/workflows/runs/{run_id}/steps",
                 "/v1/workflows/steps/done", f"/v1/workflows/{workflow_id}",
                 f"/v1/workflows/{workflow_id}/spec"):
        error(b.get(path, **({"run_id": run_id} if "steps/done" in path else {})), 404)
    error(b.get("/v1/workflows/steps/done"), 404)
    error(b.get("/v1/workflows/steps", run_id=run_id), 404)
    error(b.post(f"/v1/workflows/runs/{run_id}/cancel"), 404)
    error(b.post("/v1/workflows/runs", {"workflow_id": workflow_id,
                                        "json_inputs": {"data": {}}}), 404, "WORKFLOW_NOT_FOUND")
    error(b.post(f"/v1/workflows/{workflow_id}/spec/apply", {"yaml_definition": ECHO}), 404)
    assert run_id not in [r["id"] for r in b.get("/v1/workflows/runs", limit=1000).json()["data"]]
    assert workflow_id not in [w["id"] for w in b.get("/v1/workflows", limit=1000).json()["data"]]
    assert a.get("/v1/workflows/steps/done", run_id=run_id).status_code == 200
    own = start_echo(b)
    assert [r["id"] for r in b.get("/v1/workflows/runs", limit=1000).json()["data"]] == [own["id"]]
    assert own["id"] not in [r["id"] for r in a.get("/v1/workflows/runs", limit=1000).json()["data"]]


def test_reviews_are_isolated_too(a: Api, b: Api) -> None:
    applied = a.post("/v1/workflows/spec/apply", {"yaml_definition": REVIEWED}).json()
    run = a.post("/v1/workflows/runs", {"workflow_id": applied["workflow_id"],
                                        "json_inputs": {"claim": {"amount": 1}}}).json()
    finished(a, run["id"], ("awaiting_review",))
    [review] = a.get("/v1/workflows/reviews", run_id=run["id"]).json()["data"]
    assert b.get("/v1/workflows/reviews", decision_status="all").json()["data"] == []
    error(b.get(f"/v1/workflows/reviews/{review['id']}"), 404)
    error(b.get("/v1/workflows/reviews/versions", review_id=review["id"]), 404)
    error(b.get(f"/v1/workflows/reviews/versions/{review['proposed_version_id']}"), 404)
    error(b.post(f"/v1/workflows/reviews/{review['id']}/approve",
                 {"version_id": review["proposed_version_id"]}), 404)
    assert a.post(f"/v1/workflows/runs/{run['id']}/cancel").json()["cancellation_status"] \
        == "cancelled"
    cancelled = a.get("/v1/workflows/reviews", run_id=run["id"], decision_status="cancelled")
    assert cancelled.json()["data"][0]["cancelled_at"] is not None


# --------------------------------------------------------------------------- bad input


def test_malformed_cursors_and_limits_are_422(a: Api) -> None:
    run_id = start_echo(a)["id"]
    error(a.get("/v1/workflows/steps", run_id=run_id, after="no-such-step"), 422, "INVALID_CURSOR")
    error(a.get("/v1/workflows/steps", run_id=run_id, before="%00\u2603"), 422, "INVALID_CURSOR")
    error(a.get("/v1/workflows/runs", after="run_garbage"), 422, "INVALID_CURSOR")
    error(a.get("/v1/workflows/reviews", after="rev_garbage"), 422, "INVALID_CURSOR")
    error(a.get("/v1/workflows", after="wf_garbage"), 422, "INVALID_CURSOR")
    error(a.get("/v1/workflows/steps", run_id=run_id, after="data", before="done"), 400,
          "CONFLICTING_PARAMETERS")  # Retab answers a bad scope 400
    error(a.get("/v1/workflows/runs", limit=0), 422, "VALIDATION_ERROR")
    error(a.get("/v1/workflows/runs", limit="ten"), 422, "VALIDATION_ERROR")
    error(a.get("/v1/workflows/steps", run_id=run_id, limit=1001), 422, "VALIDATION_ERROR")
    error(a.get("/v1/workflows/steps"), 400, "MISSING_PARAMETER")  # run_id is required
    error(a.get("/v1/workflows/steps", run_id="run_missing"), 404, "NOT_FOUND")


def test_unknown_filters_and_bad_values_are_422(a: Api) -> None:
    run_id = start_echo(a)["id"]
    detail = error(a.get("/v1/workflows/runs", colour="red"), 422, "UNKNOWN_PARAMETER")
    assert detail["details"]["unknown"] == ["colour"] and "status" in detail["details"]["allowed"]
    error(a.get("/v1/workflows/steps", run_id=run_id, node="x"), 422, "UNKNOWN_PARAMETER")
    error(a.get("/v1/workflows/steps", run_id=run_id, status="weird"), 422, "INVALID_PARAMETER")
    error(a.get("/v1/workflows/steps", run_id=run_id, block_type="bogus"), 422,
          "INVALID_PARAMETER")
    error(a.get("/v1/workflows/runs", status="exploded"), 422, "INVALID_PARAMETER")
    error(a.get("/v1/workflows/runs", trigger_type="pigeon"), 422, "INVALID_PARAMETER")
    error(a.get("/v1/workflows/runs", from_date="yesterday"), 422, "INVALID_PARAMETER")
    error(a.get("/v1/workflows/runs", metadata="{not json"), 422, "INVALID_PARAMETER")
    error(a.get("/v1/workflows/runs", order="sideways"), 422, "VALIDATION_ERROR")
    error(a.get("/v1/workflows/reviews", decision_status="maybe"), 422, "VALIDATION_ERROR")


def test_run_filters(a: Api) -> None:
    run = start_echo(a, {"tag": "filters"})
    listed = a.get("/v1/workflows/runs", status="completed", trigger_type="api",
                   from_date="2000-01-01", to_date="2999-12-31", min_duration_ms=0,
                   search=run["id"][4:12], limit=5).json()
    assert [r["id"] for r in listed["data"]] == [run["id"]]
    assert listed["list_metadata"] == {"before": None, "after": None}
    assert a.get("/v1/workflows/runs", status="failed", search=run["id"]).json()["data"] == []
    assert a.get("/v1/workflows/runs", exclude_status="completed",
                 search=run["id"]).json()["data"] == []
    assert a.get("/v1/workflows/runs", to_date="2001-01-01").json()["data"] == []
    assert a.get("/v1/workflows/runs", metadata='{"k": "v"}').json()["data"] == []
    newest, oldest = (a.get("/v1/workflows/runs", order=o, limit=1).json() for o in ("desc", "asc"))
    assert newest["data"][0]["id"] == run["id"] and oldest["list_metadata"]["after"] is not None
    following = a.get("/v1/workflows/runs", order="asc", limit=1,
                      after=oldest["list_metadata"]["after"]).json()
    assert following["data"][0]["id"] != oldest["data"][0]["id"]
    assert following["list_metadata"]["before"] == following["data"][0]["id"]


def test_bad_documents_and_inputs_persist_nothing(a: Api, db: Path) -> None:
    workflow_id = a.post("/v1/workflows/spec/apply", {"yaml_definition": ORDER_WITH_INVOICE}
                         ).json()["workflow_id"]
    before = counts(db)

    def create(**body: Any) -> httpx.Response:
        return a.post("/v1/workflows/runs", {"workflow_id": workflow_id, **body})

    def doc(url: str) -> dict[str, Any]:
        return {"documents": {"upload": {"filename": "x.pdf", "url": url}},
                "json_inputs": {"order": ORDER}}

    for url in ("data:application/pdf;base64,@@@not-base64@@@", "data:application/pdf;base64",
                "data:application/pdf;base64,", "data:nonsense;base64,AAAA",
                "https://example.invalid/invoice.pdf", "file:///etc/passwd", str(INVOICE_PDF),
                "ftp://x/y", "relative/path.pdf"):
        assert "documents.upload" in error(create(**doc(url)), 422, "INVALID_DOCUMENT")["message"]
    good = {"upload": {"filename": "x.pdf", "url": PDF_URL}}
    error(create(documents=good), 422, "INVALID_INPUT")  # json input missing
    error(create(documents=good, json_inputs={"order": ORDER, "ghost": 1}), 422, "INVALID_INPUT")
    error(create(json_inputs={"order": ORDER, "upload": {}}), 422, "INVALID_INPUT")
    detail = error(create(documents=good, json_inputs={"order": {"lines": "many"}}), 422,
                   "INVALID_INPUT")
    assert detail["details"]["problems"][0]["path"] == "lines"
    error(create(documents={"upload": {"url": 5}}, json_inputs={"order": ORDER}), 422,
          "VALIDATION_ERROR")
    error(create(json_inputs={"order": ORDER}, colour="red"), 422, "VALIDATION_ERROR")
    error(a.post("/v1/workflows/runs", {"workflow_id": "wf_unknown", "json_inputs": {}}), 404,
          "WORKFLOW_NOT_FOUND")
    error(create(version="ver_0000", json_inputs={"order": ORDER}, documents=good), 404,
          "WORKFLOW_NOT_FOUND")
    bad_json = a.http.post("/v1/workflows/runs", content=b"{not json",
                           headers={"content-type": "application/json"})
    error(bad_json, 422, "VALIDATION_ERROR")
    assert counts(db) == before
    ok = create(documents=good, json_inputs={"order": ORDER})
    assert ok.status_code == 200, ok.text
    finished(a, ok.json()["id"])


def test_run_metadata_over_its_limits_is_422_and_stores_nothing(a: Api, b: Api, db: Path
                                                               ) -> None:
    workflow_id = a.post("/v1/workflows/spec/apply", {"yaml_definition": ECHO}).json()[
        "workflow_id"]

    def create(api: Api, metadata: Any) -> httpx.Response:
        return api.post("/v1/workflows/runs", {"workflow_id": workflow_id,
                                               "json_inputs": {"data": {"n": 1}},
                                               "metadata": metadata})

    before = counts(db)
    over = {  # limit -> metadata just over it
        "keys": {f"k{i}": "v" for i in range(51)},
        "key_length": {"k" * 41: "v"},
        "value_length": {"note": "x" * 501},
        "size": {f"k{i}": "x" * 450 for i in range(19)},  # each value fits, not all of them
        # 10 values of 300 three-byte characters: 9,000 bytes although 3,000 characters
        "multibyte": {f"k{i}": "€" * 300 for i in range(10)},
    }
    for name, metadata in over.items():
        detail = error(create(a, metadata), 422, "INVALID_INPUT")
        limit = "size" if name == "multibyte" else name
        assert detail["details"]["limit"] == limit and detail["details"]["field"] == "metadata"
        maximum = {"keys": 50, "key_length": 40, "value_length": 500, "size": 8192}[limit]
        assert detail["details"]["max"] == maximum and detail["details"]["actual"] > maximum
        assert f"{maximum:,}" in detail["message"] and "json_inputs" in detail["message"]
    assert "'kkkk" in error(create(a, over["key_length"]), 422)["message"]
    # malformed: not string pairs (so never nested), or not an object
    for metadata in ({"a": {"b": "c"}}, {"a": ["b"]}, {"a": 1}, ["a", "b"], "a=b"):
        error(create(a, metadata), 422, "VALIDATION_ERROR")
    error(create(a, {"\x00\u202e": "v"}), 422, "INVALID_INPUT")
    # a key the runs list's filter could never match (a JSON path cannot spell it)
    for key in ('a"b', "a\\b"):
        detail = error(create(a, {key: "v"}), 422, "INVALID_INPUT")
        assert detail["details"]["limit"] == "key_characters" and "backslash" in detail["message"]
        filtered = error(a.get("/v1/workflows/runs", metadata=json.dumps({key: "v"})), 422,
                         "INVALID_PARAMETER")
        assert filtered["details"]["key"] == key
    # another organization's workflow is 404 whatever the metadata, as an unknown one
    error(create(b, {"team": "b"}), 404, "WORKFLOW_NOT_FOUND")
    error(create(b, over["keys"]), 404, "WORKFLOW_NOT_FOUND")
    assert counts(db) == before
    # at the limits: 50 keys of 40 characters, values up to 500 characters, under 8 KiB
    at_limits = {f"{i:02d}".ljust(40, "k"): "v" * 100 for i in range(49)}
    at_limits["note"] = "n" * 500
    ok = create(a, at_limits)
    assert ok.status_code == 200, ok.text
    run = finished(a, ok.json()["id"])
    assert run["metadata"] == at_limits
    listed = a.get("/v1/workflows/runs", metadata='{"note": "' + "n" * 500 + '"}').json()
    assert [r["id"] for r in listed["data"]] == [run["id"]]
    assert b.get("/v1/workflows/runs", metadata='{"note": "' + "n" * 500 + '"}'
                 ).json()["data"] == []
    error(b.get(f"/v1/workflows/runs/{run['id']}"), 404)
    # a filter of more pairs than a run takes is refused, not run against every row
    too_many = "{" + ", ".join(f'"k{i}": "v"' for i in range(51)) + "}"
    detail = error(a.get("/v1/workflows/runs", metadata=too_many), 422, "INVALID_PARAMETER")
    assert detail["details"] == {"parameter": "metadata", "max": 50, "actual": 51}


def test_oversized_bodies_are_413(a: Api, db: Path) -> None:
    before = counts(db)
    big = "data:application/pdf;base64," + base64.b64encode(b"%PDF" + b"0" * CAP).decode()
    body = {"workflow_id": "wf_x", "documents": {"upload": {"url": big}}}
    detail = error(a.post("/v1/workflows/runs", body), 413, "PAYLOAD_TOO_LARGE")
    assert detail["details"]["max_bytes"] == CAP

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        yield b'{"yaml_definition": "'
        for _ in range(CAP // 1024 + 2):
            yield b"x" * 1024
        yield b'"}'

    streamed = a.http.post("/v1/workflows/spec/apply", content=chunks(),
                           headers={"content-type": "application/json"})
    error(streamed, 413, "PAYLOAD_TOO_LARGE")
    assert counts(db) == before


def test_invalid_yaml_registers_nothing(a: Api, db: Path) -> None:
    before = counts(db)
    for path in ("/v1/workflows/spec/apply", "/v1/workflows/spec/validate",
                 "/v1/workflows/spec/plan"):
        error(a.post(path, {"yaml_definition": "spec: [unclosed"}), 422, "INVALID_YAML")
        error(a.post(path, {"yaml_definition": "- just\n- a list\n"}), 422, "INVALID_YAML")
        error(a.post(path, {"yaml_definition": ""}), 422)
        invalid = error(a.post(path, {"yaml_definition": ECHO.replace("type: end", "type: ned")}),
                        422, "INVALID_WORKFLOW")
        assert invalid["details"]["diagnostics"][0]["yaml_path"].startswith("spec.blocks.done")
        error(a.post(path, {"yaml": ECHO}), 422, "VALIDATION_ERROR")
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefghijklmn", "bcdefghijklmno"))
    error(a.post("/v1/workflows/spec/apply", {"yaml_definition": bomb}), 422, "INVALID_YAML")
    error(a.post("/v1/workflows/wf_missing/spec/apply", {"yaml_definition": ECHO}), 404)
    assert counts(db) == before


def test_routes_methods_and_conflicts(a: Api) -> None:
    error(a.get("/v1/nothing-here"), 404, "ROUTE_NOT_FOUND")
    error(a.http.delete("/v1/workflows/runs"), 405, "METHOD_NOT_ALLOWED")
    run_id = start_echo(a)["id"]
    error(a.post(f"/v1/workflows/runs/{run_id}/cancel"), 409, "RUN_ALREADY_ENDED")
    other = start_echo(a)["id"]
    conflict = error(a.get("/v1/workflows/steps/done"), 409, "CONFLICT")
    assert run_id in conflict["message"] and other in conflict["message"]


# --------------------------------------------------------------------------- file paths


def test_file_path_documents_only_when_allowed(tmp_path: Path) -> None:
    db = tmp_path / "paths.db"
    with LiveServer(create_app(db, api_keys={A: "org_a"}, allow_file_paths=True)) as live:
        api = Api(live.url, A)
        workflow_id = api.post("/v1/workflows/spec/apply", {"yaml_definition": ORDER_WITH_INVOICE}
                               ).json()["workflow_id"]
        for url in (INVOICE_PDF.as_uri(), str(INVOICE_PDF)):
            created = api.post("/v1/workflows/runs", {
                "workflow_id": workflow_id, "json_inputs": {"order": ORDER},
                "documents": {"upload": {"url": url}}})
            assert created.status_code == 200, created.text
            run = finished(api, created.json()["id"])
            assert run["lifecycle"]["status"] == "completed"
            assert run["inputs"]["documents"]["upload"]["filename"] == "invoice.pdf"
        missing = api.post("/v1/workflows/runs", {
            "workflow_id": workflow_id, "json_inputs": {"order": ORDER},
            "documents": {"upload": {"url": str(tmp_path / "nope.pdf")}}})
        error(missing, 422, "INVALID_DOCUMENT")


def test_out_of_range_numbers_are_422(a: Api) -> None:
    for name in ("min_duration_ms", "max_duration_ms"):
        error(a.get("/v1/workflows/runs", **{name: 2**70}), 422, "VALIDATION_ERROR")
        error(a.get("/v1/workflows/runs", **{name: -1}), 422, "VALIDATION_ERROR")
    error(a.get("/v1/workflows/runs", limit=2**70), 422, "VALIDATION_ERROR")


def test_json_nested_past_the_stack_is_422_not_a_crash(a: Api) -> None:
    detail = error(a.get("/v1/workflows/runs", metadata="[" * 5000), 422, "INVALID_PARAMETER")
    assert "metadata" in detail["message"]
    deep = '{"workflow_id": "wf_x", "json_inputs": {"data": ' + "[" * 5000 + "]" * 5000 + "}}"
    before = a.get("/v1/workflows/runs", limit=100).json()["data"]
    for body in (deep.encode(), b'{"workflow_id": "\xff"}'):
        response = a.http.post("/v1/workflows/runs", content=body,
                               headers={"content-type": "application/json"})
        assert "64 levels" in error(response, 422, "INVALID_INPUT")["message"]
    assert a.get("/v1/workflows/runs").status_code == 200
    assert a.get("/v1/workflows/runs", limit=100).json()["data"] == before  # nothing stored


def test_applying_again_updates_a_workflow_whose_id_another_organization_holds(
        a: Api, b: Api) -> None:
    text = ECHO.replace("name: Echo", "name: Shadowed echo")

    def apply(api: Api, yaml: str) -> dict[str, Any]:
        response = api.post("/v1/workflows/spec/apply", {"yaml_definition": yaml})
        assert response.status_code == 200, response.text
        return dict(response.json())

    assert apply(a, text)["workflow_id"] == "wf_shadowed_echo"
    theirs = apply(b, text)
    assert theirs["action"] == "create" and theirs["workflow_id"] != "wf_shadowed_echo"
    again = apply(b, text)
    assert (again["action"], again["workflow_id"]) == ("noop", theirs["workflow_id"])
    edited = text.replace("data: {type: start_json, label: Data}",
                          "data: {type: start_json, label: Data, "
                          "config: {json_schema: {type: object}}}")
    planned = b.post("/v1/workflows/spec/plan", {"yaml_definition": edited}).json()
    assert (planned["action"], planned["workflow_id"]) == ("update", theirs["workflow_id"])
    updated = apply(b, edited)
    assert (updated["action"], updated["workflow_id"]) == ("update", theirs["workflow_id"])
    names = [w["name"] for w in b.get("/v1/workflows", limit=1000).json()["data"]]
    assert names.count("Shadowed echo") == 1
    error(a.get(f"/v1/workflows/{theirs['workflow_id']}"), 404)
