"""validate_workflow: every rule, each problem reported once, all of them at once."""

from __future__ import annotations

from typing import Any

import pytest

from engine.contracts.errors import Diagnostic
from engine.definition import Workflow, WorkflowBuilder
from engine.graph import compile_workflow, validate_workflow
from tests.engine.test_graph import SCHEMA, fake_registry, fn

HEAD = """apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata: {name: t}
"""


def check(wf: Workflow) -> list[Diagnostic]:
    return [d for d in validate_workflow(wf, fake_registry()) if d.severity == "error"]


def codes(wf: Workflow) -> list[str]:
    return [d.code for d in check(wf)]


def only(wf: Workflow, code: str) -> Diagnostic:
    found = check(wf)
    assert [d.code for d in found] == [code], [d.render() for d in found]
    return found[0]


def base() -> WorkflowBuilder:
    return Workflow.builder().block("s", "start_json")


def test_six_mistakes_give_six_diagnostics_with_paths_and_fixes() -> None:
    wf = Workflow.from_yaml(HEAD.replace("v1alpha2", "v1") + """
spec:
  blocks:
    intake: {type: start_json}
    read: {type: extractt}
    shape:
      type: function
      config: {output_schema: {type: object}, prompt: hi}
    calc: {type: function}
  edges:
    - source: {block: intake, handle: output-json-0}
      target: {block: shape, handle: input-json-0}
    - source: {block: intake, handle: output-json-9}
      target: {block: calc, handle: input-json-0}
    - source: {block: calc, handle: output-json-0}
      target: {block: ghost, handle: input-json-0}
""")
    found = check(wf)
    assert [(d.code, d.path) for d in found] == [
        ("INVALID_API_VERSION", "apiVersion"),
        ("UNKNOWN_BLOCK_TYPE", "spec.blocks.read.type"),
        ("INVALID_CONFIG_FIELD", "spec.blocks.shape.config.prompt"),
        ("MISSING_USER_DECLARED_SCHEMA", "spec.blocks.calc.config"),
        ("UNKNOWN_OUTPUT_HANDLE", "spec.edges[1].source.handle"),
        ("UNKNOWN_BLOCK_REFERENCE", "spec.edges[2].target.block"),
    ]
    assert all(d.fix and d.message for d in found)
    assert "Did you mean 'extract'?" in found[1].fix
    assert "Valid fields: code, output_schema, retry, timeout_seconds." in found[2].message


# ------------------------------------------------------------------ header and blocks


def test_api_version_only_checked_when_present() -> None:
    assert codes(Workflow.from_graph({"blocks": [{"id": "s", "type": "start_json"}]})) == []
    text = HEAD + "spec: {blocks: {}}\n"
    wf = Workflow.from_yaml(text.replace("workflows.retab.com/v1alpha2", "v2"))
    assert only(wf, "INVALID_API_VERSION").details == {"api_version": "v2"}
    assert only(Workflow.from_yaml(text.replace("Workflow\n", "Pipeline\n")),
                "INVALID_KIND").path == "kind"
    assert codes(Workflow.from_yaml(text)) == []


def test_unknown_type_lists_the_known_types() -> None:
    d = only(base().block("x", "teleport").build(), "UNKNOWN_BLOCK_TYPE")
    assert "start_json" in d.fix and "functions" in d.fix
    assert "for_each_sentinel_start" not in d.fix
    assert d.path == "blocks[1](x).type"


def test_sentinel_types_are_not_authorable() -> None:
    d = only(base().block("x", "for_each_sentinel_end").build(), "BLOCK_TYPE_NOT_AUTHORABLE")
    assert "x" in d.message


def test_block_ids_must_be_well_formed_and_unique_across_children() -> None:
    assert codes(base().block("bad id!", "note").build()) == ["INVALID_BLOCK_ID"]
    wf = Workflow.from_yaml(HEAD + """
spec:
  blocks:
    s: {type: start_json}
    loop:
      type: for_each
      children:
        s: {type: function, config: {output_schema: {type: object}}}
""")
    d = only(wf, "DUPLICATE_BLOCK_ID")
    assert d.path == "spec.blocks.loop.children.s"
    assert d.details["first_path"] == "spec.blocks.s"


def test_user_ids_may_not_take_a_sentinel_id() -> None:
    wf = (base().block("each", "for_each").block("each_sentinel_end", "function", config=fn(),
                                                 parent="each")
          .edge("s", "each", target_handle="fe-left-in").build())
    assert only(wf, "RESERVED_BLOCK_ID").details == {"block_id": "each_sentinel_end"}


def test_unknown_config_keys_list_the_valid_fields() -> None:
    d = only(base().block("f", "function", config=fn(promt="x", lang="py")).build(),
             "INVALID_CONFIG_FIELD")
    assert d.details["fields"] == ["promt", "lang"]
    assert d.details["valid_fields"] == ["code", "output_schema", "retry", "timeout_seconds"]


def test_unknown_nested_config_keys_list_the_nested_fields() -> None:
    d = only(base().block("f", "function", config=fn(retry={"attempts": 3})).build(),
             "INVALID_CONFIG_FIELD")
    assert d.path == "blocks[1](f).config.retry.attempts"
    assert "max_attempts" in d.details["valid_fields"]


def test_wrong_config_types_name_the_field_path() -> None:
    wf = base().block("r", "conditional", config={"conditions": [{"handle_key": 3}],
                                                  "has_else": "maybe"}).build()
    found = check(wf)
    assert [(d.code, d.details["field"]) for d in found] == [
        ("INVALID_CONFIG", "conditions.0.handle_key"), ("INVALID_CONFIG", "has_else")]
    assert found[0].path == "blocks[1](r).config.conditions.0.handle_key"


def test_block_checks_are_surfaced() -> None:
    wf = (base().block("w", "while_loop", config={"max_iterations": None})
          .block("f", "function", config=fn(), parent="w")
          .edge("s", "w", target_handle="loop-left-in").build())
    assert codes(wf) == ["MISSING_LOOP_BOUND"]


def test_review_only_on_reviewable_types() -> None:
    review = {"review": {"predicate": {"kind": "always"}}}
    d = only(base().block("f", "function", config=fn(**review)).build(), "REVIEW_NOT_SUPPORTED")
    assert d.path == "blocks[1](f).config.review"
    wf = (Workflow.builder().block("d", "start_document")
          .block("e", "extract", config=review).edge("d", "e", target_handle="document")
          .build())
    assert codes(wf) == []


def test_missing_type_from_the_loader_is_reported_once() -> None:
    wf = Workflow.from_yaml(HEAD + "spec:\n  blocks:\n    x: {label: nothing}\n")
    assert codes(wf) == ["MISSING_BLOCK_TYPE"]
    assert codes(Workflow.builder().block("x", "").build()) == ["MISSING_BLOCK_TYPE"]


# ------------------------------------------------------------------ structure


def test_at_most_one_start_block_of_each_kind_aliases_included() -> None:
    wf = (Workflow.builder().block("a", "start_document").block("b", "start")
          .block("c", "start_json").block("d", "start_json").build())
    found = check(wf)
    assert [(d.code, d.details["block_ids"]) for d in found] == [
        ("MULTIPLE_START_BLOCKS", ["a", "b"]), ("MULTIPLE_START_BLOCKS", ["c", "d"])]


def test_start_blocks_stay_out_of_containers() -> None:
    wf = (base().block("each", "for_each").block("inner", "start_json", parent="each")
          .edge("s", "each", target_handle="fe-left-in").build())
    assert "START_BLOCK_IN_CONTAINER" in codes(wf)


def test_parents_must_exist_and_be_containers() -> None:
    wf = (base().block("f", "function", config=fn())
          .block("g", "function", config=fn(), parent="f")
          .block("h", "function", config=fn(), parent="nowhere").build())
    assert codes(wf) == ["PARENT_NOT_CONTAINER", "UNKNOWN_PARENT_BLOCK"]


# ------------------------------------------------------------------ edges


def test_edge_to_a_missing_block() -> None:
    d = only(base().edge("s", "f").build(), "UNKNOWN_BLOCK_REFERENCE")
    assert (d.path, d.details) == ("edges[0].target.block", {"block": "f"})


def test_unknown_output_handle_lists_available_handles() -> None:
    wf = base().block("f", "function", config=fn()).edge("s", "f", source_handle="out").build()
    d = only(wf, "UNKNOWN_OUTPUT_HANDLE")
    assert d.details == {"handle": "out", "available_handles": ["output-json-0"]}


def test_source_handles_must_be_exact() -> None:
    wf = (base().block("r", "conditional", config={"conditions": [{"handle_key": "big"}]})
          .block("f", "function", config=fn()).edge("s", "r")
          .edge("r", "f", source_handle="big").build())
    d = only(wf, "INVALID_EDGE_HANDLE")
    assert d.message == "Source handle 'big' must be an exact runtime handle id."
    assert d.fix == "Write 'output-json-big'." and d.path == "edges[1].source.handle"


def test_target_aliases_resolve_and_unknown_targets_list_handles() -> None:
    ok = (Workflow.builder().block("d", "start_document").block("e", "extract")
          .edge("d", "e", source_handle="output-file-0", target_handle="document").build())
    assert codes(ok) == []
    graph = compile_workflow(ok, fake_registry())
    assert set(graph.incoming["e"]) == {"input-file-document"}
    bad = (Workflow.builder().block("d", "start_document").block("e", "extract")
           .edge("d", "e", target_handle="input-file-0").build())
    d = only(bad, "UNKNOWN_INPUT_HANDLE")
    assert d.details["available_handles"] == ["input-file-document", "input-json-context"]


def test_empty_handle_needs_a_single_candidate() -> None:
    wf = (base().block("r", "conditional", config={"conditions": [{"handle_key": "a"}],
                                                   "has_else": True})
          .block("f", "function", config=fn()).edge("s", "r").edge("r", "f").build())
    d = only(wf, "MISSING_EDGE_HANDLE")
    assert d.details["available_handles"] == ["output-json-a", "output-json-else"]
    wf = base().block("e", "edit").edge("s", "e").build()
    assert only(wf, "MISSING_EDGE_HANDLE").path == "edges[0].target.handle"


def test_one_edge_per_input_handle() -> None:
    wf = (base().block("a", "function", config=fn()).block("b", "function", config=fn())
          .edge("s", "a").edge("s", "b").edge("a", "b").build())
    d = only(wf, "DUPLICATE_INPUT_EDGE")
    assert (d.path, d.details["first_path"]) == ("edges[2]", "edges[1]")


def test_file_and_json_do_not_mix() -> None:
    wf = base().block("p", "parse").edge("s", "p").build()
    d = only(wf, "HANDLE_KIND_MISMATCH")
    assert d.details == {"source_kind": "json", "target_kind": "file"}


def test_notes_cannot_be_connected() -> None:
    wf = base().block("n", "note").edge("s", "n").build()
    assert only(wf, "NOTE_CONNECTED").path == "edges[0].target.block"


@pytest.mark.parametrize(("edge", "scopes"), [
    ({"source": "s", "target": "inner", "target_handle": "input-json-0"}, (None, "each")),
    ({"source": "inner", "target": "after", "source_handle": "output-json-0"},
     ("each", None)),
    ({"source": "s", "target": "each", "target_handle": "fe-right-in"}, (None, "each")),
    ({"source": "each", "target": "after", "source_handle": "fe-left-out"}, ("each", None)),
    ({"source": "inner", "target": "each", "target_handle": "fe-left-in"}, ("each", None)),
])
def test_edges_cross_containers_only_through_their_handles(
        edge: dict[str, Any], scopes: tuple[str | None, str | None]) -> None:
    b = (Workflow.builder().block("s", "start_json").block("each", "for_each")
         .block("inner", "function", config=fn(), parent="each")
         .block("after", "function", config=fn()))
    b.edge(edge["source"], edge["target"], source_handle=edge.get("source_handle", ""),
           target_handle=edge.get("target_handle", ""))
    d = only(b.build(), "CONTAINER_BOUNDARY")
    assert (d.details["source_scope"], d.details["target_scope"]) == scopes


def test_cycles_outside_loops_are_reported_with_their_path() -> None:
    merge = {"inputs": [{"name": "first"}, {"name": "again"}]}
    wf = (base().block("m", "merge_dicts", config=merge).block("a", "function", config=fn())
          .block("b", "function", config=fn())
          .edge("s", "m", target_handle="first").edge("m", "a").edge("a", "b")
          .edge("b", "m", target_handle="again").build())
    d = only(wf, "CYCLE")
    assert d.details["cycle"] == ["m", "a", "b", "m"]
    assert d.message == "Cycle outside a loop container: m -> a -> b -> m."


def test_a_while_loop_is_not_a_cycle_but_a_cycle_inside_one_is() -> None:
    ok = (base().block("w", "while_loop").block("f", "function", config=fn(), parent="w")
          .edge("s", "w", target_handle="loop-left-in")
          .edge("w", "f", source_handle="loop-left-out")
          .edge("f", "w", target_handle="loop-right-in")
          .edge("w", "f", source_handle="loop-right-out", target_handle="input-json-0")
          .build())
    assert "CYCLE" not in codes(ok)  # the last edge is a boundary error, not a cycle
    merge = {"inputs": [{"name": "x"}, {"name": "y"}]}
    bad = (base().block("w", "while_loop").block("m", "merge_dicts", config=merge, parent="w")
           .block("f", "function", config=fn(), parent="w")
           .edge("s", "w", target_handle="loop-left-in")
           .edge("w", "m", source_handle="loop-left-out", target_handle="x")
           .edge("m", "f").edge("f", "m", target_handle="y").build())
    assert codes(bad) == ["CYCLE"]


# ------------------------------------------------------------------ boundary generation


def test_ambiguous_boundary_edges_ask_the_author() -> None:
    wf = (base().block("each", "for_each")
          .block("a", "function", config=fn(), parent="each")
          .block("b", "function", config=fn(), parent="each")
          .edge("s", "each", target_handle="fe-left-in").build())
    d = only(wf, "AMBIGUOUS_BOUNDARY_EDGE")
    assert "several exit children (a, b)" in d.message
    assert "handle: fe-right-in" in d.fix
    wf = (base().block("each", "for_each")
          .block("e", "edit", parent="each")
          .edge("s", "each", target_handle="fe-left-in").build())
    graph = compile_workflow(wf, fake_registry())  # input-json-0 preferred; files collected
    assert set(graph.incoming["e"]) == {"input-json-0"}
    assert graph.incoming["each_sentinel_end"]["fe-right-in"].source_handle == "output-file-0"
    wf = (base().block("w", "while_loop")
          .block("e", "edit", parent="w")
          .edge("s", "w", target_handle="loop-left-in").build())
    assert "exit child 'e' has no JSON output" in only(wf, "AMBIGUOUS_BOUNDARY_EDGE").message
    wf = (base().block("each", "for_each")
          .block("m", "merge_dicts", config={"inputs": [{"name": "a"}, {"name": "b"}]},
                 parent="each")
          .edge("s", "each", target_handle="fe-left-in").build())
    assert "several: input-json-a, input-json-b" in only(
        wf, "AMBIGUOUS_BOUNDARY_EDGE").message
    wf = (base().block("each", "for_each").block("p", "parse", parent="each")
          .edge("s", "each", target_handle="fe-left-in").build())
    assert "no free json input" in only(wf, "AMBIGUOUS_BOUNDARY_EDGE").message


def test_no_generation_around_blocks_that_already_have_problems() -> None:
    wf = (base().block("each", "for_each")
          .block("a", "function", config=fn(), parent="each")
          .block("b", "function", config=fn(), parent="each")
          .edge("s", "each", target_handle="fe-left-in")
          .edge("a", "b", source_handle="nope").build())
    assert codes(wf) == ["UNKNOWN_OUTPUT_HANDLE"]


def test_warnings_do_not_stop_compilation() -> None:
    wf = Workflow.from_yaml("kind: Workflow\nspec:\n  blocks:\n    s: {type: start_json}\n")
    found = validate_workflow(wf, fake_registry())
    assert {(d.code, d.severity) for d in found} == {
        ("MISSING_API_VERSION", "warning"), ("MISSING_WORKFLOW_NAME", "warning")}
    assert set(compile_workflow(wf, fake_registry()).nodes) == {"s"}


def test_function_schema_feeds_downstream_input_schema() -> None:
    wf = base().block("f", "function", config=fn()).block("g", "function", config=fn()) \
        .edge("s", "f").edge("f", "g").build()
    assert compile_workflow(wf, fake_registry()).input_schemas["g"] == {"input-json-0": SCHEMA}


def test_a_block_nothing_feeds_is_refused_but_an_api_call_may_run_unfed() -> None:
    from blocks.registry import default_registry

    wf = (base().block("orphan", "function", config={**fn(), "python": "json:dumps"})
          .block("ping", "api_call", config={"url": "https://example.invalid/ping",
                                             "method": "GET"})
          .block("done", "end").edge("s", "done").build())
    found = [d for d in validate_workflow(wf, default_registry()) if d.severity == "error"]
    assert [(d.code, d.details["block"]) for d in found] == [("BLOCK_NOT_CONNECTED", "orphan")]
    assert "input-json-0" in found[0].fix and found[0].path == "blocks[1](orphan)"
