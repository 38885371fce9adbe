"""Loading workflows: declarative YAML/JSON, graph JSON, the builder, and to_dict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.contracts.errors import WorkflowLoadError
from engine.definition import API_VERSION, BlockDef, EdgeDef, Workflow, load_workflow
from engine.graph import compile_workflow
from tests.engine.test_graph import fake_registry

YAML = """\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: Price every order line
  description: one for_each
spec:
  blocks:
    order_in:
      type: start_json
      label: Orders
      position: {x: 0, y: 10}
    each_line:
      type: for_each
      config: {map_source_path: lines}
      width: 800
      height: 800
      children:
        price_line:
          type: function
          config:
            output_schema: {type: object}
        round_line: {type: functions, config: {output_schema: {type: object}}}
    sum_up:
      type: function
      config: {output_schema: {type: object}}
    memo: {type: note, config: {text: hello}}
  edges:
    - source: {block: order_in, handle: output-json-0}
      target: {block: each_line, handle: fe-left-in}
    - from: {block: price_line, handle: output-json-0}
      to: {block: round_line}
      id: e1
    - source_block: each_line
      source_handle: fe-right-out
      target_block: sum_up
      target_handle: input-json-0
"""

EXPECTED_BLOCKS = [
    ("order_in", "start_json", None, "spec.blocks.order_in"),
    ("each_line", "for_each", None, "spec.blocks.each_line"),
    ("price_line", "function", "each_line", "spec.blocks.each_line.children.price_line"),
    ("round_line", "functions", "each_line", "spec.blocks.each_line.children.round_line"),
    ("sum_up", "function", None, "spec.blocks.sum_up"),
    ("memo", "note", None, "spec.blocks.memo"),
]
EXPECTED_EDGES = [
    EdgeDef(source_block="order_in", source_handle="output-json-0", target_block="each_line",
            target_handle="fe-left-in", path="spec.edges[0]"),
    EdgeDef(source_block="price_line", source_handle="output-json-0",
            target_block="round_line", id="e1", path="spec.edges[1]"),
    EdgeDef(source_block="each_line", source_handle="fe-right-out", target_block="sum_up",
            target_handle="input-json-0", path="spec.edges[2]"),
]


def shape(wf: Workflow) -> list[tuple[str, str, str | None, str]]:
    return [(b.id, b.type, b.parent_id, b.path) for b in wf.blocks]


def codes(wf: Workflow) -> list[tuple[str, str]]:
    return [(d.code, d.path) for d in wf.load_diagnostics]


# ------------------------------------------------------------------ declarative


def test_yaml_in_all_three_edge_spellings() -> None:
    wf = Workflow.from_yaml(YAML, source="orders.yaml")
    assert (wf.name, wf.description, wf.api_version, wf.kind, wf.source) == (
        "Price every order line", "one for_each", API_VERSION, "Workflow", "orders.yaml")
    assert shape(wf) == EXPECTED_BLOCKS
    assert wf.edges == EXPECTED_EDGES
    assert wf.load_diagnostics == []
    order_in, each_line = wf.blocks[0], wf.blocks[1]
    assert (order_in.label, order_in.position) == ("Orders", {"x": 0.0, "y": 10.0})
    assert (each_line.config, each_line.width, each_line.height) == (
        {"map_source_path": "lines"}, 800.0, 800.0)
    assert wf.block("memo") == BlockDef(id="memo", type="note", config={"text": "hello"},
                                        path="spec.blocks.memo")
    assert compile_workflow(wf, fake_registry()).nodes["round_line"].type == "functions"


def test_json_has_the_same_structure_as_yaml() -> None:
    import yaml

    data = yaml.safe_load(YAML)
    from_text = Workflow.from_json(json.dumps(data), source="orders.json")
    from_dict = Workflow.from_json(data)
    assert shape(from_text) == shape(from_dict) == EXPECTED_BLOCKS
    assert from_text.edges == from_dict.edges == EXPECTED_EDGES


def test_structural_problems_become_diagnostics_not_exceptions() -> None:
    wf = Workflow.from_yaml("""
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata: {name: broken}
spec:
  blocks:
    a: {type: start_json}
    b: just a string
    c: {label: no type}
    d: {type: function, parent_id: a, config: [1]}
  edges:
    - source: {block: a}
    - source: {block: a}
      from: {block: a}
      target: {block: c}
    - source: {block: a}
      target_block: c
      target: {block: c}
    - source: {handle: output-json-0}
      target: {block: c}
    - target_block: c
      source_block: a
      colour: red
    - just text
""")
    assert codes(wf) == [
        ("INVALID_BLOCK_DEFINITION", "spec.blocks.b"),
        ("MISSING_BLOCK_TYPE", "spec.blocks.c.type"),
        ("UNKNOWN_BLOCK_FIELD", "spec.blocks.d.parent_id"),
        ("INVALID_CONFIG", "spec.blocks.d.config"),
        ("INVALID_EDGE_ENDPOINT", "spec.edges[0]"),
        ("INVALID_EDGE_ENDPOINT", "spec.edges[1].from"),
        ("INVALID_EDGE_ENDPOINT", "spec.edges[2].target_block"),
        ("INVALID_EDGE_ENDPOINT", "spec.edges[3].source.block"),
        ("UNKNOWN_EDGE_FIELD", "spec.edges[4].colour"),
        ("INVALID_EDGE_ENDPOINT", "spec.edges[5]"),
    ]
    messages = [d.message for d in wf.load_diagnostics]
    assert messages[4] == "The edge is missing the target endpoint."
    assert "given twice" in messages[5] and "both nested" in messages[6]
    assert "missing block" in messages[7]
    assert [b.id for b in wf.blocks] == ["a", "b", "c", "d"]  # kept, so edges still resolve
    assert [(e.source_block, e.target_block) for e in wf.edges] == [("a", "c")]
    assert wf.load_diagnostics[8].severity == "warning"


def test_duplicate_yaml_keys_are_reported_with_their_line() -> None:
    wf = Workflow.from_yaml("""apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata: {name: dup}
spec:
  blocks:
    a: {type: start_json}
    a: {type: function}
  edges: []
""")
    [diag] = wf.load_diagnostics
    assert (diag.code, diag.path) == ("DUPLICATE_BLOCK_ID", "spec.blocks.a")
    assert "again at line 7" in diag.message


def test_unparseable_text_raises_and_names_file_and_line() -> None:
    with pytest.raises(WorkflowLoadError) as info:
        Workflow.from_yaml("spec:\n  blocks: {a: [\n", source="wf.yaml")
    assert "wf.yaml" in str(info.value) and "line 3" in str(info.value)
    with pytest.raises(WorkflowLoadError, match=r"wf.json: invalid JSON at line 2"):
        Workflow.from_json('{\n  "spec": }', source="wf.json")
    with pytest.raises(WorkflowLoadError, match="root is a list, not a mapping"):
        Workflow.from_yaml("- a\n- b\n")
    with pytest.raises(WorkflowLoadError, match="root is empty"):
        Workflow.from_yaml("")


def test_missing_api_version_is_a_warning() -> None:
    wf = Workflow.from_yaml("kind: Workflow\nmetadata: {name: x}\nspec: {}\n")
    assert [(d.code, d.severity) for d in wf.load_diagnostics] == [
        ("MISSING_API_VERSION", "warning")]
    assert wf.api_version is None


# ------------------------------------------------------------------ graph JSON and builder

GRAPH = {
    "name": "graph",
    "blocks": [
        {"id": "s", "type": "start_json", "label": "Start", "position": {"x": 1, "y": 2}},
        {"id": "loop", "type": "while_loop", "config": {"max_iterations": 3},
         "position_x": 5, "position_y": 6},
        {"id": "f", "type": "function", "parent_id": "loop",
         "config": {"output_schema": {"type": "object"}}, "resolved_schemas": {}},
    ],
    "edges": [
        {"id": "e0", "source": "s", "target": "loop", "source_handle": "output-json-0",
         "target_handle": "loop-left-in", "animated": True},
        {"source": "loop", "target": "f", "source_handle": "loop-left-out",
         "target_handle": None},
    ],
}


def test_graph_json() -> None:
    wf = Workflow.from_graph(GRAPH, source="g.json")
    assert (wf.name, wf.api_version, wf.kind) == ("graph", None, None)
    assert [(b.id, b.type, b.parent_id, b.path) for b in wf.blocks] == [
        ("s", "start_json", None, "blocks[0]"), ("loop", "while_loop", None, "blocks[1]"),
        ("f", "function", "loop", "blocks[2]")]
    assert wf.blocks[1].position == {"x": 5.0, "y": 6.0}
    assert wf.edges == [
        EdgeDef(id="e0", source_block="s", source_handle="output-json-0", target_block="loop",
                target_handle="loop-left-in", path="edges[0]"),
        EdgeDef(source_block="loop", source_handle="loop-left-out", target_block="f",
                path="edges[1]"),
    ]
    assert wf.load_diagnostics == []
    graph = compile_workflow(wf, fake_registry())
    assert graph.incoming["f"]["input-json-0"].source == "loop_sentinel_start"


def test_graph_json_problems_are_diagnostics() -> None:
    wf = Workflow.from_graph({"blocks": [{"type": "note"}, {"id": "x"}, 3],
                              "edges": [{"source": "x"}]})
    assert codes(wf) == [("MISSING_BLOCK_ID", "blocks[0].id"),
                         ("MISSING_BLOCK_TYPE", "blocks[1].type"),
                         ("INVALID_BLOCK_DEFINITION", "blocks[2]"),
                         ("INVALID_EDGE_ENDPOINT", "edges[0].target")]


def test_builder() -> None:
    wf = (Workflow.builder("built")
          .block("s", "start_json")
          .block("loop", "for_each", label="Each")
          .block("f", "function", config={"output_schema": {}}, parent="loop")
          .edge("s", "loop", target_handle="fe-left-in")
          .build())
    assert (wf.name, wf.source, wf.api_version) == ("built", "<builder>", API_VERSION)
    assert shape(wf) == [("s", "start_json", None, "blocks[0](s)"),
                         ("loop", "for_each", None, "blocks[1](loop)"),
                         ("f", "function", "loop", "blocks[2](f)")]
    assert wf.edges[0].path == "edges[0]" and wf.block("loop").display_label == "Each"


# ------------------------------------------------------------------ load_workflow


def test_load_workflow_picks_the_format_by_content(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "a.yaml").write_text(YAML)
    (tmp_path / "b.json").write_text(json.dumps(yaml.safe_load(YAML)))
    (tmp_path / "c.json").write_text(json.dumps(GRAPH))
    (tmp_path / "d.yml").write_text(json.dumps(GRAPH, indent=2))
    a, b = load_workflow(tmp_path / "a.yaml"), load_workflow(str(tmp_path / "b.json"))
    assert shape(a) == shape(b) == EXPECTED_BLOCKS
    assert a.source == str(tmp_path / "a.yaml")
    c, d = load_workflow(tmp_path / "c.json"), load_workflow(tmp_path / "d.yml")
    assert [x.parent_id for x in c.blocks] == [x.parent_id for x in d.blocks] == [
        None, None, "loop"]


def test_load_workflow_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(WorkflowLoadError, match="missing.yaml: the file does not exist"):
        load_workflow(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: x\nspec:\n  blocks: {a: b\n")
    with pytest.raises(WorkflowLoadError, match=r"bad.yaml: invalid YAML at line \d"):
        load_workflow(bad)
    other = tmp_path / "other.yaml"
    other.write_text("hello: world\n")
    with pytest.raises(WorkflowLoadError, match="neither a declarative workflow"):
        load_workflow(other)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(WorkflowLoadError, match="cannot be read"):
        load_workflow(binary)


# ------------------------------------------------------------------ to_dict


def test_to_dict_round_trips_the_declarative_form() -> None:
    wf = Workflow.from_yaml(YAML)
    data = json.loads(json.dumps(wf.to_dict()))
    assert data["apiVersion"] == API_VERSION and "spec" in data
    assert list(data["spec"]["blocks"]["each_line"]["children"]) == ["price_line", "round_line"]
    again = Workflow.from_dict(data, source="<yaml>")
    assert again.model_dump() == wf.model_dump()  # paths included
    assert again.digest() == wf.digest()


def test_to_dict_drops_generated_edges_and_keeps_builder_workflows() -> None:
    wf = (Workflow.builder("b").block("s", "start_json").block("loop", "for_each")
          .block("f", "function", config={"output_schema": {}}, parent="loop")
          .edge("s", "loop", target_handle="fe-left-in").build())
    compiled = compile_workflow(wf, fake_registry()).workflow
    assert len(compiled.edges) == 3
    again = Workflow.from_dict(compiled.to_dict())
    assert [(b.id, b.type, b.parent_id) for b in again.blocks] == [
        (b.id, b.type, b.parent_id) for b in wf.blocks]
    assert [(e.source_block, e.target_block, e.source_handle, e.target_handle)
            for e in again.edges] == [("s", "loop", "", "fe-left-in")]
    assert again.digest() == wf.digest() == compiled.digest()


def test_to_dict_falls_back_to_graph_form_when_blocks_cannot_nest() -> None:
    wf = (Workflow.builder("orphans").block("a", "function", parent="ghost")
          .block("b", "note").block("b", "note").edge("a", "b", source_handle="x").build())
    data = wf.to_dict()
    assert "spec" not in data and isinstance(data["blocks"], list)
    again = Workflow.from_dict(json.loads(json.dumps(data)))
    assert [(b.id, b.parent_id) for b in again.blocks] == [("a", "ghost"), ("b", None),
                                                           ("b", None)]
    assert again.edges[0].source_handle == "x" and again.edges[0].target_handle == ""
    assert again.digest() == wf.digest()


def test_a_control_character_is_a_load_error_not_a_crash() -> None:
    from engine.loading import parse_yaml

    with pytest.raises(WorkflowLoadError, match="invalid YAML.*special characters"):
        parse_yaml("spec:\n  blocks: \x07\n", "bad.yaml")


def test_a_json_workflow_loads_without_pyyaml_and_a_yaml_one_with_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    one = {"apiVersion": API_VERSION, "kind": "Workflow", "metadata": {"name": "one"},
           "spec": {"blocks": {"start": {"type": "start_json"}}, "edges": []}}
    (tmp_path / "one.json").write_text(json.dumps(one))
    (tmp_path / "one.yaml").write_text(json.dumps(one))  # JSON is YAML too
    code = ("import sys; from engine.definition import load_workflow; "
            "print(load_workflow(sys.argv[1]).blocks[0].type, 'yaml' in sys.modules)")
    for name, pyyaml in (("one.json", False), ("one.yaml", True)):
        done = subprocess.run([sys.executable, "-c", code, str(tmp_path / name)],
                              capture_output=True, text=True, check=True)
        assert done.stdout.split() == ["start_json", str(pyyaml)]


def test_json_escapes_of_an_emoji_in_yaml_are_one_character() -> None:
    from engine.loading import parse_json, parse_yaml

    data, _ = parse_yaml('name: "x \\ud83e\\uddfe \\ud83e"\n"k\\udc00": [1]', "w.yaml")
    assert data == {"name": "x \U0001f9fe \ufffd", "k\ufffd": [1]}
    data, _ = parse_json('{"name": "\\ud83e\\uddfe \\udc00"}', "w.json")
    assert data == {"name": "\U0001f9fe \ufffd"}
