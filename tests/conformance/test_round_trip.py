"""Round trip: load -> export YAML -> load gives the same graph, for every conformance
workflow and every example."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.definition import Workflow, load_workflow
from engine.export import graph_signature, round_trip_problems, to_yaml
from tests.conformance.runner import WORKFLOWS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILES = sorted(WORKFLOWS.glob("*.y*ml")) + sorted(WORKFLOWS.glob("*.json")) + sorted(
    EXAMPLES.glob("*/workflow.yaml"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_export_reads_back_to_the_same_graph(path: Path) -> None:
    workflow = load_workflow(path)
    assert round_trip_problems(workflow) == []
    again = Workflow.from_yaml(to_yaml(workflow))
    assert again.load_diagnostics == [] or all(
        d.severity == "warning" for d in again.load_diagnostics)
    assert graph_signature(again) == graph_signature(workflow)


def test_export_is_declarative_yaml_with_nested_children() -> None:
    text = to_yaml(load_workflow(WORKFLOWS / "while_loop.yaml"))
    data = yaml.safe_load(text)
    assert data["apiVersion"] == "workflows.retab.com/v1alpha2"
    assert list(data["spec"]["blocks"]["refine"]["children"]) == ["step"]
    assert "code: |" in text  # code stays readable
    assert data["spec"]["blocks"]["refine"]["config"]["termination_conditions"] == [
        {"path": "data.status", "operator": "is_equal_to", "value": "complete"}]


def test_graph_json_exports_as_declarative() -> None:
    data = yaml.safe_load(to_yaml(load_workflow(WORKFLOWS / "graph_rest.json")))
    assert set(data["spec"]["blocks"]) == {"start-1", "extract-1"}
    assert data["spec"]["edges"] == [{
        "source": {"block": "start-1", "handle": "output-file-0"},
        "target": {"block": "extract-1", "handle": "input-file-0"}, "id": "edge-1"}]
