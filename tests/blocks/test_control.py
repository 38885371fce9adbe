"""Control blocks, called directly with a hand-built BlockContext."""

from __future__ import annotations

import base64
import json
import threading
import typing
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from blocks.conditional import Conditional, slugify
from blocks.control import End, Note, StartDocument, StartJson
from blocks.dicts import MergeDicts, Reshape
from engine.contracts.blocks import JoinMode
from engine.contracts.errors import ErrorStage, PermanentError, TransientError
from engine.contracts.values import FileRef, Payload
from engine.definition import BlockDef
from tests.blocks.conftest import MakeCtx
from tests.blocks.harness import MemoryFileStore, parse, run_block

pytestmark = pytest.mark.anyio


def block(type_: str, config: dict[str, Any]) -> BlockDef:
    return BlockDef(id="b", type=type_, config=config)


# ----------------------------------------------------------------------------- start_json

SCHEMA = {
    "type": "object",
    "properties": {
        "lines": {
            "type": "array",
            "items": {"type": "object", "properties": {"qty": {"type": "integer"}}},
        }
    },
    "required": ["lines"],
}


async def test_start_json_emits_the_run_input(make_ctx: MakeCtx) -> None:
    ctx = make_ctx("start_json", "order_in", run_inputs={"order_in": {"lines": [{"qty": 2}]}})
    result = await run_block(StartJson(), ctx, {"json_schema": SCHEMA})
    assert result.outputs == {"output-json-0": Payload.json({"lines": [{"qty": 2}]})}


async def test_start_json_schema_error_names_the_path(make_ctx: MakeCtx) -> None:
    ctx = make_ctx("start_json", "order_in", run_inputs={"order_in": {"lines": [{"qty": "two"}]}})
    with pytest.raises(PermanentError) as info:
        await run_block(StartJson(), ctx, {"json_schema": SCHEMA})
    err = info.value
    assert err.stage is ErrorStage.INPUT_COLLECTION and err.code == "INPUT_SCHEMA_MISMATCH"
    assert "lines[0].qty" in err.message and "'order_in'" in err.message


async def test_start_json_without_input_says_how_to_pass_it(make_ctx: MakeCtx) -> None:
    with pytest.raises(PermanentError, match=r"--input order_in=") as info:
        await run_block(StartJson(), make_ctx("start_json", "order_in"), {})
    assert info.value.stage is ErrorStage.INPUT_COLLECTION


def test_start_json_check_rejects_a_broken_schema() -> None:
    impl = StartJson()
    cfg = parse(impl, {"json_schema": {"type": "nonsense"}})
    [diag] = impl.check(block("start_json", {}), cfg, "spec.blocks.b")
    assert diag.code == "INVALID_JSON_SCHEMA" and diag.path.startswith(
        "spec.blocks.b.config.json_schema"
    )


# ----------------------------------------------------------------------------- start_document


async def test_start_document_stores_a_local_path(
    make_ctx: MakeCtx, files: MemoryFileStore, tmp_path: Path
) -> None:
    doc = tmp_path / "invoice.pdf"
    doc.write_bytes(b"%PDF-1.4 fake")
    ctx = make_ctx("start_document", "intake", run_inputs={"intake": str(doc)})
    result = await run_block(StartDocument(), ctx)
    ref = result.outputs["output-file-0"].document
    assert ref is not None and ref.filename == "invoice.pdf" and ref.mime_type == "application/pdf"
    assert files.read_bytes(ref) == b"%PDF-1.4 fake"


async def test_start_document_accepts_a_stored_ref_and_a_data_url(
    make_ctx: MakeCtx, files: MemoryFileStore
) -> None:
    ref = files.put_bytes(b"hello", "a.txt", "text/plain")
    ctx = make_ctx("start_document", "intake", run_inputs={"intake": ref.to_dict()})
    assert (await run_block(StartDocument(), ctx)).outputs["output-file-0"].document == ref
    url = "data:text/plain;base64," + base64.b64encode(b"hi").decode()
    ctx = make_ctx(
        "start_document", "intake", run_inputs={"intake": {"filename": "n.txt", "url": url}}
    )
    stored = (await run_block(StartDocument(), ctx)).outputs["output-file-0"].document
    assert stored is not None and stored.filename == "n.txt" and files.read_bytes(stored) == b"hi"


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "/nonexistent/file.pdf",
        {"id": "file_x", "filename": "x.pdf", "mime_type": "application/pdf"},
    ],
)
async def test_start_document_missing_or_unreadable(make_ctx: MakeCtx, raw: Any) -> None:
    run_inputs = {} if raw is None else {"intake": raw}
    with pytest.raises(PermanentError) as info:
        await run_block(
            StartDocument(), make_ctx("start_document", "intake", run_inputs=run_inputs)
        )
    assert info.value.stage is ErrorStage.DOCUMENT_FETCH and "'intake'" in info.value.message


# ----------------------------------------------------------------------------- note / end


def test_note_never_executes_and_has_no_handles() -> None:
    impl = Note()
    cfg = parse(impl, {"text": "remember"})
    assert impl.executes is False
    assert impl.input_handles(cfg) == {} and impl.output_handles(cfg) == {}


async def test_end_records_what_arrived(make_ctx: MakeCtx) -> None:
    impl = End()
    assert impl.join is JoinMode.ANY
    assert impl.input_handles(parse(impl, {})) == {"input-json-0": "json"}
    cfg = parse(impl, {"inputs": [{"name": "report", "type": "json"}, {"type": "file"}]})
    assert impl.input_handles(cfg) == {"input-json-report": "json", "input-file-1": "file"}
    result = await run_block(impl, make_ctx("end"), cfg, {"input-json-report": {"ok": 1}})
    assert result.outputs == {}
    assert result.artifact == {
        "operation": "end",
        "outputs": {"input-json-report": {"type": "json", "data": {"ok": 1}}},
    }


class _Hook(BaseHTTPRequestHandler):
    status = 200
    received: typing.ClassVar[list[Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(_Hook.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.received, _Hook.status = [], 200
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_end_without_inputs_is_refused(make_ctx: MakeCtx) -> None:
    impl = End()
    result = await run_block(impl, make_ctx("end"), {"inputs": []}, {})
    assert result.artifact == {"operation": "end", "outputs": {}}  # it records nothing
    [error] = impl.check(block("end", {"inputs": []}), parse(impl, {"inputs": []}), "p")
    assert (error.code, error.severity, error.path) == ("MISSING_INPUTS", "error",
                                                        "p.config.inputs")
    assert error.message == ("end block 'b' declares no inputs (inputs: []), so nothing can "
                             "reach it and it records no output")
    assert error.fix.startswith("remove inputs to use the default input-json-0")
    assert impl.check(block("end", {}), parse(impl, {}), "p") == []


async def test_end_posts_the_webhook_with_env_substitution(make_ctx: MakeCtx, webhook: str) -> None:
    port = webhook.rsplit(":", 1)[1]
    ctx = make_ctx("end", "done", env={"HOOK_PORT": port})
    cfg = {"webhook_url": "http://127.0.0.1:${HOOK_PORT}/hook"}
    result = await run_block(End(), ctx, cfg, {"input-json-0": [1, 2]})
    assert _Hook.received == [
        {
            "run_id": "run_1",
            "block_id": "done",
            "outputs": {"input-json-0": {"type": "json", "data": [1, 2]}},
        }
    ]
    assert result.artifact is not None and result.artifact["webhook"]["status_code"] == 200


async def test_end_webhook_failures(make_ctx: MakeCtx, webhook: str) -> None:
    _Hook.status = 503
    with pytest.raises(TransientError, match="HTTP 503"):
        await run_block(End(), make_ctx("end"), {"webhook_url": webhook}, {"input-json-0": 1})
    _Hook.status = 404
    with pytest.raises(PermanentError, match="HTTP 404"):
        await run_block(End(), make_ctx("end"), {"webhook_url": webhook}, {"input-json-0": 1})
    with pytest.raises(TransientError, match="webhook POST failed"):
        await run_block(End(), make_ctx("end"), {"webhook_url": "http://127.0.0.1:9/"}, {})


# ----------------------------------------------------------------------------- conditional


def branch(name: str, operator: str, value: Any, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        **extra,
        "condition": {
            "logical_operator": "and",
            "sub_conditions": [
                {
                    "path_ref": {"input": "default", "path": "amount_due"},
                    "operator": operator,
                    "value": value,
                }
            ],
        },
    }


ROUTES = {
    "conditions": [
        branch("Needs approval!", "greater_than", 5000, id="cond_big"),
        branch("Small", "less_than", 100, id="cond_small"),
        branch("Also big", "greater_than", 1000, id="cond_also", handle_key="also"),
    ],
    "has_else": True,
}


def test_conditional_handles_use_slugged_keys() -> None:
    impl = Conditional()
    cfg = parse(impl, ROUTES)
    assert impl.input_handles(cfg) == {"input-json-0": "json"}
    assert list(impl.output_handles(cfg)) == [
        "output-json-needs-approval",
        "output-json-small",
        "output-json-also",
        "output-json-else",
    ]
    assert slugify("  Booking  Confirmation / v2 ") == "booking-confirmation-v2"


async def test_conditional_first_match_wins_and_passes_the_payload(make_ctx: MakeCtx) -> None:
    payload = Payload.json({"amount_due": 9000})
    result = await run_block(
        Conditional(), make_ctx("conditional"), ROUTES, {"input-json-0": payload}
    )
    assert result.outputs == {"output-json-needs-approval": payload}
    art = result.artifact
    assert art is not None and art["operation"] == "conditional_evaluation"
    assert art["selected_handles"] == ["output-json-needs-approval"]
    assert art["matched_branch_id"] == "cond_big"
    assert art["matched_condition_ids"] == ["cond_big", "cond_also"]
    first = art["evaluations"][0]
    assert first["condition_id"] == "cond_big" and first["branch_name"] == "Needs approval!"
    assert first["logical_operator"] == "and"
    assert first["sub_evaluations"][0] | {} == {
        "input": "default",
        "path": "amount_due",
        "operator": "greater_than",
        "expected": 5000,
        "actual": 9000,
        "matched": True,
    }
    json.dumps(art)


async def test_conditional_else_and_nothing(make_ctx: MakeCtx) -> None:
    mid = {"input-json-0": {"amount_due": 500}}
    result = await run_block(Conditional(), make_ctx("conditional"), ROUTES, mid)
    assert list(result.outputs) == ["output-json-else"]
    no_else = {**ROUTES, "has_else": False}
    result = await run_block(Conditional(), make_ctx("conditional"), no_else, mid)
    assert result.outputs == {}
    assert result.artifact is not None and result.artifact["selected_handles"] == []
    assert result.artifact["matched_branch_id"] is None


async def test_conditional_accepts_branches_alias(make_ctx: MakeCtx) -> None:
    cfg = {"branches": [branch("Big", "is_greater_than", 10)]}
    result = await run_block(
        Conditional(), make_ctx("conditional"), cfg, {"input-json-0": {"amount_due": 11}}
    )
    assert list(result.outputs) == ["output-json-big"]


def test_conditional_check_reports_keys_and_operators() -> None:
    impl = Conditional()
    raw = {
        "conditions": [
            branch("A b", "equals", 1),
            branch("a-b", "bogus", 1),
            branch("???", "equals", 1),
            branch("x", "equals", 1, handle_key="else"),
        ],
        "has_else": True,
    }
    diags = impl.check(block("conditional", raw), parse(impl, raw), "spec.blocks.route")
    where = "spec.blocks.route.config.conditions"
    assert {(d.code, d.path) for d in diags} == {
        ("DUPLICATE_HANDLE_KEY", f"{where}[1].handle_key"),  # 'A b' and 'a-b' both slug to a-b
        ("INVALID_CONDITION_OPERATOR", f"{where}[1].condition.sub_conditions[0].operator"),
        ("INVALID_HANDLE_KEY", f"{where}[2].handle_key"),  # '???' slugs to nothing
        ("DUPLICATE_HANDLE_KEY", f"{where}[3].handle_key"),  # 'else' clashes with has_else
    }


def test_conditional_config_is_strict() -> None:
    with pytest.raises(ValidationError):
        parse(Conditional(), {"conditions": [], "mode": "multi"})


# ----------------------------------------------------------------------------- merge_dicts


def test_duplicate_input_names_are_reported() -> None:
    raw = {"inputs": [{"name": "a"}, {"name": "a"}]}
    for impl in (MergeDicts(), End()):
        [diag] = impl.check(block(impl.type_name, raw), parse(impl, raw), "p")
        assert (diag.code, diag.path) == ("DUPLICATE_INPUT_HANDLE", "p.config.inputs[1].name")


def test_merge_dicts_handles() -> None:
    impl = MergeDicts()
    assert impl.join is JoinMode.ANY_NO_FAIL
    assert impl.input_handles(parse(impl, {})) == {"input-json-0": "json"}
    cfg = parse(impl, {"inputs": [{"name": "header"}, {}, {"name": "lines"}]})
    assert list(impl.input_handles(cfg)) == [
        "input-json-header",
        "input-json-1",
        "input-json-lines",
    ]


MERGE = {"inputs": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}


@pytest.mark.parametrize(("collision", "x"), [("last_wins", 3), ("first_wins", 1)])
async def test_merge_dicts_order(make_ctx: MakeCtx, collision: str, x: int) -> None:
    inputs = {"input-json-c": {"x": 3, "c": 1}, "input-json-a": {"x": 1, "a": 1}}
    result = await run_block(
        MergeDicts(), make_ctx("merge_dicts"), {**MERGE, "collision": collision}, inputs
    )
    merged = result.outputs["output-json-0"].data
    assert merged == {"x": x, "a": 1, "c": 1} and result.artifact is None


async def test_merge_dicts_errors_name_keys_and_handles(make_ctx: MakeCtx) -> None:
    inputs = {"input-json-a": {"x": 1}, "input-json-b": {"x": 2}}
    with pytest.raises(
        PermanentError, match=r"'x' comes from both 'input-json-a' and 'input-json-b'"
    ):
        await run_block(
            MergeDicts(), make_ctx("merge_dicts"), {**MERGE, "collision": "error"}, inputs
        )
    with pytest.raises(PermanentError, match=r"'input-json-b' carries a JSON array") as info:
        await run_block(MergeDicts(), make_ctx("merge_dicts"), {**MERGE, "collision": "last_wins"},
                        {"input-json-b": [1]})
    assert info.value.code == "MERGE_INPUT_NOT_OBJECT"


async def test_merge_dicts_puts_each_input_under_its_name(make_ctx: MakeCtx) -> None:
    config = {"inputs": [{"name": "a"}, {}, {"name": "c"}]}
    inputs = {"input-json-c": [1, 2], "input-json-a": {"x": 1}, "input-json-1": "text"}
    result = await run_block(MergeDicts(), make_ctx("merge_dicts"), config, inputs)
    merged = result.outputs["output-json-0"].data
    assert merged == {"a": {"x": 1}, "1": "text", "c": [1, 2]}
    assert list(merged) == ["a", "1", "c"]
    partial = await run_block(MergeDicts(), make_ctx("merge_dicts"), config,
                              {"input-json-c": None})
    assert partial.outputs["output-json-0"].data == {"c": None}


# ----------------------------------------------------------------------------- reshape


async def test_reshape_builds_nested_targets(make_ctx: MakeCtx) -> None:
    cfg = {
        "mappings": {
            "customer.name": "header.client",
            "customer.id": "header.id",
            "skus": "lines.*.sku",
            "first_qty": "lines[0].qty",
            "all": "",
        }
    }
    data = {"header": {"client": "ACME", "id": 7}, "lines": [{"sku": "A", "qty": 2}, {"sku": "B"}]}
    result = await run_block(Reshape(), make_ctx("reshape"), cfg, {"input-json-0": data})
    out = result.outputs["output-json-0"].data
    assert out == {
        "customer": {"name": "ACME", "id": 7},
        "skus": ["A", "B"],
        "first_qty": 2,
        "all": data,
    }
    assert out["all"] is not data  # no aliasing between input and output


async def test_reshape_missing_paths(make_ctx: MakeCtx) -> None:
    cfg: dict[str, Any] = {"mappings": {"total": "summary.total"}}
    with pytest.raises(PermanentError, match=r"path 'summary.total' \(for 'total'\)"):
        await run_block(Reshape(), make_ctx("reshape"), cfg, {"input-json-0": {}})
    result = await run_block(
        Reshape(), make_ctx("reshape"), {**cfg, "missing": "null"}, {"input-json-0": {}}
    )
    assert result.outputs["output-json-0"].data == {"total": None}


async def test_reshape_wildcard_over_an_empty_array_is_an_empty_list(make_ctx: MakeCtx) -> None:
    cfg: dict[str, Any] = {"mappings": {"skus": "lines.*.sku"}}
    result = await run_block(Reshape(), make_ctx("reshape"), cfg, {"input-json-0": {"lines": []}})
    assert result.outputs["output-json-0"].data == {"skus": []}
    with pytest.raises(PermanentError, match=r"path 'lines.\*.sku'"):  # no array at all
        await run_block(Reshape(), make_ctx("reshape"), cfg, {"input-json-0": {}})


async def test_reshape_validates_output_schema(make_ctx: MakeCtx) -> None:
    cfg = {
        "mappings": {"total": "t"},
        "output_schema": {"type": "object", "properties": {"total": {"type": "number"}}},
    }
    with pytest.raises(PermanentError, match="at total") as info:
        await run_block(Reshape(), make_ctx("reshape"), cfg, {"input-json-0": {"t": "12"}})
    assert info.value.code == "OUTPUT_SCHEMA_MISMATCH"
    assert Reshape().output_schema(parse(Reshape(), cfg), "output-json-0") == cfg["output_schema"]


def test_reshape_check() -> None:
    impl = Reshape()
    raw = {"mappings": {"a": "x", "a.b": "y", "c[0]": "z", "d": "bad..path"}}
    codes = sorted(d.code for d in impl.check(block("reshape", raw), parse(impl, raw), "p"))
    assert codes == ["INVALID_PATH", "INVALID_RESHAPE_TARGET", "RESHAPE_TARGET_CONFLICT"]


def test_file_ref_payload_roundtrip() -> None:
    ref = FileRef(id="file_1", filename="a.pdf", mime_type="application/pdf")
    assert Payload.from_dict(Payload.file(ref).to_dict()) == Payload.file(ref)


def test_a_condition_group_is_parsed_once_per_config_object(make_ctx: MakeCtx) -> None:
    """parse_group reuses the parse of the same config object; equal copies and invalid
    groups are parsed (and refused) every time."""
    from blocks.control import parse_group

    ctx = make_ctx("conditional", "route")
    raw = {"logical_operator": "and", "sub_conditions": [
        {"path_ref": {"input": "default", "path": "n"}, "operator": "greater_than", "value": 1}]}
    first = parse_group(ctx, raw, "conditions[0].condition")
    assert parse_group(ctx, raw, "conditions[0].condition") is first
    copy = json.loads(json.dumps(raw))
    assert parse_group(ctx, copy, "conditions[0].condition") is not first
    bad = {"logical_operator": "xor", "sub_conditions": []}
    for _ in range(2):
        with pytest.raises(PermanentError, match="route"):
            parse_group(ctx, bad, "conditions[0].condition")
