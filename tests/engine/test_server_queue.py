"""``stepwell serve --queue`` replicas over one PostgreSQL database, with a worker.

Two servers share the database and hold no state of their own: a run created through
one is queued (neither executes it), both show it, a worker executes it, a review
approved through the other queues it again; organizations stay isolated and a bad
request stores nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from engine.core import Engine
from engine.server import create_app
from engine.worker import Worker, WorkerOptions
from tests.engine.live_server import LiveServer
from tests.engine.server_workflows import ECHO, REVIEWED
from tests.postgres import pg_url  # noqa: F401 - a fixture

A, B = "sk_org_a", "sk_org_b"


@pytest.fixture
def replicas(pg_url: str  # noqa: F811
             ) -> Iterator[tuple[httpx.Client, httpx.Client, httpx.Client]]:
    """Two servers on one database: org A's client on each, org B's on the second."""
    keys = {A: "org_a", B: "org_b"}
    with LiveServer(create_app(pg_url, api_keys=keys, queue=True)) as one, \
            LiveServer(create_app(pg_url, api_keys=keys, queue=True)) as two:
        clients = (httpx.Client(base_url=one.url, headers={"Api-Key": A}, timeout=30),
                   httpx.Client(base_url=two.url, headers={"Api-Key": A}, timeout=30),
                   httpx.Client(base_url=two.url, headers={"Api-Key": B}, timeout=30))
        yield clients
        for client in clients:
            client.close()


def _work(url: str) -> None:
    with Engine(url) as engine:
        anyio.run(Worker(engine, WorkerOptions(idle_exit_s=0.3, poll_s=0.05)).run)


def _status(client: httpx.Client, run_id: str) -> str:
    response = client.get(f"/v1/workflows/runs/{run_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["lifecycle"]["status"])


def _start(client: httpx.Client, yaml: str, inputs: dict[str, Any]) -> str:
    applied = client.post("/v1/workflows/spec/apply", json={"yaml_definition": yaml})
    assert applied.status_code == 200, applied.text
    run = client.post("/v1/workflows/runs", json={"workflow_id": applied.json()["workflow_id"],
                                                  "json_inputs": inputs})
    assert run.status_code == 200, run.text
    return str(run.json()["id"])


def test_replicas_queue_runs_and_a_worker_executes_them(
        pg_url: str, replicas: tuple[httpx.Client, ...]) -> None:  # noqa: F811
    one, two, other_org = replicas
    run_id = _start(one, ECHO, {"data": {"n": 1}})
    time.sleep(0.3)  # neither server executes it: it stays queued (``pending`` to the SDK)
    assert _status(one, run_id) == _status(two, run_id) == "pending"
    with Engine(pg_url) as engine:
        assert engine.store.load_run(run_id).status == "queued"
    assert other_org.get(f"/v1/workflows/runs/{run_id}").status_code == 404
    _work(pg_url)
    assert _status(two, run_id) == "completed"
    steps = two.get("/v1/workflows/steps", params={"run_id": run_id}).json()["data"]
    assert {s["block_id"] for s in steps} == {"data", "done"}


def test_a_review_approved_on_another_replica_continues_on_a_worker(
        pg_url: str, replicas: tuple[httpx.Client, ...]) -> None:  # noqa: F811
    one, two, other_org = replicas
    run_id = _start(one, REVIEWED, {"claim": {"amount": 7}})
    _work(pg_url)
    assert _status(two, run_id) == "awaiting_review"
    [review] = two.get("/v1/workflows/reviews", params={"run_id": run_id}).json()["data"]
    approve = f"/v1/workflows/reviews/{review['id']}/approve"
    assert other_org.post(approve, json={"version_id": review["proposed_version_id"]}
                          ).status_code == 404
    decided = two.post(approve, json={"version_id": review["proposed_version_id"]})
    assert decided.status_code == 200, decided.text
    assert decided.json()["resume_status"] == "queued"
    _work(pg_url)
    assert _status(one, run_id) == "completed"


def test_a_bad_run_request_stores_nothing(pg_url: str,  # noqa: F811
                                          replicas: tuple[httpx.Client, ...]) -> None:
    one, _two, _other = replicas
    before = one.get("/v1/workflows/runs", params={"limit": 100}).json()["data"]
    assert one.post("/v1/workflows/runs", content=b"{not json",
                    headers={"Content-Type": "application/json"}).status_code in (400, 422)
    assert one.post("/v1/workflows/runs", json={"workflow_id": "wf_missing",
                                                "json_inputs": {}}).status_code == 404
    assert one.get("/v1/workflows/runs", params={"limit": 100}).json()["data"] == before
