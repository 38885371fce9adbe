"""The function block: worker-process code mode and in-process python mode."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

from blocks.api_call import ApiCall
from blocks.control import End
from blocks.function import Function
from engine.contracts.errors import ErrorCategory, PermanentError, TransientError
from engine.definition import BlockDef
from tests.blocks.conftest import MakeCtx
from tests.blocks.harness import parse, run_block

pytestmark = pytest.mark.anyio

OUT_ANY = {"type": "object"}


def code_config(code: str, schema: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"language": "python", "code": code, "output_schema": schema or OUT_ANY, **extra}


async def call(make_ctx: MakeCtx, config: dict[str, Any], data: Any, **ctx_kwargs: Any) -> Any:
    ctx = make_ctx("function", "price_line", **ctx_kwargs)
    return await run_block(Function(), ctx, config, {"input-json-0": data})


# ----------------------------------------------------------------------------- code mode

PRICE = """
from models import Input, Output

def transform(input_data: Input) -> Output:
    print("pricing", input_data.sku)
    return Output(sku=input_data.sku, total=input_data.qty * input_data.unit)
"""
PRICE_SCHEMA = {
    "type": "object",
    "properties": {
        "sku": {"type": "string"},
        "total": {"type": "number"},
        "note": {"type": "string"},
    },
    "required": ["sku", "total"],
}


async def test_code_mode_with_permissive_input(make_ctx: MakeCtx) -> None:
    result = await call(
        make_ctx, code_config(PRICE, PRICE_SCHEMA), {"sku": "A", "qty": 3, "unit": 2.5}
    )
    assert result.outputs["output-json-0"].data == {"sku": "A", "total": 7.5}
    art = result.artifact
    assert art["operation"] == "function_invocation" and art["error"] is None
    assert art["inputs"] == {"sku": "A", "qty": 3, "unit": 2.5} and art["output"]["total"] == 7.5
    assert art["stdout"] == "pricing A\n" and art["duration_ms"] >= 0


async def test_input_model_from_upstream_schema(make_ctx: MakeCtx) -> None:
    schema = {
        "type": "object",
        "required": ["qty"],
        "properties": {
            "qty": {"type": "integer"},
            "class": {"type": "string"},
            "unit price": {"type": "number"},
            "customer": {"type": "object", "properties": {"name": {"type": "string"}}},
        },
    }
    code = """
from models import Input

def transform(input_data: Input) -> dict:
    assert type(input_data) is Input, type(input_data)
    return {"qty": input_data.qty, "name": input_data.customer.name,
            "missing": input_data["unit price"], "class": input_data.field_1,
            "dump": input_data.model_dump(by_alias=True, exclude_unset=True)}
"""
    data = {"qty": 2, "class": "x", "customer": {"name": "ACME"}, "extra": True}
    result = await call(make_ctx, code_config(code), data, input_schemas={"input-json-0": schema})
    out = result.outputs["output-json-0"].data
    assert out == {"qty": 2, "name": "ACME", "missing": None, "class": "x", "dump": data}


async def test_nested_permissive_attribute_access_and_list_input(make_ctx: MakeCtx) -> None:
    code = (
        "def transform(d):\n    return d.a.b.c if not isinstance(d, list) else [x * 2 for x in d]\n"
    )
    schema = {"type": ["object", "array", "integer"]}
    assert (await call(make_ctx, code_config(code, schema), {"a": {"b": {"c": 5}}})).outputs[
        "output-json-0"
    ].data == 5
    assert (await call(make_ctx, code_config(code, schema), [1, 2])).outputs[
        "output-json-0"
    ].data == [2, 4]


async def test_code_raising_gives_traceback(make_ctx: MakeCtx) -> None:
    code = (
        "def transform(input_data):\n    helper()\n\n"
        "def helper():\n    raise ValueError('no price for sku')\n"
    )
    with pytest.raises(PermanentError) as info:
        await call(make_ctx, code_config(code), {"sku": "A"})
    err = info.value
    assert err.code == "FUNCTION_RAISED" and err.category is ErrorCategory.PERMANENT
    assert err.message == "function price_line raised ValueError: no price for sku"
    assert err.stack_trace is not None
    assert 'File "<function price_line>", line 5, in helper' in err.stack_trace
    assert "raise ValueError('no price for sku')" in err.stack_trace
    assert "function_worker" not in err.stack_trace


async def test_output_schema_mismatch_names_the_path(make_ctx: MakeCtx) -> None:
    code = "def transform(d):\n    return {'sku': 'A', 'total': 'lots'}\n"
    with pytest.raises(PermanentError, match=r"at total: 'lots' is not of type 'number'") as info:
        await call(make_ctx, code_config(code, PRICE_SCHEMA), {})
    assert info.value.code == "OUTPUT_SCHEMA_MISMATCH"


async def test_timeout_kills_the_worker(make_ctx: MakeCtx, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = (
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "def transform(d):\n    time.sleep(60)\n"
    )
    started = time.monotonic()
    with pytest.raises(TransientError) as info:
        await call(make_ctx, code_config(code, timeout_seconds=2), {})
    assert time.monotonic() - started < 10
    assert info.value.code == "FUNCTION_TIMEOUT" and info.value.category is ErrorCategory.TRANSIENT
    assert "timeout_seconds=2" in info.value.message
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


async def test_cancellation_kills_the_worker(make_ctx: MakeCtx, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = (
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "def transform(d):\n    time.sleep(60)\n"
    )
    with anyio.move_on_after(2) as scope:
        await call(make_ctx, code_config(code), {})
    assert scope.cancelled_caught
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


async def test_user_code_can_raise_a_transient_error(make_ctx: MakeCtx) -> None:
    code = (
        "from engine.contracts.errors import TransientError\n"
        "def transform(d):\n"
        "    raise TransientError('rate limited upstream', code='UPSTREAM_BUSY')\n"
    )
    with pytest.raises(TransientError) as info:
        await call(make_ctx, code_config(code), {})
    assert info.value.code == "UPSTREAM_BUSY" and info.value.message == "rate limited upstream"


@pytest.mark.parametrize(
    ("code", "error_code", "text"),
    [
        (
            "def other(d):\n    return {}\n",
            "FUNCTION_ENTRYPOINT_MISSING",
            "defines no function 'transform'",
        ),
        ("import no_such_module_xyz\n", "FUNCTION_LOAD_ERROR", "ModuleNotFoundError"),
        ("def transform(d):\n    return {1, 2}\n", "FUNCTION_OUTPUT_NOT_JSON", "set"),
        (
            "import os\ndef transform(d):\n    os._exit(3)\n",
            "FUNCTION_CRASHED",
            "exited with code 3",
        ),
    ],
)
async def test_worker_failures(make_ctx: MakeCtx, code: str, error_code: str, text: str) -> None:
    with pytest.raises(PermanentError) as info:
        await call(make_ctx, code_config(code), {})
    assert info.value.code == error_code and text in info.value.message


FIX_ONCE = (
    "Return an Output, a dict or a list holding only JSON values (strings, numbers, "
    "booleans, None, lists and dicts); convert anything else first (a set to a list, a "
    "datetime to an ISO string)."
)


@pytest.mark.parametrize(
    ("code", "returned"),
    [
        ("def transform(d):\n    return {1, 2}\n", "a set"),
        ("def transform(d):\n    return {'sku': 'A', 'tags': [1, {2}]}\n",
         "a dict holding a set at ['tags'][1]"),
        ("def transform(d):\n    return object()\n", "an object"),
    ],
)
async def test_output_not_json_says_the_block_the_value_and_the_fix_once(
    make_ctx: MakeCtx, code: str, returned: str
) -> None:
    with pytest.raises(PermanentError) as info:
        await call(make_ctx, code_config(code), {})
    assert info.value.code == "FUNCTION_OUTPUT_NOT_JSON"
    assert info.value.message == (
        f"function block 'price_line' returned {returned}, which is not JSON. {FIX_ONCE}")
    assert info.value.message.lower().count("return an output") == 1


async def test_fd1_writes_do_not_corrupt_the_protocol(make_ctx: MakeCtx) -> None:
    code = "import os\ndef transform(d):\n    os.write(1, b'noise')\n    return [d, 'ok']\n"
    result = await call(make_ctx, code_config(code, {"type": "array"}), 1)
    assert result.outputs["output-json-0"].data == [1, "ok"]


async def test_entrypoint_and_async_code(make_ctx: MakeCtx) -> None:
    code = "async def main(d):\n    return {'n': d['n'] + 1}\n"
    result = await call(make_ctx, code_config(code, entrypoint="main"), {"n": 1})
    assert result.outputs["output-json-0"].data == {"n": 2}


async def test_secrets_are_exposed_to_the_worker(make_ctx: MakeCtx) -> None:
    code = "import os\ndef transform(d):\n    return {'token': os.environ['API_TOKEN']}\n"
    mounts = {"secrets": [{"name": "token", "env": "API_TOKEN"}]}
    result = await call(make_ctx, code_config(code, mounts=mounts), {}, env={"API_TOKEN": "s3cret"})
    assert result.outputs["output-json-0"].data == {"token": "s3cret"}
    with pytest.raises(PermanentError, match="'API_TOKEN'") as info:
        await call(make_ctx, code_config(code, mounts=mounts), {})
    assert info.value.code == "MISSING_SECRET"


# ----------------------------------------------------------------------------- in-process mode

TARGETS = "tests.blocks.function_targets"


def py_config(name: str, **extra: Any) -> dict[str, Any]:
    return {"python": f"{TARGETS}:{name}", "output_schema": OUT_ANY, **extra}


async def test_in_process_sync_and_async(make_ctx: MakeCtx) -> None:
    result = await call(make_ctx, py_config("double"), {"value": 21})
    assert result.outputs["output-json-0"].data == {"value": 42}
    result = await call(make_ctx, py_config("async_total"), [{"qty": 1}, {"qty": 2}])
    assert result.outputs["output-json-0"].data == {"total": 3.0}


async def test_in_process_errors(make_ctx: MakeCtx) -> None:
    with pytest.raises(PermanentError) as info:
        await call(make_ctx, py_config("raises"), {})
    assert info.value.code == "FUNCTION_RAISED"
    assert info.value.message == "function price_line raised ValueError: bad value"
    assert info.value.stack_trace and "function_targets.py" in info.value.stack_trace
    with pytest.raises(TransientError) as transient:
        await call(make_ctx, py_config("retry_me"), {})
    assert transient.value.code == "BUSY"
    with pytest.raises(TransientError, match="timeout_seconds=1"):
        await call(make_ctx, py_config("slow", timeout_seconds=1, run_in_thread=True), {})


async def test_in_process_output_not_json_reads_like_code_mode(make_ctx: MakeCtx) -> None:
    with pytest.raises(PermanentError) as info:
        await call(make_ctx, py_config("returns_a_set"), {})
    assert info.value.code == "FUNCTION_OUTPUT_NOT_JSON"
    assert info.value.message == (
        "function block 'price_line' returned a dict holding a set at ['tags'][1], which is "
        f"not JSON. {FIX_ONCE}")


@pytest.mark.parametrize(
    ("ref", "code"),
    [
        ("no_such_pkg_xyz.mod:f", "FUNCTION_IMPORT_ERROR"),
        (f"{TARGETS}:missing", "FUNCTION_ENTRYPOINT_MISSING"),
        (f"{TARGETS}:not_callable", "FUNCTION_ENTRYPOINT_MISSING"),
    ],
)
async def test_in_process_bad_references(make_ctx: MakeCtx, ref: str, code: str) -> None:
    with pytest.raises(PermanentError) as info:
        await call(make_ctx, {"python": ref, "output_schema": OUT_ANY}, {})
    assert info.value.code == code


# ----------------------------------------------------------------------------- config checks


def diagnostics(config: dict[str, Any]) -> set[tuple[str, str]]:
    impl = Function()
    found = impl.check(
        BlockDef(id="fn", type="function", config=config),
        parse(impl, config),
        "spec.blocks.fn",
    )
    return {(d.code, d.path) for d in found}


def test_check_requires_output_schema() -> None:
    assert diagnostics({"code": "def transform(d):\n    return d\n"}) == {
        ("MISSING_USER_DECLARED_SCHEMA", "spec.blocks.fn.config.output_schema")
    }


@pytest.mark.parametrize(
    ("config", "code"),
    [
        ({"code": "def transform(:"}, "FUNCTION_SYNTAX_ERROR"),
        ({"code": "def other(d): ..."}, "FUNCTION_ENTRYPOINT_MISSING"),
        ({}, "FUNCTION_SOURCE_MISSING"),
        ({"code": "def transform(d): ...", "python": "a:b"}, "FUNCTION_SOURCE_CONFLICT"),
        ({"python": "not a ref"}, "INVALID_PYTHON_REF"),
        (
            {"language": "typescript", "code": "def transform(d): ..."},
            "UNSUPPORTED_FUNCTION_LANGUAGE",
        ),
        ({"code": "def transform(d): ...", "output_schema": {"type": 3}}, "INVALID_JSON_SCHEMA"),
    ],
)
def test_check_problems(config: dict[str, Any], code: str) -> None:
    assert code in {c for c, _ in diagnostics({"output_schema": OUT_ANY, **config})}


def test_check_accepts_imported_entrypoint_and_valid_config() -> None:
    assert diagnostics(code_config("from json import loads as transform\n")) == set()


def test_config_bounds() -> None:
    bad: dict[str, Any]
    for bad in ({"timeout_seconds": 0}, {"timeout_seconds": 301}, {"table_refs": []}):
        with pytest.raises(ValidationError):
            parse(Function(), {"code": "", **bad})
    assert parse(Function(), {"code": ""}).timeout_seconds == 60


def test_attempt_timeout_comes_from_the_config() -> None:
    assert Function().attempt_timeout(parse(Function(), code_config("x = 1"))) == 60.0
    config = parse(Function(), code_config("x = 1", timeout_seconds=5))
    assert Function().attempt_timeout(config) == 5.0
    assert ApiCall().attempt_timeout(parse(ApiCall(), {"url": "https://example.com"})) == 180.0
    assert End().attempt_timeout(parse(End(), {})) is None
