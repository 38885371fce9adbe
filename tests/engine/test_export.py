"""YAML export (engine/export.py) and ``stepwell export``."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from engine.definition import Workflow
from engine.export import graph_signature, round_trip_problems, to_yaml

GRAPH = {
    "name": "graph",
    "blocks": [
        {"id": "loop", "type": "while_loop", "config": {"max_iterations": 2}},
        {"id": "step", "type": "function", "parent_id": "loop",
         "config": {"code": "def transform(x):\n    return x\n",
                    "output_schema": {"type": "object"}}},
        {"id": "seed", "type": "start_json", "position_x": 10, "position_y": 20},
    ],
    "edges": [{"source": "seed", "target": "loop", "source_handle": "output-json-0",
               "target_handle": "loop-left-in"}],
}


def test_graph_json_becomes_declarative_and_reads_back() -> None:
    workflow = Workflow.from_graph(GRAPH)
    text = to_yaml(workflow)
    data = yaml.safe_load(text)
    assert list(data["spec"]["blocks"]) == ["loop", "seed"]
    assert list(data["spec"]["blocks"]["loop"]["children"]) == ["step"]
    assert data["spec"]["blocks"]["seed"]["position"] == {"x": 10.0, "y": 20.0}
    assert "code: |" in text
    assert round_trip_problems(workflow) == []
    assert graph_signature(Workflow.from_yaml(text)) == graph_signature(workflow)


def test_a_changed_graph_is_reported() -> None:
    workflow = Workflow.from_graph(GRAPH)
    other = Workflow.from_graph({**GRAPH, "edges": []})
    assert graph_signature(workflow) != graph_signature(other)


def test_cli_export(tmp_path: Path) -> None:
    from engine.cli import app

    source = tmp_path / "graph.json"
    source.write_text(json.dumps(GRAPH))
    runner = CliRunner()
    printed = runner.invoke(app, ["export", str(source)])
    assert printed.exit_code == 0, printed.output
    assert yaml.safe_load(printed.output)["kind"] == "Workflow"
    target = tmp_path / "out.yaml"
    written = runner.invoke(app, ["export", str(source), "-o", str(target)])
    assert written.exit_code == 0
    assert graph_signature(Workflow.from_yaml(target.read_text())) == graph_signature(
        Workflow.from_graph(GRAPH))
    missing = runner.invoke(app, ["export", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2
