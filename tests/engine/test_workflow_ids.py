"""Workflow ids: metadata.id when given, else a stable id from the name; versions by digest."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import Engine, load_workflow
from engine.contracts.errors import WorkflowValidationError
from engine.definition import Workflow

ROOT = Path(__file__).resolve().parents[2]
PRICE_ITEMS = ROOT / "examples" / "price_items" / "workflow.yaml"


@pytest.mark.parametrize(("name", "expected"), [
    ("Ticket triage", "wf_ticket_triage"),
    ("  Invoices -> ERP (v2) ", "wf_invoices_erp_v2"),
    ("Überweisung prüfen", "wf_uberweisung_prufen"),
])
def test_the_id_comes_from_the_name(name: str, expected: str) -> None:
    assert Workflow(name=name).workflow_id() == expected


def test_a_name_without_ascii_gets_a_hash() -> None:
    workflow_id = Workflow(name="工作流").workflow_id()
    assert workflow_id.startswith("wf_") and len(workflow_id) == 19
    assert workflow_id == Workflow(name="工作流").workflow_id()


def test_metadata_id_wins_and_survives_a_round_trip() -> None:
    data = load_workflow(PRICE_ITEMS).to_dict()
    data["metadata"]["id"] = "po-pricing"
    workflow = Workflow.from_dict(data)
    assert workflow.workflow_id() == "po-pricing"
    assert Workflow.from_dict(workflow.to_dict()).workflow_id() == "po-pricing"


def test_a_bad_metadata_id_is_a_validation_error() -> None:
    data = load_workflow(PRICE_ITEMS).to_dict()
    data["metadata"]["id"] = "no spaces/please"
    with pytest.raises(WorkflowValidationError, match="INVALID_WORKFLOW_ID"):
        Engine(":memory:").compile(Workflow.from_dict(data))


def test_runs_keep_the_id_across_edits_and_the_digest_tells_versions_apart(
        tmp_path: Path) -> None:
    edited = tmp_path / "edited.yaml"
    edited.write_text(PRICE_ITEMS.read_text().replace("max_concurrency: 2",
                                                      "max_concurrency: 3"))
    order = {"order": {"items": [{"sku": "bolt", "qty": 4}]}}
    with Engine(tmp_path / "db") as engine:
        first = engine.client.workflows.runs.get(engine.run(PRICE_ITEMS, order).run_id)
        second = engine.client.workflows.runs.get(engine.run(edited, order).run_id)
    assert first.workflow_id == second.workflow_id == "wf_price_items"
    assert first.workflow_version_id != second.workflow_version_id


def test_the_server_uses_the_same_ids(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from engine.server import create_app

    text = PRICE_ITEMS.read_text()
    app = create_app(tmp_path / "db", api_keys={"sk_a": "org_a", "sk_b": "org_b"})
    with TestClient(app) as client:
        def apply(yaml: str, key: str = "sk_a") -> str:
            response = client.post("/v1/workflows/spec/apply", json={"yaml_definition": yaml},
                                   headers={"Api-Key": key})
            assert response.status_code == 200, response.text
            return str(response.json()["workflow_id"])

        assert apply(text) == "wf_price_items"
        edited = text.replace("max_concurrency: 2", "max_concurrency: 3")
        assert apply(edited) == "wf_price_items"  # a new version of the same workflow
        got = client.get("/v1/workflows/wf_price_items", headers={"Api-Key": "sk_a"}).json()
        assert got["id"] == "wf_price_items"
        other = apply(text, key="sk_b")  # another organization: its own workflow
        assert other != "wf_price_items"
        assert client.get(f"/v1/workflows/{other}",
                          headers={"Api-Key": "sk_a"}).status_code == 404
        named = text.replace("name: Price items", "name: Price items\n  id: po-pricing")
        assert apply(named) == "po-pricing"
