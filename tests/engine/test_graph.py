"""compile_workflow: handles, boundary edges, the sentinel rewrite, members, Mermaid.

The block types here are small fakes (the real ones live in blocks/); they are shared
with test_validation.py and test_definition.py through :func:`fake_registry`.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from blocks.base import BlockType, StrictConfig
from blocks.registry import BlockRegistry
from engine.contracts.blocks import BlockRole, HandleKind, JoinMode
from engine.contracts.errors import Diagnostic, WorkflowValidationError
from engine.definition import BlockDef, Workflow
from engine.graph import (
    CompiledGraph,
    Edge,
    compile_shared,
    compile_workflow,
    to_mermaid,
    validate_workflow,
)

# ------------------------------------------------------------------ fake block types


class StartJsonConfig(StrictConfig):
    json_schema: dict[str, Any] | None = None


class StartJson(BlockType):
    type_name = "start_json"
    role = BlockRole.START_JSON
    config_model = StartJsonConfig

    def output_handles(self, config: Any) -> dict[str, HandleKind]:
        return {"output-json-0": "json"}

    def output_schema(self, config: Any, handle: str) -> dict[str, Any] | None:
        return config.json_schema


class StartDocument(BlockType):
    type_name = "start_document"
    role = BlockRole.START_DOCUMENT

    def output_handles(self, config: Any) -> dict[str, HandleKind]:
        return {"output-file-0": "file"}


class FunctionConfig(StrictConfig):
    code: str = ""
    output_schema: dict[str, Any] | None = None
    timeout_seconds: int = Field(default=60, ge=1, le=300)


class Function(BlockType):
    type_name = "function"
    config_model = FunctionConfig

    def input_handles(self, config: Any) -> dict[str, HandleKind]:
        return {"input-json-0": "json"}

    def output_handles(self, config: Any) -> dict[str, HandleKind]:
        return {"output-json-0": "json"}

    def check(self, block: BlockDef, config: Any, path: str) -> list[Diagnostic]:
        if config.output_schema is None:
            return [Diagnostic(code="MISSING_USER_DECLARED_SCHEMA", path=f"{path}.config",
                               message="Function block has no output_schema.",
                               fix="Add config.output_schema.")]
        return []

    def output_schema(self, config: Any, handle: str) -> dict[str, Any] | None:
        return config.output_schema


class Parse(BlockType):
    type_name = "parse"

    def input_handles(self, config: Any) -> dict[str, HandleKind]:
        return {"input-file-0": "file"}

    def output_handles(self, config: Any) -> dict[str, HandleKind]:
        return {"output-json-0": "json"}


class ExtractConfig(StrictConfig):
    json_schema: dict[str, Any] = Field(default_factory=dict)
    review: dict[str, Any] | None = None


class Extract(BlockType):
    type_name = "extract"
    config_model = ExtractConfig
    reviewable = True

    def input_handles(self, config: Any) -> dict[str, HandleKind]:
        return {"input-file-document": "file", "input-json-context": "json"}

    def output_handles(self, config: Any) -> dict[str, HandleKind]:
        return {"output-json-0": "json"}


class Edit(BlockType):
    type_name = "edit"

    def input_handles(self, config: Any) -> dict[str, HandleKind]:
        return {"input-file-0": "file", "input-json-0": "json", "input-json-1": "json"}

    def output_handles(self, config: Any) -> dict[str, HandleKind]:
        return {"output-file-0": "file"}


class Branch(BaseModel):
    handle_key: str


class RouteConfig(StrictConfig):
    conditions: list[Branch] = Field(default_factory=list)
    has_else: bool = False


class Route(BlockType):
    type_name = "conditional"
    config_model = RouteConfig

    def input_handles(self, config: Any) -> dict[str, HandleKind]:
        return {"input-json-0": "json"}

    def output_handles(self, config: Any) -> dict[str, HandleKind]:
        keys = [c.handle_key for c in config.conditions] + (["else"] if config.has_else else [])
        return {f"output-json-{k}": "json" for k in keys}


class MergeInput(BaseModel):
    name: str


class MergeConfig(StrictConfig):
    inputs: list[MergeInput] = Field(default_factory=list)


class Merge(BlockType):
    type_name = "merge_dicts"
    config_model = MergeConfig
    join = JoinMode.ANY_NO_FAIL

    def input_handles(self, config: Any) -> dict[str, HandleKind]:
        return {f"input-json-{i.name}": "json" for i in config.inputs} or {"input-json-0": "json"}

    def output_handles(self, config: Any) -> dict[str, HandleKind]:
        return {"output-json-0": "json"}


class NoteConfig(StrictConfig):
    text: str = ""


class Note(BlockType):
    type_name = "note"
    config_model = NoteConfig
    executes = False


class ForEachConfig(StrictConfig):
    map_method: Literal["iterate_array", "iterate_pages", "split_by_key"] = "iterate_array"
    map_source_path: str = ""
    max_concurrency: int = 4


class ForEach(BlockType):
    type_name = "for_each"
    config_model = ForEachConfig
    container = "for_each"

    def input_handles(self, config: Any) -> dict[str, HandleKind]:
        kind: HandleKind = "json" if config.map_method == "iterate_array" else "file"
        return {"fe-left-in": kind, "fe-right-in": "json"}

    def output_handles(self, config: Any) -> dict[str, HandleKind]:
        return {"fe-right-out": "json", "fe-left-out": "json"}

    def iteration_kind(self, config: Any) -> HandleKind:
        return "json" if config.map_method == "iterate_array" else "file"

    def output_schema(self, config: Any, handle: str) -> dict[str, Any] | None:
        return {"type": "array"} if handle == "fe-right-out" else None


class WhileConfig(StrictConfig):
    max_iterations: int | None = 10
    termination_condition: dict[str, Any] | None = None


class WhileLoop(BlockType):
    type_name = "while_loop"
    config_model = WhileConfig
    container = "while_loop"

    def input_handles(self, config: Any) -> dict[str, HandleKind]:
        return {"loop-left-in": "json", "loop-right-in": "json", "loop-termination": "json"}

    def output_handles(self, config: Any) -> dict[str, HandleKind]:
        return {"loop-right-out": "json", "loop-left-out": "json"}

    def check(self, block: BlockDef, config: Any, path: str) -> list[Diagnostic]:
        if config.max_iterations is None:
            return [Diagnostic(code="MISSING_LOOP_BOUND", path=f"{path}.config",
                               message="while_loop has no max_iterations.",
                               fix="Set config.max_iterations.")]
        return []


def _sentinel(name: str, join: JoinMode = JoinMode.ALL) -> BlockType:
    cls = type(name.title().replace("_", ""), (BlockType,),
               {"type_name": name, "authorable": False, "join": join})
    return cls()


def fake_registry() -> BlockRegistry:
    """A registry of the fake types above (aliases ``start`` and ``functions`` included)."""
    registry = BlockRegistry()
    registry.register(StartDocument(), aliases=("start",))
    registry.register(Function(), aliases=("functions",))
    for impl in (StartJson(), Parse(), Extract(), Edit(), Route(), Merge(), Note(),
                 ForEach(), WhileLoop()):
        registry.register(impl)
    for kind in ("for_each", "while_loop"):
        registry.register(_sentinel(f"{kind}_sentinel_start"))
        registry.register(_sentinel(f"{kind}_sentinel_end", JoinMode.SETTLED))
    return registry


SCHEMA = {"type": "object"}


def fn(**extra: Any) -> dict[str, Any]:
    return {"output_schema": SCHEMA, **extra}


def compile_(wf: Workflow) -> CompiledGraph:
    return compile_workflow(wf, fake_registry())


# ------------------------------------------------------------------ plain graphs


def test_linear_workflow_compiles_with_handles_schemas_and_order() -> None:
    wf = (Workflow.builder("linear")
          .block("start", "start_json", config={"json_schema": {"type": "object",
                                                                "title": "In"}})
          .block("double", "function", config=fn())
          .block("note", "note", config={"text": "hello"})
          .edge("start", "double")
          .build())
    graph = compile_(wf)
    assert set(graph.nodes) == {"start", "double"}
    assert graph.members == {None: ("start", "double")}
    edge = Edge(source="start", source_handle="output-json-0", target="double",
                target_handle="input-json-0")
    assert graph.incoming == {"double": {"input-json-0": edge}}
    assert graph.outgoing == {"start": {"output-json-0": [edge]}}
    assert graph.input_schemas["double"] == {"input-json-0": {"type": "object", "title": "In"}}
    assert graph.input_schemas["start"] == {}
    double = graph.nodes["double"]
    assert (double.join, double.unfired_reason, double.container) == (
        JoinMode.ALL, "branch_not_selected", None)
    assert [n.id for n in graph.start_blocks()] == ["start"]


def test_members_follow_declaration_order_among_independent_blocks() -> None:
    b = Workflow.builder("fan").block("s", "start_json")
    for name in ("zeta", "alpha", "mid"):
        b.block(name, "function", config=fn()).edge("s", name)
    b.block("m", "merge_dicts", config={"inputs": [{"name": "z"}, {"name": "a"}]})
    b.edge("zeta", "m", target_handle="input-json-z").edge("alpha", "m", target_handle="a")
    graph = compile_(b.build())
    assert graph.members[None] == ("s", "zeta", "alpha", "mid", "m")
    assert set(graph.incoming["m"]) == {"input-json-z", "input-json-a"}  # alias resolved
    assert graph.input_schemas["m"] == {"input-json-z": SCHEMA, "input-json-a": SCHEMA}


def test_legacy_aliases_keep_the_written_type() -> None:
    wf = (Workflow.builder().block("doc", "start").block("p", "parse")
          .block("f", "functions", config=fn()).edge("doc", "p").edge("p", "f").build())
    graph = compile_(wf)
    assert graph.nodes["doc"].type == "start"
    assert graph.nodes["f"].type == "functions"
    assert [n.id for n in graph.start_blocks()] == ["doc"]


def test_empty_handles_resolve_to_the_only_handle_of_the_right_kind() -> None:
    wf = (Workflow.builder().block("doc", "start_document").block("j", "start_json")
          .block("e", "edit").block("p", "parse")
          .edge("doc", "e").edge("j", "e", target_handle="input-json-1").edge("e", "p")
          .build())
    graph = compile_(wf)
    assert set(graph.incoming["e"]) == {"input-file-0", "input-json-1"}
    assert graph.incoming["p"]["input-file-0"].source_handle == "output-file-0"


# ------------------------------------------------------------------ containers


def for_each_workflow(**loop_config: Any) -> Workflow:
    return (Workflow.builder("each")
            .block("orders", "start_json")
            .block("each", "for_each", config={"map_source_path": "lines", **loop_config})
            .block("price", "function", config=fn(), parent="each")
            .block("round", "function", config=fn(), parent="each")
            .block("total", "function", config=fn())
            .edge("orders", "each", target_handle="fe-left-in")
            .edge("price", "round")
            .edge("each", "total", source_handle="fe-right-out")
            .build())


def test_for_each_boundary_edges_are_generated_and_rewritten_onto_sentinels() -> None:
    graph = compile_(for_each_workflow())
    start, end = graph.nodes["each_sentinel_start"], graph.nodes["each_sentinel_end"]
    assert (start.type, start.parent, start.sentinel_of, start.sentinel_role) == (
        "for_each_sentinel_start", "each", "each", "start")
    assert (start.inputs, start.outputs) == ({}, {"fe-left-out": "json"})
    assert (end.inputs, end.outputs, end.join) == ({"fe-right-in": "json"}, {}, JoinMode.SETTLED)
    assert end.config is graph.nodes["each"].config and end.config.map_source_path == "lines"
    container = graph.nodes["each"]
    assert container.container == "for_each"
    assert (container.inputs, container.outputs) == ({"fe-left-in": "json"},
                                                     {"fe-right-out": "json"})
    assert graph.incoming["price"]["input-json-0"] == Edge(
        source="each_sentinel_start", source_handle="fe-left-out", target="price",
        target_handle="input-json-0")
    assert graph.incoming["each_sentinel_end"]["fe-right-in"].source == "round"
    assert graph.members == {None: ("orders", "each", "total"),
                             "each": ("each_sentinel_start", "price", "round",
                                      "each_sentinel_end")}
    generated = [e for e in graph.workflow.edges if e.generated]
    assert [(e.source_block, e.source_handle, e.target_block, e.target_handle)
            for e in generated] == [("each", "fe-left-out", "price", "input-json-0"),
                                    ("round", "output-json-0", "each", "fe-right-in")]
    assert graph.workflow.digest() == for_each_workflow().digest()
    assert graph.input_schemas["total"] == {"input-json-0": {"type": "array"}}
    # every edge joins two members of one scope
    scope_of = {m: s for s, ms in graph.members.items() for m in ms}
    for per_handle in graph.incoming.values():
        for e in per_handle.values():
            assert scope_of[e.source] == scope_of[e.target]


def test_page_iteration_feeds_a_file_to_the_entry_child() -> None:
    wf = (Workflow.builder("pages").block("doc", "start_document")
          .block("pages", "for_each", config={"map_method": "iterate_pages"})
          .block("read", "parse", parent="pages")
          .edge("doc", "pages", target_handle="fe-left-in").build())
    graph = compile_(wf)
    assert graph.nodes["pages_sentinel_start"].outputs == {"fe-left-out": "file"}
    assert graph.nodes["pages"].inputs == {"fe-left-in": "file"}
    assert graph.incoming["read"]["input-file-0"].source == "pages_sentinel_start"
    assert graph.incoming["pages_sentinel_end"]["fe-right-in"].source == "read"


def test_every_entry_child_gets_a_generated_edge() -> None:
    wf = (Workflow.builder().block("s", "start_json")
          .block("each", "for_each")
          .block("a", "function", config=fn(), parent="each")
          .block("b", "function", config=fn(), parent="each")
          .block("m", "merge_dicts", config={"inputs": [{"name": "a"}, {"name": "b"}]},
                 parent="each")
          .edge("s", "each", target_handle="fe-left-in")
          .edge("a", "m", target_handle="a").edge("b", "m", target_handle="b").build())
    graph = compile_(wf)
    assert graph.incoming["a"]["input-json-0"].source == "each_sentinel_start"
    assert graph.incoming["b"]["input-json-0"].source == "each_sentinel_start"
    assert graph.incoming["each_sentinel_end"]["fe-right-in"].source == "m"


def test_written_boundary_edges_are_not_generated_again() -> None:
    wf = (Workflow.builder().block("s", "start_json").block("each", "for_each")
          .block("a", "function", config=fn(), parent="each")
          .block("b", "function", config=fn(), parent="each")
          .edge("s", "each", target_handle="fe-left-in")
          .edge("each", "b", source_handle="fe-left-out")
          .edge("b", "a")
          .edge("a", "each", target_handle="fe-right-in").build())
    graph = compile_(wf)
    assert not [e for e in graph.workflow.edges if e.generated]
    assert graph.incoming["a"]["input-json-0"].source == "b"
    assert graph.incoming["b"]["input-json-0"].source == "each_sentinel_start"
    assert graph.incoming["each_sentinel_end"]["fe-right-in"].source == "a"


def test_while_loop_rewrites_feedback_and_termination_edges() -> None:
    wf = Workflow.from_yaml("""
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata: {name: refine}
spec:
  blocks:
    seed: {type: start_json}
    refine:
      type: while_loop
      config: {max_iterations: 4}
      children:
        enrich: {type: function, config: {output_schema: {type: object}}}
        judge: {type: function, config: {output_schema: {type: object}}}
    report: {type: function, config: {output_schema: {type: object}}}
  edges:
    - source: {block: seed, handle: output-json-0}
      target: {block: refine, handle: loop-left-in}
    - source: {block: enrich, handle: output-json-0}
      target: {block: judge, handle: input-json-0}
    - source: {block: judge, handle: output-json-0}
      target: {block: refine, handle: loop-termination}
    - source: {block: refine, handle: loop-right-out}
      target: {block: report, handle: input-json-0}
""")
    graph = compile_(wf)
    end = graph.nodes["refine_sentinel_end"]
    assert end.inputs == {"loop-right-in": "json", "loop-termination": "json"}
    assert graph.nodes["refine_sentinel_start"].outputs == {"loop-left-out": "json"}
    assert set(graph.incoming["refine_sentinel_end"]) == {"loop-right-in", "loop-termination"}
    assert graph.outgoing["judge"]["output-json-0"] == [
        Edge(source="judge", source_handle="output-json-0", target="refine_sentinel_end",
             target_handle="loop-termination"),
        Edge(source="judge", source_handle="output-json-0", target="refine_sentinel_end",
             target_handle="loop-right-in"),
    ]
    assert graph.incoming["enrich"]["input-json-0"].source == "refine_sentinel_start"
    assert graph.members["refine"] == ("refine_sentinel_start", "enrich", "judge",
                                       "refine_sentinel_end")


def test_nested_containers_each_get_their_own_scope() -> None:
    wf = (Workflow.builder().block("s", "start_json")
          .block("outer", "for_each")
          .block("inner", "while_loop", parent="outer")
          .block("step", "function", config=fn(), parent="inner")
          .edge("s", "outer", target_handle="fe-left-in")
          .edge("outer", "inner", source_handle="fe-left-out", target_handle="loop-left-in")
          .edge("inner", "outer", source_handle="loop-right-out", target_handle="fe-right-in")
          .build())
    graph = compile_(wf)
    assert graph.members["outer"] == ("outer_sentinel_start", "inner", "outer_sentinel_end")
    assert graph.members["inner"] == ("inner_sentinel_start", "step", "inner_sentinel_end")
    assert graph.incoming["inner"]["loop-left-in"].source == "outer_sentinel_start"
    assert graph.incoming["outer_sentinel_end"]["fe-right-in"].source == "inner"
    assert graph.incoming["inner_sentinel_end"]["loop-right-in"].source == "step"


def test_nested_containers_get_generated_boundary_edges_too() -> None:
    wf = (Workflow.builder().block("s", "start_json")
          .block("outer", "for_each")
          .block("inner", "while_loop", parent="outer")
          .block("step", "function", config=fn(), parent="inner")
          .edge("s", "outer", target_handle="fe-left-in").build())
    graph = compile_(wf)
    assert graph.incoming["inner"] == {"loop-left-in": Edge(
        source="outer_sentinel_start", source_handle="fe-left-out", target="inner",
        target_handle="loop-left-in")}
    assert graph.incoming["outer_sentinel_end"]["fe-right-in"].source_handle == (
        "loop-right-out")
    assert graph.incoming["step"]["input-json-0"].source == "inner_sentinel_start"
    assert graph.incoming["inner_sentinel_end"]["loop-right-in"].source == "step"


def test_compiling_a_compiled_workflow_gives_the_same_graph() -> None:
    first = compile_(for_each_workflow())
    second = compile_(first.workflow)
    assert (second.incoming, second.members) == (first.incoming, first.members)
    assert second.workflow.edges == first.workflow.edges


def test_empty_container_compiles_with_a_warning() -> None:
    wf = (Workflow.builder().block("s", "start_json").block("each", "for_each")
          .edge("s", "each", target_handle="fe-left-in").build())
    graph = compile_(wf)
    assert graph.members["each"] == ("each_sentinel_start", "each_sentinel_end")
    codes = [(d.code, d.severity) for d in validate_workflow(wf, fake_registry())]
    assert codes == [("EMPTY_CONTAINER", "warning")]


def test_compile_raises_with_every_problem() -> None:
    wf = (Workflow.builder().block("s", "start_json").block("f", "function")
          .block("g", "nope").edge("s", "missing").build())
    with pytest.raises(WorkflowValidationError) as info:
        compile_(wf)
    codes = [d.code for d in info.value.diagnostics]
    assert codes == ["MISSING_USER_DECLARED_SCHEMA", "UNKNOWN_BLOCK_TYPE",
                     "UNKNOWN_BLOCK_REFERENCE"]
    assert "3 problems" in str(info.value) and "stepwell validate" in str(info.value)


# ------------------------------------------------------------------ shared graphs


def shared_workflow(name: str, **config: Any) -> Workflow:
    return (Workflow.builder(name).block("start", "start_json")
            .block("double", "function", config={**fn(), **config}).edge("start", "double")
            .build())


def test_equal_workflows_share_one_compiled_graph_until_a_field_differs() -> None:
    name = f"shared-{uuid.uuid4().hex}"  # the cache lives as long as the process
    first = compile_shared(shared_workflow(name), fake_registry())
    assert compile_shared(shared_workflow(name), fake_registry()) is first
    # a different label, config value, edge or top-level field: another graph
    relabelled = shared_workflow(name)
    relabelled.blocks[1] = relabelled.blocks[1].model_copy(update={"label": "Double"})
    moved = shared_workflow(name)
    moved.edges[0] = moved.edges[0].model_copy(update={"target_handle": "input-json-0"})
    described = shared_workflow(name)
    described.description = "doubles"
    for other in (relabelled, moved, described, shared_workflow(name, timeout_seconds=5),
                  shared_workflow(f"{name}-2")):
        assert compile_shared(other, fake_registry()) is not first
    # JSON's 1, 1.0 and true are three configs, not one
    graphs = [compile_shared(shared_workflow(name, output_schema={**SCHEMA, "default": d}),
                             fake_registry()) for d in (1, 1.0, True)]
    assert len({id(g) for g in graphs}) == 3


def test_editing_a_workflow_after_compiling_it_leaves_the_shared_graph_alone() -> None:
    workflow = shared_workflow(f"edited-{uuid.uuid4().hex}")
    graph = compile_shared(workflow, fake_registry())
    workflow.blocks[1] = workflow.blocks[1].model_copy(update={"config": {**fn(), "code": "x"}})
    assert graph.workflow.blocks[1].config == fn()
    assert compile_shared(workflow, fake_registry()) is not graph


def test_a_config_orjson_refuses_is_keyed_by_pydantic_and_one_json_cannot_hold_is_not_cached(
) -> None:
    name = f"odd-{uuid.uuid4().hex}"
    # beyond 64 bits: orjson refuses it, pydantic writes it
    def big(n: int) -> Workflow:
        return shared_workflow(name, output_schema={**SCHEMA, "default": n})

    graph = compile_shared(big(2**70), fake_registry())
    assert compile_shared(big(2**70), fake_registry()) is graph
    assert compile_shared(big(2**71), fake_registry()) is not graph
    # an object no JSON form holds: compiled every time
    odd = shared_workflow(name)
    odd.blocks[1].config["output_schema"] = {"type": "object", "x": object()}
    assert compile_shared(odd, fake_registry()) is not compile_shared(odd, fake_registry())


def test_a_workflow_whose_loading_found_errors_is_not_served_a_shared_graph() -> None:
    """What loading a file found wrong is not in the workflow's JSON form: a workflow
    that looks like one compiled before still fails on its load errors."""
    name = f"loaded-{uuid.uuid4().hex}"
    compile_shared(shared_workflow(name), fake_registry())
    broken = shared_workflow(name)
    broken.load_diagnostics.append(Diagnostic(
        code="INVALID_WORKFLOW_ID", message="bad id", path="metadata.id"))
    with pytest.raises(WorkflowValidationError, match="INVALID_WORKFLOW_ID|bad id"):
        compile_shared(broken, fake_registry())
    warned = shared_workflow(name)
    warned.load_diagnostics.append(Diagnostic(
        code="SOMETHING_ODD", message="odd", path="", severity="warning"))
    assert compile_shared(warned, fake_registry()) is compile_shared(
        shared_workflow(name), fake_registry())


def test_a_registry_with_another_block_type_gets_its_own_graph() -> None:
    workflow = shared_workflow(f"typed-{uuid.uuid4().hex}")
    graph = compile_shared(workflow, fake_registry())

    class OtherFunction(Function):
        pass

    registry = BlockRegistry()
    registry.register(StartJson())
    registry.register(OtherFunction())
    other = compile_shared(workflow, registry)
    assert other is not graph and isinstance(other.nodes["double"].impl, OtherFunction)


# ------------------------------------------------------------------ Mermaid


def test_mermaid_of_a_compiled_graph_has_subgraphs_and_handle_labels() -> None:
    wf = for_each_workflow()
    wf.blocks.append(BlockDef(id="memo", type="note", config={"text": "hi"}))
    text = to_mermaid(compile_(wf))
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    assert '  subgraph b_each["each<br/>for_each"]' in lines
    assert '    b_each_sentinel_start(("start"))' in lines
    assert '    b_price["price<br/>function"]' in lines
    assert '  b_orders -->|"output-json-0 → fe-left-in"| b_each' in lines
    assert '  b_each_sentinel_start -.->|"fe-left-out → input-json-0"| b_price' in lines
    assert '  b_round -.->|"output-json-0 → fe-right-in"| b_each_sentinel_end' in lines
    assert "memo" not in text
    sub = lines.index('  subgraph b_each["each<br/>for_each"]')
    assert lines.index("  end") > lines.index('    b_round["round<br/>function"]') > sub


def test_mermaid_of_a_raw_workflow_escapes_and_keeps_written_handles() -> None:
    wf = (Workflow.builder().block("end", "start_json", label='say "hi"')
          .block("a-b", "function").edge("end", "a-b").build())
    text = to_mermaid(wf)
    assert 'b_end["say #quot;hi#quot;<br/>start_json"]' in text
    assert "  b_end --> b_a_b" in text
