"""Step logs over HTTP: served per organization, paged by seq, bad input refused."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine import Engine
from engine.plugins import block_registry
from engine.server import create_app
from tests.engine import observe_targets

A, B = "sk_logs_a", "sk_logs_b"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    folder = tmp_path_factory.mktemp("logs")
    workflow = folder / "each.yaml"
    workflow.write_text(observe_targets.each_workflow())
    db = folder / "stepwell.db"
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)  # what the command line does when logging is unconfigured
    try:
        with Engine(db, organization_id="org_a") as engine:
            run_id = engine.run(workflow, observe_targets.order(3)).run_id
    finally:
        root.setLevel(level)
    app = create_app(db, api_keys={A: "org_a", B: "org_b"})
    with TestClient(app) as client:
        yield client, run_id


def get(client: TestClient, key: str, path: str, **params: object) -> object:
    return client.get(path, params=params, headers={"Api-Key": key})


def test_a_steps_log_is_served_in_pages(served: tuple[TestClient, str]) -> None:
    client, run_id = served
    path = f"/v1/workflows/runs/{run_id}/steps/each_iter_1_work/logs"
    whole = get(client, A, path)
    assert whole.status_code == 200, whole.text
    body = whole.json()
    assert set(body) == {"data", "list_metadata"}
    assert [(line["stream"], line["message"]) for line in body["data"]] == [
        ("stdout", "pricing sku-1"), ("logging", "qty 2")]
    assert body["data"][1]["level"] == "INFO" and body["data"][0]["at"].endswith("Z")
    first = get(client, A, path, limit=1).json()
    assert first["list_metadata"]["after"] == "1"
    rest = get(client, A, path, after=first["list_metadata"]["after"]).json()
    assert [line["message"] for line in rest["data"]] == ["qty 2"]
    loop = get(client, A, f"/v1/workflows/runs/{run_id}/steps/each/logs").json()
    assert loop["data"][0]["message"].startswith("3 items, 2 at a time")


def test_another_organization_gets_404(served: tuple[TestClient, str]) -> None:
    client, run_id = served
    response = get(client, B, f"/v1/workflows/runs/{run_id}/steps/each_iter_1_work/logs")
    assert response.status_code == 404


@pytest.mark.parametrize("params", [{"after": "x"}, {"after": -1}, {"limit": 0},
                                    {"limit": 5000}, {"attempt": "first"}, {"bogus": 1}])
def test_bad_cursors_and_limits_are_4xx(served: tuple[TestClient, str],
                                        params: dict[str, object]) -> None:
    client, run_id = served
    response = get(client, A, f"/v1/workflows/runs/{run_id}/steps/each_iter_1_work/logs",
                   **params)
    assert 400 <= response.status_code < 500, response.text


def test_unknown_runs_and_steps_are_404(served: tuple[TestClient, str]) -> None:
    client, run_id = served
    assert get(client, A, f"/v1/workflows/runs/{run_id}/steps/nope/logs").status_code == 404
    assert get(client, A, "/v1/workflows/runs/run_nope/steps/each/logs").status_code == 404
    long = "x" * 600
    assert get(client, A, f"/v1/workflows/runs/{long}/steps/each/logs").status_code in (
        404, 422)


def test_serve_takes_custom_block_types(tmp_path: Path) -> None:
    registry = block_registry(["examples.fastapi_sse.app:ExpensePolicy"])
    app = create_app(tmp_path / "db", api_keys={A: "org_a"},
                     engine_options={"registry": registry})
    text = (Path(__file__).resolve().parents[2] / "examples" / "fastapi_sse"
            / "workflow.yaml").read_text()
    with TestClient(app) as client:
        response = client.post("/v1/workflows/spec/validate", json={"yaml_definition": text},
                               headers={"Api-Key": A})
    assert response.status_code == 200, response.text
