"""The web UI over other stores: the memory store and PostgreSQL (when the tests have a
server, :mod:`tests.postgres`) serve the same pages and take the same actions as SQLite."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine import Engine, Workflow
from engine.contracts.store import Store
from engine.server import app_state, create_app
from engine.server.config import ServerConfig
from engine.server.ui.feed import POLL_S
from store.memory import MemoryStore
from tests.ui.conftest import LOCAL, csrf_of, wait_status
from tests.ui.workflows import CHATTY_YAML, Seeded, chatty_inputs, seed_engine


def _open(kind: str) -> tuple[Store, str | None]:
    if kind == "memory":
        return MemoryStore(), None
    from store.pg import PostgresStore
    from tests.postgres import fresh_schema

    schema, url = fresh_schema()
    return PostgresStore(url), schema


@pytest.fixture(params=["memory", "postgresql"], scope="module")
def seeded_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[Store, Seeded]]:
    """A store of one kind with the UI tests' runs (made once per module)."""
    store, schema = _open(request.param)
    try:
        with Engine(store=store) as engine:
            runs = seed_engine(engine, tmp_path_factory.mktemp("any-store"))
        yield store, runs
    finally:
        store.close()
        if schema is not None:
            from tests.postgres import drop

            drop(schema)


@pytest.fixture
def client(seeded_store: tuple[Store, Seeded]) -> Iterator[tuple[TestClient, Seeded]]:
    store, runs = seeded_store
    config = ServerConfig(api_keys={"sk_gen": "org_local"}, generated_key="sk_gen")
    with TestClient(create_app(store, config=config), base_url=LOCAL) as test_client:
        yield test_client, runs


def test_pages(client: tuple[TestClient, Seeded]) -> None:
    test_client, runs = client
    home = test_client.get("/").text
    for run_id in (runs.review, runs.items, runs.hostile, runs.chatty):
        assert f'href="/runs/{run_id}"' in home
    assert "26/30" in home and "Item checks" in home
    run = test_client.get(f"/runs/{runs.items}").text
    assert "26/30 items, 4 failed" in run and "branch_not_selected" in run
    assert "Rerun the 4 failed items" in run
    iterations = test_client.get(f"/runs/{runs.items}/iterations", params={"step": "each"})
    assert iterations.text.count('class="failed"') == 4
    step = test_client.get(f"/runs/{runs.items}/steps/each_iter_3_check").text
    assert "item 3 is not allowed" in step
    logs = test_client.get(f"/runs/{runs.chatty}/steps/talk").text
    assert "attempt 1 starting" in logs and "all done" in logs and "✂ 1 cut" in logs
    extract = test_client.get(f"/runs/{runs.review}/steps/read_invoice").text
    image = re.search(r'src="(/runs/[^"]+/pages/1\.png)"', extract)
    assert image and test_client.get(image.group(1)).content.startswith(b"\x89PNG")
    with test_client.stream("GET", f"/ui/events?run={runs.items}") as stream:
        assert "event: end" in "".join(stream.iter_text())


def test_review_and_rerun(client: tuple[TestClient, Seeded]) -> None:
    test_client, runs = client
    queue = test_client.get("/reviews").text
    review_id = re.search(r'href="/reviews/(rev_[0-9a-f]+)"', queue).group(1)
    page = test_client.get(f"/reviews/{review_id}").text
    fields = dict(re.findall(r'name="(field\.[a-z_]+)" value="([^"]*)"', page))
    done = test_client.post(f"/reviews/{review_id}/decide", data={
        **fields, "field.total_amount": "999.5", "csrf_token": csrf_of(page),
        "decision": "approve"}, follow_redirects=False)
    assert done.headers["location"].endswith("notice=approved")
    versions = test_client.get("/v1/workflows/reviews/versions",
                               params={"review_id": review_id},
                               headers={"Api-Key": "sk_gen"}).json()["data"]
    assert [v["snapshot"].get("total_amount") for v in versions][1] == 999.5
    assert wait_status(test_client, runs.review, {"completed", "error"}) == "completed"
    run = test_client.get(f"/runs/{runs.items}").text
    moved = test_client.post(f"/runs/{runs.items}/rerun",
                             data={"csrf_token": csrf_of(run), "failed": "1"},
                             follow_redirects=False)
    found = re.match(r"/runs/(run_\w+)\?notice=rerun_failed_started",
                     moved.headers["location"])
    assert found, moved.headers["location"]
    assert wait_status(test_client, found.group(1), {"completed", "error"}) == "completed"
    assert "26/30 items, 4 failed" in test_client.get(f"/runs/{found.group(1)}").text


def test_the_feed_sees_commits(client: tuple[TestClient, Seeded], tmp_path: Path) -> None:
    test_client, _ = client
    feed = test_client.app.state.stepwell_ui.feed  # type: ignore[attr-defined]
    before = feed.version()
    state = app_state(test_client.app)  # type: ignore[arg-type]
    state.engine.run(Workflow.from_yaml(CHATTY_YAML), chatty_inputs(tmp_path))
    time.sleep(POLL_S * 1.5)
    assert feed.version() != before
