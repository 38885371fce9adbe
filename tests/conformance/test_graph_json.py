"""Graph JSON as Retab's REST API returns it (blocks list + edges list responses)."""

from __future__ import annotations

from pathlib import Path

from engine.definition import Workflow
from tests.conformance.runner import (
    close,
    diagnostics,
    errors,
    load,
    output,
    run,
    text_document,
)


def test_rest_graph_loads_with_warnings_for_server_keys() -> None:
    found = diagnostics("graph_rest")
    assert [d.render() for d in found if d.severity == "error"] == []
    ignored = sorted((d.code, d.path) for d in found if d.severity == "warning")
    assert ignored == [
        ("IGNORED_BLOCK_FIELD", "blocks[0].updated_at"),
        ("IGNORED_BLOCK_FIELD", "blocks[0].workflow_id"),
        ("IGNORED_BLOCK_FIELD", "blocks[1].draft_version"),
        ("IGNORED_BLOCK_FIELD", "blocks[1].organization_id"),
        ("IGNORED_BLOCK_FIELD", "blocks[1].updated_at"),
        ("IGNORED_BLOCK_FIELD", "blocks[1].workflow_id"),
        ("IGNORED_EDGE_FIELD", "edges[0].updated_at"),
        ("IGNORED_EDGE_FIELD", "edges[0].workflow_id"),
    ]


def test_rest_edges_use_source_block_and_target_block() -> None:
    (edge,) = load("graph_rest").edges
    assert (edge.source_block, edge.source_handle, edge.target_block, edge.target_handle) == (
        "start-1", "output-file-0", "extract-1", "input-file-0")


def test_rest_graph_runs_offline(tmp_path: Path) -> None:
    doc = text_document(tmp_path, "invoice.txt", "Invoice Number: INV-5\nTotal: 42.00\n")
    result = run(tmp_path / "db", "graph_rest", {"start-1": doc})
    try:
        assert result.ok, result.error
        assert output(result, "extract-1") == {"invoice_number": "INV-5", "total": 42.0}
    finally:
        close(result)


def test_source_and_source_block_that_disagree_are_an_error() -> None:
    graph = {"blocks": [{"id": "a", "type": "start_json"}, {"id": "b", "type": "note"},
                        {"id": "c", "type": "function", "config": {
                            "python": "json:dumps", "output_schema": {"type": "object"}}}],
             "edges": [{"source": "a", "source_block": "b", "target_block": "c"}]}
    found = errors(Workflow.from_graph(graph))
    assert [(d.code, d.path) for d in found] == [("INVALID_EDGE_ENDPOINT", "edges[0].source")]
    assert "source_block" in found[0].message and "'a'" in found[0].message
