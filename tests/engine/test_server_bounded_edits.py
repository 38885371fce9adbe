"""Graph edits and evals over HTTP are bounded JSON: a body nested past the depth cap or
holding NaN is refused with 422 and stores nothing, so the draft's listings keep working."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from engine.server.app import create_app


def deep(levels: int) -> dict[str, Any]:
    """``{"a": {"a": ... {}}}`` nested ``levels`` deep."""
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


KEY = "k" * 32


def post(client: TestClient, path: str, body: dict[str, Any]) -> Any:
    # json.dumps, not json=: the client's encoder refuses NaN before it is sent
    return client.post(path, content=json.dumps(body),
                       headers={"content-type": "application/json", "Api-Key": KEY})


def test_deep_or_nan_graph_edits_are_refused_and_the_draft_still_lists(tmp_path: Path) -> None:
    with TestClient(create_app(tmp_path / "s.db", api_keys={KEY: "org_a"})) as client:
        wid = post(client, "/v1/workflows", {"name": "bounded", "project_id": "p"}).json()["id"]
        config = {"code": "def transform(x):\n    return {}\n", "output_schema": deep(300)}
        refused = post(client, "/v1/workflows/blocks",
                       {"workflow_id": wid, "type": "function", "id": "f", "config": config})
        assert refused.status_code == 422, refused.text
        assert "nested at most" in refused.json()["detail"]["message"]
        nan = post(client, "/v1/workflows/blocks", {"workflow_id": wid, "type": "note",
                                                     "id": "n", "position_x": float("nan")})
        assert nan.status_code == 422, nan.text
        listed = client.get("/v1/workflows/blocks", params={"workflow_id": wid},
                            headers={"Api-Key": KEY})
        assert listed.status_code == 200
        assert [b["id"] for b in listed.json()["data"]] == ["document"]
