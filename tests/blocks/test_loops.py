"""Loop containers, their sentinels, and the built-in registry."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from fpdf import FPDF
from pydantic import ValidationError
from pypdf import PdfReader

from blocks.builtin import register_all
from blocks.loops import (
    MAX_WHILE_ITERATIONS,
    SPLIT_BY_KEY_SERVICE,
    ForEach,
    ForEachConfig,
    ForEachSentinelEnd,
    ForEachSentinelStart,
    WhileLoop,
    WhileLoopSentinelEnd,
    WhileLoopSentinelStart,
)
from blocks.registry import BlockRegistry, default_registry
from engine import Engine, Workflow
from engine.contracts.blocks import (
    BlockContext,
    BlockRole,
    ExpandItems,
    JoinMode,
    LoopDecision,
    LoopStart,
)
from engine.contracts.errors import ErrorStage, PermanentError
from engine.contracts.values import Payload
from engine.definition import BlockDef
from engine.graph import validate_workflow
from tests.blocks.conftest import MakeCtx
from tests.blocks.harness import MemoryFileStore, parse, run_block

pytestmark = pytest.mark.anyio


def pdf_bytes(pages: int) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for n in range(1, pages + 1):
        pdf.add_page()
        pdf.cell(text=f"page {n}")
    return bytes(pdf.output())


async def expand(
    impl: ForEach, ctx: BlockContext, config: dict[str, Any], item: Any
) -> list[Payload]:
    result = await run_block(impl, ctx, config, {"fe-left-in": item})
    assert isinstance(result.control, ExpandItems) and result.outputs == {}
    return result.control.items


# ----------------------------------------------------------------------------- for_each


def test_for_each_handles_follow_the_map_method() -> None:
    impl = ForEach()
    arr, pages = parse(impl, {}), parse(impl, {"map_method": "iterate_pages"})
    assert impl.container == "for_each"
    assert impl.input_handles(arr) == {"fe-left-in": "json", "fe-right-in": "json"}
    assert impl.output_handles(arr) == {"fe-right-out": "json", "fe-left-out": "json"}
    assert impl.input_handles(pages)["fe-left-in"] == "file"
    assert impl.output_handles(pages)["fe-left-out"] == "file"


@pytest.mark.anyio
async def test_for_each_items_carry_the_loop_policy(make_ctx: MakeCtx) -> None:
    config = {"max_concurrency": 2, "on_item_error": "skip"}
    result = await run_block(ForEach(), make_ctx("for_each"), config,
                             {"fe-left-in": Payload.json([1, 2])})
    assert result.control == ExpandItems(items=[Payload.json(1), Payload.json(2)],
                                         max_concurrency=2, on_item_error="skip")
    default = await run_block(ForEach(), make_ctx("for_each"), {},
                              {"fe-left-in": Payload.json([])})
    assert default.control == ExpandItems(items=[], max_concurrency=4, on_item_error="fail")


def test_iteration_kind_follows_the_map_method() -> None:
    impl = ForEach()
    assert impl.iteration_kind(parse(impl, {})) == "json"
    assert impl.iteration_kind(parse(impl, {"map_method": "split_by_key", "key": "k"})) == "file"
    assert WhileLoop().iteration_kind(parse(WhileLoop(), {"max_iterations": 1})) == "json"


def test_for_each_defaults_and_bounds() -> None:
    cfg = parse(ForEach(), {})
    assert (
        cfg.map_method,
        cfg.map_source_path,
        cfg.max_concurrency,
        cfg.on_item_error,
        cfg.max_items,
    ) == ("iterate_array", "", 4, "fail", 10_000)
    for bad in ({"max_concurrency": 0}, {"map_method": "iterate_rows"}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            parse(ForEach(), bad)


@pytest.mark.parametrize(
    ("path", "data", "items"),
    [
        ("lines", {"lines": [{"sku": "A"}, {"sku": "B"}]}, [{"sku": "A"}, {"sku": "B"}]),
        ("order.lines", {"order": {"lines": [1, 2, 3]}}, [1, 2, 3]),
        ("", [1, [2]], [1, [2]]),
        ("orders.*.id", {"orders": [{"id": 1}, {"id": 2}]}, [1, 2]),
        ("lines", {"lines": []}, []),
    ],
)
async def test_iterate_array(make_ctx: MakeCtx, path: str, data: Any, items: list[Any]) -> None:
    got = await expand(ForEach(), make_ctx("for_each", "each"), {"map_source_path": path}, data)
    assert got == [Payload.json(i) for i in items]


async def test_wildcard_over_an_empty_array_is_zero_items(make_ctx: MakeCtx) -> None:
    ctx = make_ctx("for_each", "each")
    for path, data in (("orders.*.id", {"orders": []}), ("data.orders[*].id", {"orders": []}),
                       ("orders.*.lines.*", {"orders": [{"lines": []}]})):
        assert await expand(ForEach(), ctx, {"map_source_path": path}, data) == []
    with pytest.raises(PermanentError) as info:  # no array at all is still missing
        await expand(ForEach(), ctx, {"map_source_path": "orders.*.id"}, {"lines": []})
    assert info.value.code == "MAP_SOURCE_NOT_FOUND"


def test_for_each_over_a_wildcard_on_an_empty_array_completes(tmp_path: Path) -> None:
    wf = (Workflow.builder("empty orders")
          .block("start", "start_json")
          .block("each", "for_each", config={"map_source_path": "orders.*.id"})
          .block("shape", "reshape", config={"mappings": {"id": ""}}, parent="each")
          .block("done", "end")
          .edge("start", "each", target_handle="fe-left-in")
          .edge("each", "shape", source_handle="fe-left-out")
          .edge("shape", "each", target_handle="fe-right-in")
          .edge("each", "done", source_handle="fe-right-out")
          .build())
    with Engine(tmp_path / "run.db") as engine:
        result = engine.run(wf, {"start": {"orders": []}})
    assert result.status == "completed"
    assert result.outputs["done"]["input-json-0"]["data"] == []


async def test_iterate_array_path_missing_names_path_type_and_fix(make_ctx: MakeCtx) -> None:
    with pytest.raises(PermanentError) as info:
        await expand(
            ForEach(),
            make_ctx("for_each", "each"),
            {"map_source_path": "orders"},
            {"lines": [1], "meta": {}},
        )
    err = info.value
    assert err.code == "MAP_SOURCE_NOT_FOUND"
    assert "for_each block 'each'" in err.message and "'orders'" in err.message
    assert "does not exist" in err.message and "Arrays found there: lines" in err.message
    assert "Set map_source_path" in err.message


async def test_iterate_array_not_a_list(make_ctx: MakeCtx) -> None:
    with pytest.raises(PermanentError, match="holds an object") as info:
        await expand(ForEach(), make_ctx("for_each", "each"), {}, {"lines": [1]})
    assert info.value.code == "MAP_SOURCE_NOT_ARRAY"
    assert info.value.context["found_type"] == "object"


async def test_max_items(make_ctx: MakeCtx) -> None:
    with pytest.raises(PermanentError, match=r"Raise config\.max_items") as info:
        await expand(ForEach(), make_ctx("for_each", "each"), {"max_items": 2}, [1, 2, 3])
    assert info.value.code == "TOO_MANY_ITEMS"


async def test_iterate_pages_splits_the_pdf(make_ctx: MakeCtx, files: MemoryFileStore) -> None:
    ref = files.put_bytes(pdf_bytes(3), "statement.pdf", "application/pdf")
    items = await expand(
        ForEach(), make_ctx("for_each", "each"), {"map_method": "iterate_pages"}, Payload.file(ref)
    )
    names = [i.document.filename for i in items if i.document]
    assert names == ["statement_page_1.pdf", "statement_page_2.pdf", "statement_page_3.pdf"]
    for n, item in enumerate(items, start=1):
        assert item.document is not None and item.document.mime_type == "application/pdf"
        reader = PdfReader(io.BytesIO(files.read_bytes(item.document)))
        assert len(reader.pages) == 1 and f"page {n}" in reader.pages[0].extract_text()


async def test_iterate_pages_errors(make_ctx: MakeCtx, files: MemoryFileStore) -> None:
    bad = files.put_bytes(b"not a pdf", "notes.pdf", "application/pdf")
    with pytest.raises(PermanentError, match=r"cannot read 'notes\.pdf' as a PDF") as info:
        await expand(
            ForEach(), make_ctx("for_each"), {"map_method": "iterate_pages"}, Payload.file(bad)
        )
    assert info.value.stage is ErrorStage.DOCUMENT_FETCH
    with pytest.raises(PermanentError, match="needs a file"):
        await expand(ForEach(), make_ctx("for_each"), {"map_method": "iterate_pages"}, {"a": 1})
    big = files.put_bytes(pdf_bytes(3), "big.pdf", "application/pdf")
    with pytest.raises(PermanentError, match="max_items=2"):
        await expand(
            ForEach(),
            make_ctx("for_each"),
            {"map_method": "iterate_pages", "max_items": 2},
            Payload.file(big),
        )


async def test_split_by_key_uses_the_provider_or_a_service(
    make_ctx: MakeCtx, files: MemoryFileStore
) -> None:
    doc = Payload.file(files.put_bytes(pdf_bytes(1), "a.pdf", "application/pdf"))
    cfg = {"map_method": "split_by_key", "key": "invoice number"}
    # the built-in partitioner (offline provider) finds no invoice number on "page 1"
    assert await expand(ForEach(), make_ctx("for_each"), cfg, doc) == []

    async def partition(
        ctx: BlockContext, config: ForEachConfig, payload: Payload
    ) -> list[Payload]:
        return [payload, payload]

    ctx = make_ctx("for_each", services={SPLIT_BY_KEY_SERVICE: partition})
    assert await expand(ForEach(), ctx, cfg, doc) == [doc, doc]


def test_for_each_check() -> None:
    impl = ForEach()

    def codes(raw: dict[str, Any]) -> set[str]:
        block = BlockDef(id="each", type="for_each", config=raw)
        return {d.code for d in impl.check(block, parse(impl, raw), "spec.blocks.each")}

    assert codes({"map_source_path": "a..b"}) == {"INVALID_PATH"}
    assert codes({"review": {"predicate": {"kind": "always"}}}) == {"INVALID_REVIEW_CONFIG"}
    assert codes({"map_method": "split_by_key"}) == {"MISSING_SPLIT_KEY"}
    assert codes({"map_method": "split_by_key", "key": "id", "review": {}}) == set()


# ----------------------------------------------------------------------------- while_loop

TERMINATION = {
    "logical_operator": "or",
    "sub_conditions": [
        {"path_ref": {"input": "default", "path": "complete"}, "operator": "equals", "value": True}
    ],
}


def test_while_loop_max_iterations_defaults_to_ten_but_is_never_null() -> None:
    assert parse(WhileLoop(), {"termination_condition": TERMINATION}).max_iterations == 10
    with pytest.raises(ValidationError, match=r"write e\.g\. `max_iterations: 10`"):
        parse(WhileLoop(), {"max_iterations": None})
    with pytest.raises(ValidationError):
        parse(WhileLoop(), {"max_iterations": 0})
    assert parse(WhileLoop(), {"max_iterations": 4}).max_iterations == 4


def test_while_loop_max_iterations_has_an_upper_bound() -> None:
    assert MAX_WHILE_ITERATIONS == 100_000
    top = parse(WhileLoop(), {"max_iterations": MAX_WHILE_ITERATIONS})
    assert top.max_iterations == MAX_WHILE_ITERATIONS
    with pytest.raises(ValidationError, match=r"more than the limit of 100,000") as info:
        parse(WhileLoop(), {"max_iterations": MAX_WHILE_ITERATIONS + 1})
    assert [e["loc"] for e in info.value.errors()] == [("max_iterations",)]


def test_too_many_while_iterations_are_refused_at_load() -> None:
    wf = (Workflow.builder("huge loop")
          .block("start", "start_json")
          .block("w", "while_loop", config={"max_iterations": 10**12,
                                            "termination_condition": TERMINATION})
          .block("f", "reshape", config={"mappings": {"complete": "complete"}}, parent="w")
          .edge("start", "w", target_handle="loop-left-in")
          .build())
    [error] = [d for d in validate_workflow(wf, default_registry()) if d.severity == "error"]
    assert (error.code, error.path) == ("INVALID_CONFIG", "blocks[1](w).config.max_iterations")
    assert "'while_loop' block 'w'" in error.message  # the block
    assert "max_iterations is 1000000000000" in error.message  # the field and its value
    assert "more than the limit of 100,000 iterations" in error.message  # the limit
    assert "write at most `max_iterations: 100000`" in error.message  # the fix


def test_the_bench_loops_load() -> None:
    from bench.workloads import for_each, while_loop

    for wf, _, _ in (while_loop(3003), while_loop(3 + 3 * MAX_WHILE_ITERATIONS),
                     for_each(300_003)):
        assert [d for d in validate_workflow(wf, default_registry())
                if d.severity == "error"] == []


def test_while_loop_handles_and_check() -> None:
    impl = WhileLoop()
    raw = {
        "max_iterations": 3,
        "termination_condition": {"sub_conditions": [{"path": "done", "operator": "is_done"}]},
    }
    cfg = parse(impl, raw)
    assert impl.container == "while_loop"
    assert set(impl.input_handles(cfg)) == {"loop-left-in", "loop-right-in", "loop-termination"}
    assert set(impl.output_handles(cfg)) == {"loop-right-out", "loop-left-out"}
    [diag] = impl.check(BlockDef(id="w", type="while_loop", config=raw), cfg, "spec.blocks.w")
    assert diag.code == "INVALID_CONDITION_OPERATOR"
    assert diag.path == "spec.blocks.w.config.termination_condition.sub_conditions[0].operator"
    bare = parse(impl, {"max_iterations": 3})
    [warning] = impl.check(BlockDef(id="w", type="while_loop"), bare, "spec.blocks.w")
    assert warning.severity == "warning" and warning.code == "NO_TERMINATION_CONDITION"


async def test_while_loop_starts_with_left_in(make_ctx: MakeCtx) -> None:
    state = Payload.json({"query": "x", "attempts": 0})
    result = await run_block(
        WhileLoop(), make_ctx("while_loop"), {"max_iterations": 2}, {"loop-left-in": state}
    )
    assert result.control == LoopStart(state=state, max_iterations=2)
    templated = await run_block(WhileLoop(), make_ctx("while_loop"),
                                {"max_iterations": 2, "loop_context_template": "{{data}}"},
                                {"loop-left-in": state})
    assert templated.control == LoopStart(state=state, max_iterations=2, inject_context=True)


# ----------------------------------------------------------------------------- sentinels


async def test_sentinel_starts_are_identities(make_ctx: MakeCtx) -> None:
    item = Payload.json({"sku": "A"})
    fe = ForEachSentinelStart()
    cfg = parse(fe, {})
    assert fe.authorable is False
    assert fe.input_handles(cfg) == {"fe-left-in": "json"} and fe.output_handles(cfg) == {
        "fe-left-out": "json"
    }
    assert fe.output_handles(parse(fe, {"map_method": "iterate_pages"})) == {"fe-left-out": "file"}
    assert (await fe.run(make_ctx(), cfg, {"fe-left-in": item})).outputs == {"fe-left-out": item}
    wl = WhileLoopSentinelStart()
    wcfg = parse(wl, {"max_iterations": 2})
    assert wl.input_handles(wcfg) == {"loop-left-in": "json"}
    assert (await wl.run(make_ctx(), wcfg, {"loop-left-in": item})).outputs == {
        "loop-left-out": item
    }


async def test_for_each_sentinel_end(make_ctx: MakeCtx) -> None:
    end = ForEachSentinelEnd()
    cfg = parse(end, {})
    assert end.join is JoinMode.SETTLED and end.authorable is False
    assert end.input_handles(cfg) == {"fe-right-in": "json"} and end.output_handles(cfg) == {}
    result = await end.run(make_ctx(), cfg, {"fe-right-in": Payload.json(1)})
    assert result.outputs == {} and result.control is None


async def test_while_sentinel_end_tests_termination_then_right_in(make_ctx: MakeCtx) -> None:
    end = WhileLoopSentinelEnd()
    cfg = parse(end, {"max_iterations": 3, "termination_condition": TERMINATION})
    assert end.join is JoinMode.SETTLED
    assert set(end.input_handles(cfg)) == {"loop-right-in", "loop-termination"}
    both = {
        "loop-right-in": Payload.json({"complete": True}),
        "loop-termination": Payload.json({"complete": False}),
    }
    result = await end.run(make_ctx(iteration=0), cfg, both)
    assert isinstance(result.control, LoopDecision) and result.control.matched is False
    assert result.artifact is not None and result.artifact["should_continue"] is True
    result = await end.run(
        make_ctx(iteration=0), cfg, {"loop-right-in": Payload.json({"complete": True})}
    )
    assert isinstance(result.control, LoopDecision) and result.control.matched is True
    [ev] = result.control.evaluations
    assert ev["branch_name"] == "exit" and ev["sub_evaluations"][0]["actual"] is True
    assert (
        result.artifact is not None and result.artifact["termination_reason"] == "condition_matched"
    )


async def test_while_sentinel_end_conditions_list_and_last_iteration(make_ctx: MakeCtx) -> None:
    end = WhileLoopSentinelEnd()
    cfg = parse(
        end,
        {
            "max_iterations": 2,
            "conditions": [
                {"sub_conditions": [{"path": "n", "operator": "greater_than", "value": 10}]},
                {
                    "sub_conditions": [
                        {
                            "path_ref": {"input": "loop-right-in", "path": "stop"},
                            "operator": "is_true",
                        }
                    ]
                },
            ],
        },
    )
    inputs = {
        "loop-termination": Payload.json({"n": 1}),
        "loop-right-in": Payload.json({"stop": True}),
    }
    result = await end.run(make_ctx(iteration=1), cfg, inputs)
    assert isinstance(result.control, LoopDecision) and result.control.matched
    assert [e["matched"] for e in result.control.evaluations] == [False, True]
    nothing = await end.run(make_ctx(iteration=1), cfg, {})
    assert isinstance(nothing.control, LoopDecision) and not nothing.control.matched
    assert nothing.artifact is not None
    assert nothing.artifact["termination_reason"] == "max_iterations_reached"


# ----------------------------------------------------------------------------- registry


def test_register_all() -> None:
    registry = register_all(BlockRegistry())
    assert registry.names() == sorted(
        [
            "api_call",
            "classifier",
            "conditional",
            "edit",
            "end",
            "extract",
            "for_each",
            "function",
            "functions",
            "hil",
            "merge_dicts",
            "merge_pdf",
            "note",
            "parse",
            "reshape",
            "split",
            "start",
            "start_document",
            "start_json",
            "while_loop",
        ]
    )
    assert registry.get("functions") is registry.get("function")
    assert registry.canonical("start") == "start_document"
    for name in (
        "for_each_sentinel_start",
        "for_each_sentinel_end",
        "while_loop_sentinel_start",
        "while_loop_sentinel_end",
    ):
        assert registry.get(name).authorable is False
    assert (
        registry.get("while_loop_sentinel_end").config_model
        is registry.get("while_loop").config_model
    )


def test_roles_of_the_built_in_types() -> None:
    registry = register_all(BlockRegistry())
    roles = {name: registry.get(name).role for name in registry.names()}
    assert roles["start_json"] is BlockRole.START_JSON
    assert roles["start_document"] is roles["start"] is BlockRole.START_DOCUMENT
    assert roles["end"] is BlockRole.END
    others = set(roles) - {"start_json", "start_document", "start", "end"}
    assert {roles[name] for name in others} == {BlockRole.TASK}


# ----------------------------------------------------------------------------- Retab's shapes


async def test_map_source_path_written_from_data(make_ctx: MakeCtx) -> None:
    config = {"map_source_path": "data.line_items"}
    got = await expand(ForEach(), make_ctx("for_each", "each"), config, {"line_items": [1, 2]})
    assert got == [Payload.json(1), Payload.json(2)]
    own = await expand(ForEach(), make_ctx("for_each", "each"), config,
                       {"data": {"line_items": [3]}, "line_items": [1, 2]})
    assert own == [Payload.json(3)]  # an input with its own `data` key is read literally


async def test_split_by_page_chunks(make_ctx: MakeCtx, files: MemoryFileStore) -> None:
    doc = Payload.file(files.put_bytes(pdf_bytes(5), "five.pdf", "application/pdf"))
    ctx = make_ctx("for_each", "each")
    for config, names in (
        ({"map_method": "split_by_page", "split_page_range": 2},
         ["five_pages_1-2.pdf", "five_pages_3-4.pdf", "five_page_5.pdf"]),
        ({"map_method": "split_by_page"}, [f"five_page_{n}.pdf" for n in range(1, 6)]),
        ({"map_method": "iterate_pages"}, [f"five_page_{n}.pdf" for n in range(1, 6)]),
    ):
        items = await expand(ForEach(), ctx, config, doc)
        assert [i.document.filename for i in items if i.document] == names
    [first, *_] = await expand(ForEach(), ctx, {"map_method": "split_by_page",
                                                "split_page_range": 2}, doc)
    assert first.document is not None
    assert len(PdfReader(io.BytesIO(files.read_bytes(first.document))).pages) == 2


async def test_max_iterations_keeps_the_first_items(make_ctx: MakeCtx) -> None:
    result = await run_block(ForEach(), make_ctx("for_each"), {"max_iterations": 2},
                             {"fe-left-in": Payload.json([1, 2, 3])})
    assert isinstance(result.control, ExpandItems)
    assert result.control.items == [Payload.json(1), Payload.json(2)]
    [span] = result.trace_spans or []
    assert span["name"] == "max_iterations"
    assert span["attributes"] == {"max_iterations": 2, "items": 3, "not_processed": 1}


@pytest.mark.parametrize("cap", [0, -1])
def test_for_each_max_iterations_below_one_is_refused_at_load(cap: int) -> None:
    # -1 used to drop the last item (items[:-1]) without a word
    wf = (Workflow.builder("bad cap")
          .block("start", "start_json")
          .block("each", "for_each", config={"max_iterations": cap})
          .block("f", "reshape", config={"mappings": {"x": "x"}}, parent="each")
          .edge("start", "each", target_handle="fe-left-in")
          .build())
    [error] = [d for d in validate_workflow(wf, default_registry()) if d.severity == "error"]
    assert (error.code, error.path) == ("INVALID_CONFIG", "blocks[1](each).config.max_iterations")
    assert "'for_each' block 'each'" in error.message
    assert "greater than or equal to 1" in error.message


def test_for_each_retab_settings_are_checked() -> None:
    def codes(raw: dict[str, Any]) -> dict[str, str]:
        impl = ForEach()
        found = impl.check(BlockDef(id="each", type="for_each", config=raw), parse(impl, raw),
                           "spec.blocks.each")
        return {d.code: d.path for d in found}

    assert codes({"split_page_range": 0, "map_method": "split_by_page"}) == {
        "INVALID_CONFIG": "spec.blocks.each.config.split_page_range"}
    assert codes({"reduce_strategy": "sum"}) == {
        "INVALID_CONFIG": "spec.blocks.each.config.reduce_strategy"}
    assert codes({"reduce_strategy": "first", "reduce_concat_data_key": "x"}) == {
        "IGNORED_REDUCE_KEY": "spec.blocks.each.config.reduce_concat_data_key"}
    assert codes({"map_method": "iterate_pages", "split_page_range": 3}) == {
        "IGNORED_SPLIT_PAGE_RANGE": "spec.blocks.each.config.split_page_range"}
    for strategy in ("concat_array", "first", "last", "none"):
        assert codes({"reduce_strategy": strategy}) == {}
    impl = ForEach()
    wrapped = parse(impl, {"reduce_concat_data_key": "items"})
    assert impl.output_schema(wrapped, "fe-right-out")["properties"] == {
        "items": {"type": "array"}}
    assert impl.output_schema(parse(impl, {"reduce_strategy": "last"}), "fe-right-out") is None


def _for_each_warnings(raw: dict[str, Any]) -> list[tuple[str, str, str]]:
    impl = ForEach()
    found = impl.check(BlockDef(id="each", type="for_each", config=raw), parse(impl, raw),
                       "spec.blocks.each")
    return [(d.code, d.severity, d.path.removeprefix("spec.blocks.each.config.")) for d in found]


def test_split_by_key_settings_without_split_by_key_are_ignored() -> None:
    raw = {"key": "invoice number", "allow_overlap": False, "instructions": "one per invoice",
           "model": "openai:gpt-4o", "n_consensus": 3}
    assert _for_each_warnings(raw) == [("IGNORED_MAP_SETTING", "warning", key) for key in raw]
    [key] = ForEach().check(BlockDef(id="each", type="for_each"),
                            parse(ForEach(), {"key": "invoice number"}), "spec.blocks.each")
    assert key.message == ("for_each block 'each': key only applies to map_method "
                           "split_by_key; iterate_array ignores it")
    assert key.fix.startswith("add `map_method: split_by_key`")
    # split_by_key reads them all, but asks for the partition once: no consensus
    assert _for_each_warnings({"map_method": "split_by_key", **raw}) == [
        ("IGNORED_CONSENSUS", "warning", "n_consensus")]
    assert _for_each_warnings({"map_method": "split_by_key", **raw, "n_consensus": 1}) == []
    # defaults, as an export may write them, say nothing
    assert _for_each_warnings({"map_method": "split_by_page", "allow_overlap": True,
                               "n_consensus": 1, "key": None}) == []


def test_settings_for_another_map_method_are_ignored() -> None:
    [(code, _, path)] = _for_each_warnings({"map_method": "split_by_page",
                                            "map_source_path": "items"})
    assert (code, path) == ("IGNORED_MAP_SETTING", "map_source_path")
    assert _for_each_warnings({"map_method": "split_by_key", "key": "id",
                               "split_page_range": 2}) == [
        ("IGNORED_SPLIT_PAGE_RANGE", "warning", "split_page_range")]
    assert _for_each_warnings({"split_page_range": 3}) == [
        ("IGNORED_SPLIT_PAGE_RANGE", "warning", "split_page_range")]
    assert _for_each_warnings({"map_source_path": "items", "split_page_range": 1}) == []
    assert _for_each_warnings({"map_method": "split_by_page", "split_page_range": 3}) == []


async def test_an_empty_termination_group_decides_the_loop(make_ctx: MakeCtx) -> None:
    end = WhileLoopSentinelEnd()
    result = await end.run(make_ctx(iteration=0), parse(end, {"termination_condition": {}}),
                           {"loop-right-in": Payload.json({})})
    assert isinstance(result.control, LoopDecision) and result.control.matched is True
    impl = WhileLoop()

    def warnings(raw: dict[str, Any]) -> list[tuple[str, str, str]]:
        found = impl.check(BlockDef(id="w", type="while_loop", config=raw), parse(impl, raw),
                           "spec.blocks.w")
        return [(d.code, d.path, d.message) for d in found if d.severity == "warning"]

    assert warnings({"termination_condition": {}}) == [(
        "EMPTY_CONDITION", "spec.blocks.w.config.termination_condition.sub_conditions",
        ("while_loop block 'w': termination_condition has no sub_conditions, so it matches "
         "after the first iteration: the loop body runs once"))]
    [(code, path, message)] = warnings({"termination_conditions": [
        {"path": "data.done", "operator": "is_true"},
        {"logical_operator": "or", "sub_conditions": []}]})
    assert code == "EMPTY_CONDITION"
    assert path == "spec.blocks.w.config.termination_conditions[1].sub_conditions"
    assert message.endswith("so it never matches (logical_operator or)")
    assert warnings({"termination_condition": TERMINATION}) == []


def test_termination_conditions_from_the_docs() -> None:
    impl = WhileLoop()
    raw = {"max_iterations": 5, "termination_conditions": [
        {"path": "data.status", "operator": "is_equal_to", "value": "complete"},
        {"path": "data.due", "operator": "is_before", "value": "soon"}],
        "loop_context_template": "{{iteration_number}} {{nope}}"}
    cfg = parse(impl, raw)
    assert [field for _, field, _ in cfg.groups()] == [
        "termination_conditions[0]", "termination_conditions[1]"]
    found = impl.check(BlockDef(id="w", type="while_loop", config=raw), cfg, "spec.blocks.w")
    assert {(d.code, d.path) for d in found} == {
        ("INVALID_CONDITION_VALUE", "spec.blocks.w.config.termination_conditions[1].value"),
        ("UNKNOWN_TEMPLATE_VARIABLE", "spec.blocks.w.config.loop_context_template")}
    both = parse(impl, {"termination_conditions": [], "conditions": []})
    [clash] = [d for d in impl.check(BlockDef(id="w", type="while_loop"), both, "p")
               if d.code == "CONFLICTING_TERMINATION"]
    assert clash.path == "p.config.conditions"


async def test_termination_conditions_any_match_ends_the_loop(make_ctx: MakeCtx) -> None:
    end = WhileLoopSentinelEnd()
    cfg = parse(end, {"termination_conditions": [
        {"path": "data.status", "operator": "is_equal_to", "value": "complete"},
        {"path": "data.attempts", "operator": "is_greater_than_or_equal_to", "value": 3}]})
    result = await end.run(make_ctx(iteration=0), cfg,
                           {"loop-right-in": Payload.json({"status": "x", "attempts": 3})})
    assert isinstance(result.control, LoopDecision) and result.control.matched is True
    assert [e["matched"] for e in result.control.evaluations] == [False, True]


async def test_loop_context_is_rendered_on_the_sentinel_start(make_ctx: MakeCtx) -> None:
    start = WhileLoopSentinelStart()
    template = "Round {{iteration_number}}: {{data}}\n{{termination_condition_breakdown}}"
    cfg = parse(start, {"max_iterations": 4, "loop_context_template": template})
    previous = {"evaluations": [{"condition_id": "condition_0", "matched": False,
                                 "sub_evaluations": [{"path": "status", "operator": "equals",
                                                      "expected": "done", "actual": "draft",
                                                      "matched": False}]}]}
    result = await start.run(make_ctx(iteration=1), cfg, {
        "loop-left-in": Payload.json({"status": "draft"}),
        "loop-context": Payload.json(previous)})
    assert result.outputs == {"loop-left-out": Payload.json({"status": "draft"})}
    [span] = result.trace_spans or []
    assert span["attributes"]["text"] == (
        'Round 2 of 4: {"status": "draft"}\n'
        '- status equals "done": found "draft", not matched')
    plain = await start.run(make_ctx(iteration=0), parse(start, {}),
                            {"loop-left-in": Payload.json(1)})
    assert plain.trace_spans is None
