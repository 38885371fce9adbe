"""Worker process of the ``function`` block: ``python -P -m blocks.function_worker``.

Protocol: the parent writes one JSON request on stdin and reads one JSON response from
stdout, then the worker exits. The parent owns the timeout (it kills the process group).

Request: ``{block_id, code, entrypoint, input, input_schema, output_schema}``.
Response: ``{ok: true, output, stdout, logs, sandbox}`` or ``{ok: false, kind, error_type,
message, traceback, stdout, logs}`` where ``kind`` is ``load | entrypoint | input | raised | output |
block_error`` (``block_error`` also carries ``category, code, context``: user code raised a
stepwell ``BlockError`` such as ``TransientError``).

The worker first applies the sandbox plan it was started with (:mod:`blocks.confine`;
none on a personal machine) and reports the layers applied as ``sandbox``. User code
runs with ``sys.stdout`` captured (its last 64 KiB are returned as ``stdout``) and file
descriptor 1 pointed at stderr, so nothing it prints can corrupt the protocol. What it
prints, writes to ``sys.stderr`` and logs (``logging`` at ``INFO`` and above) also comes
back line by line as ``logs`` (:class:`~engine.contracts.logs.LogEntry` dicts, bounded),
for the step's log: while the code runs, a thread sends the lines written so far every
:data:`LOG_EVERY_S` as stdout lines of their own (``\\x1e`` then a JSON list, see
:mod:`blocks.sandbox`), so the parent keeps them even when it kills the worker; the
response's ``logs`` holds the rest. ``from models import
Input, Output`` works through a lazy in-memory module: pydantic is imported, and the models
are generated, only when the code (or a JSON-object input) needs them. This module is
also imported by the parent for in-process (``python:``) functions, so it keeps its
top-level imports to the standard library.
"""

from __future__ import annotations

import io
import json
import keyword
import linecache
import os
import sys
import traceback
import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

STDOUT_LIMIT = 64 * 1024
_MODEL_CACHE: dict[tuple[str, str], type[BaseModel]] = {}
#: Same models by schema identity (entries hold the schema, so ids stay unique).
_MODEL_BY_ID: dict[tuple[str, int], tuple[Any, type[BaseModel]]] = {}
#: Entries either cache holds before it starts over: a server compiling workflow after
#: workflow would otherwise keep every schema it ever saw.
MODEL_CACHE_LIMIT = 4096
#: The models a full cache keeps when it starts over: the base and the permissive ones.
_KEPT_MODELS = ("__base__", "__permissive__")


# ----------------------------------------------------------------------------- models


def _base_model() -> type[BaseModel]:
    """The base of generated models: extra fields allowed, ``model["key"]`` works."""
    cached = _MODEL_CACHE.get(("__base__", ""))
    if cached is not None:
        return cached
    from pydantic import BaseModel, ConfigDict

    class FunctionModel(BaseModel):
        """A generated Input/Output model (extra fields kept)."""

        model_config = ConfigDict(extra="allow", populate_by_name=True)

        def __getitem__(self, key: str) -> Any:
            for name, info in type(self).model_fields.items():
                if info.alias == key:  # keys that are not identifiers live under aliases
                    return getattr(self, name)
            try:
                return getattr(self, key)
            except AttributeError:
                raise KeyError(key) from None

    _MODEL_CACHE[("__base__", "")] = FunctionModel
    return FunctionModel


#: JSON's scalar types: values taken as they are, with no further check.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def permissive_model(name: str) -> type[BaseModel]:
    """A model that takes any object; nested objects get attribute access too."""
    key = ("__permissive__", name)
    if key in _MODEL_CACHE:
        return _MODEL_CACHE[key]
    from pydantic import model_validator

    base = _base_model()

    def wrap(value: Any) -> Any:
        kind = type(value)
        if kind in _SCALARS:  # most values: no ABC check (isinstance with Mapping is slow)
            return value
        if kind is dict or isinstance(value, Mapping):
            return model.model_validate(value)
        if isinstance(value, list):
            return [wrap(v) for v in value]
        return value

    class Permissive(base):  # type: ignore[misc, valid-type]
        @model_validator(mode="before")
        @classmethod
        def _nest(cls, data: Any) -> Any:
            if type(data) is dict or isinstance(data, Mapping):
                return {k: v if type(v) in _SCALARS else wrap(v) for k, v in data.items()}
            return data

    model: type[BaseModel] = Permissive
    model.__name__ = model.__qualname__ = name
    _MODEL_CACHE[key] = model
    return model


def _usable_name(key: str, base: type) -> bool:
    return (
        key.isidentifier()
        and not keyword.iskeyword(key)
        and not key.startswith("_")
        and not key.startswith("model_")
        and not hasattr(base, key)
    )


def _annotation(name: str, schema: Any) -> Any:
    if not isinstance(schema, Mapping):
        return Any
    kind = schema.get("type")
    if isinstance(kind, list):
        concrete = [k for k in kind if k != "null"]
        if len(concrete) != 1:
            return Any
        inner = _annotation(name, {**schema, "type": concrete[0]})
        return inner | None if "null" in kind else inner
    scalars: dict[str, Any] = {
        "string": str,
        "integer": int,
        "number": int | float,
        "boolean": bool,
    }
    if kind in scalars:
        return scalars[kind]
    if kind == "array":
        items = schema.get("items")
        if not isinstance(items, Mapping):
            return list
        item_type = _annotation(f"{name}Item", items)
        return list[item_type]  # type: ignore[valid-type]
    if kind == "object" or "properties" in schema:
        if isinstance(schema.get("properties"), Mapping):
            return build_model(name, schema)
        return dict
    return Any


def build_model(name: str, schema: Mapping[str, Any] | None) -> type[BaseModel]:
    """A pydantic model for a JSON object schema (permissive when there is none).

    Properties become fields (optional ones default to ``None`` or the schema default);
    names that are not valid Python identifiers keep their key as an alias; unknown
    extra fields are kept.
    """
    # ``type(...) is dict`` first: the ABC check is slow, and schemas are dicts (or
    # None: an input whose upstream declares no schema)
    if schema is None or not (type(schema) is dict or isinstance(schema, Mapping)):
        return permissive_model(name)
    properties = schema.get("properties")
    if not (type(properties) is dict or isinstance(properties, Mapping)):
        return permissive_model(name)
    hit = _MODEL_BY_ID.get((name, id(schema)))
    if hit is not None and hit[0] is schema:
        return hit[1]
    key = (name, json.dumps(schema, sort_keys=True, default=str))
    if len(_MODEL_BY_ID) >= MODEL_CACHE_LIMIT:
        _MODEL_BY_ID.clear()
    if key in _MODEL_CACHE:
        _MODEL_BY_ID[(name, id(schema))] = (schema, _MODEL_CACHE[key])
        return _MODEL_CACHE[key]
    from pydantic import Field, create_model

    if len(_MODEL_CACHE) >= MODEL_CACHE_LIMIT:  # keep the base and permissive models
        # list(): a thread building a model meanwhile (``run_in_thread``) may add one
        for stale in [k for k in list(_MODEL_CACHE) if k[0] not in _KEPT_MODELS]:
            _MODEL_CACHE.pop(stale, None)
    base = _base_model()
    required = set(schema.get("required") or ())
    fields: dict[str, Any] = {}
    for i, (prop, sub) in enumerate(schema["properties"].items()):
        attr = prop if _usable_name(prop, base) else f"field_{i}"
        ann = _annotation(f"{name}_{attr}", sub)
        alias = {"alias": prop} if attr != prop else {}
        if prop in required:
            fields[attr] = (ann, Field(..., **alias))
        else:
            default = sub.get("default") if isinstance(sub, Mapping) else None
            fields[attr] = (ann | None if ann is not Any else Any, Field(default, **alias))
    model: type[BaseModel] = create_model(name, __base__=base, **fields)
    _MODEL_CACHE[key] = model
    _MODEL_BY_ID[(name, id(schema))] = (schema, model)
    return model


def make_input(value: Any, input_schema: Mapping[str, Any] | None) -> Any:
    """``Input.model_validate(value)`` for objects, the plain JSON value otherwise."""
    if type(value) is dict or isinstance(value, Mapping):  # the ABC check is slow
        # what model_validate calls, without its wrapper (half the cost of a small input)
        return build_model("Input", input_schema).__pydantic_validator__.validate_python(value)
    return value


def to_json(value: Any) -> Any:
    """Dump a return value (pydantic models, dicts, lists, scalars) to plain JSON.

    Raises:
        TypeError: the value (or something inside it) has no JSON form.
    """
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:  # the common case, without the ABC checks below; scalars stay as
        # they are without a call each
        return {k if type(k) is str else str(k): v if type(v) in _SCALARS else to_json(v)
                for k, v in value.items()}
    if "pydantic" in sys.modules:
        from pydantic import BaseModel

        if isinstance(value, BaseModel):
            return to_json(value.model_dump(mode="json", by_alias=True, exclude_unset=True))
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cannot turn {_a(type(value).__name__)} into JSON")


#: What to do about a return value :func:`to_json` refuses (said once, by
#: :func:`not_json_message`).
NOT_JSON_FIX = (
    "Return an Output, a dict or a list holding only JSON values (strings, numbers, "
    "booleans, None, lists and dicts); convert anything else first (a set to a list, a "
    "datetime to an ISO string)."
)


def _a(name: str) -> str:
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _refused_at(value: Any) -> tuple[str, str]:
    """``(where, type name)`` of the first part of ``value`` :func:`to_json` refuses
    (``where`` is ``""`` for the value itself, else a subscript such as ``['tags'][0]``).
    Only walked after :func:`to_json` failed, with :func:`to_json` as the judge."""
    if "pydantic" in sys.modules:
        from pydantic import BaseModel

        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if isinstance(value, Mapping):
        parts: Any = value.items()
    elif isinstance(value, list | tuple):
        parts = enumerate(value)
    else:
        return "", type(value).__name__
    for key, part in parts:
        try:
            to_json(part)
        except TypeError:
            where, name = _refused_at(part)
            return f"[{key!r}]{where}", name
    return "", type(value).__name__


def returned_json(value: Any) -> Any:
    """:func:`to_json` of a function's return value, with an error that says what was
    returned and where the part that is not JSON sits.

    Raises:
        TypeError: the message describes the value: ``a set``, or ``a dict holding a set
            at ['tags']``.
    """
    try:
        return to_json(value)
    except TypeError as exc:
        where, name = _refused_at(value)
        returned = _a(type(value).__name__)
        raise TypeError(f"{returned} holding {_a(name)} at {where}" if where else returned
                        ) from exc


def not_json_message(owner: str, returned: str) -> str:
    """The message of a ``FUNCTION_OUTPUT_NOT_JSON`` error.

    Args:
        owner: the block, as :func:`blocks.control.who` names it.
        returned: what was returned, as :func:`returned_json` describes it.
    """
    return f"{owner} returned {returned}, which is not JSON. {NOT_JSON_FIX}"


def models_module(input_schema: Any, output_schema: Any) -> types.ModuleType:
    """The lazy ``models`` module (Input/Output built on first access)."""
    module = types.ModuleType("models", "Generated Input and Output models.")
    builders: dict[str, Callable[[], type]] = {
        "Input": lambda: build_model("Input", input_schema),
        "Output": lambda: build_model("Output", output_schema),
    }

    def __getattr__(name: str) -> type:
        if name not in builders:
            raise AttributeError(f"module 'models' has no {name!r}; it provides Input, Output")
        value = builders[name]()
        setattr(module, name, value)
        return value

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    module.__dict__["__all__"] = ["Input", "Output"]
    return module


# ----------------------------------------------------------------------------- running


def _user_traceback(exc: BaseException, filename: str) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))


def _failure(kind: str, exc: BaseException, filename: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "ok": False,
        "kind": kind,
        "error_type": type(exc).__name__,
        "message": str(exc),
        "traceback": _user_traceback(exc, filename),
    }
    errors = sys.modules.get("engine.contracts.errors")
    if errors is not None and isinstance(exc, errors.BlockError):
        response.update(
            kind="block_error", category=str(exc.category), code=exc.code, context=exc.context
        )
    return response


def _load(code: str, filename: str) -> types.ModuleType:
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    module = types.ModuleType("function_code")
    module.__file__ = filename
    sys.modules["function_code"] = module
    exec(compile(code, filename, "exec"), module.__dict__)
    return module


def _missing_entrypoint(module: types.ModuleType, entrypoint: str) -> dict[str, Any]:
    defined = sorted(
        n
        for n, v in vars(module).items()
        if callable(v) and not n.startswith("_") and getattr(v, "__module__", "") == "function_code"
    )
    return {
        "ok": False,
        "kind": "entrypoint",
        "error_type": "AttributeError",
        "traceback": "",
        "message": f"the code defines no function {entrypoint!r} "
        f"(defined: {', '.join(defined) or 'none'})",
    }


def _call(fn: Callable[..., Any], data: Any) -> Any:
    result = fn(data)
    if hasattr(result, "__await__"):
        import asyncio

        result = asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def handle(request: Mapping[str, Any]) -> dict[str, Any]:
    """Run one request and describe the outcome (never raises for user-code errors)."""
    filename = f"<function {request.get('block_id', '?')}>"
    models = models_module(request.get("input_schema"), request.get("output_schema"))
    sys.modules["models"] = models
    sys.modules.setdefault("input", models)
    sys.modules.setdefault("output", models)
    entrypoint = request.get("entrypoint") or "transform"
    stage = "load"
    try:
        module = _load(request["code"], filename)
        fn = getattr(module, entrypoint, None)
        if not callable(fn):
            return _missing_entrypoint(module, entrypoint)
        stage = "input"
        data = request.get("input")
        input_data = make_input(data, request.get("input_schema"))
        stage = "raised"
        result = _call(fn, input_data)
        stage = "output"
        return {"ok": True, "output": returned_json(result)}
    except BaseException as exc:  # reported to the parent with its traceback
        return _failure(stage, exc, filename)


class TailWriter(io.StringIO):
    """A text stream that keeps only its last ``limit`` characters (printing is bounded)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0

    def write(self, text: str) -> int:
        """Keep ``text``, dropping the oldest output beyond twice the limit."""
        self.parts.append(text)
        self.size += len(text)
        if self.size > 2 * self.limit:
            kept = "".join(self.parts)[-self.limit:]
            self.parts, self.size = [kept], len(kept)
        return len(text)

    def getvalue(self) -> str:
        """The last ``limit`` characters written."""
        return "".join(self.parts)[-self.limit:]


class HeadWriter:
    """Passes the first ``limit`` characters to ``stream``, then drops the rest (once
    saying so): a flood of ``sys.stderr`` writes costs the parent nothing. The step's
    log keeps its own bounded copy."""

    def __init__(self, stream: Any, limit: int) -> None:
        self.stream = stream
        self.left = limit

    def write(self, text: str) -> int:
        """Write while under the limit."""
        if self.left > 0:
            self.stream.write(text[:self.left])
            if len(text) > self.left:
                self.stream.write("\n[stepwell: further stderr output is not forwarded]\n")
            self.left -= len(text)
        return len(text)

    def flush(self) -> None:
        """Flush the stream."""
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


#: How often the worker sends the log lines its code wrote so far.
LOG_EVERY_S = 0.25


class LogSender:
    """Sends what the code logged so far to the parent, from a thread, as log frames on
    the protocol stream (:data:`blocks.sandbox.LOG_FRAME`).

    Args:
        log: the step's log in this worker (a ``StepLog``).
        protocol: the protocol stream (the original stdout).
    """

    def __init__(self, log: Any, protocol: Any) -> None:
        import threading

        self._log, self._protocol = log, protocol
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stepwell-log-sender",
                                        daemon=True)
        try:
            self._thread.start()
        except RuntimeError:  # no thread allowed (process limit): logs come at the end
            self._done.set()

    def _loop(self) -> None:
        while not self._done.wait(LOG_EVERY_S):
            self.send()

    def send(self) -> None:
        """Send the complete lines written since the last send (nothing when none)."""
        with self._lock:
            entries = self._log.take()
            if entries:
                frame = json.dumps([entry.to_dict() for entry in entries])
                self._protocol.write(f"\x1e{frame}\n")
                self._protocol.flush()

    def stop(self) -> None:
        """Stop sending (the response carries what was not sent)."""
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()


def main() -> None:
    """Confine (when started with a sandbox plan), read the request, run it with stdout
    captured, write the response."""
    import logging

    from blocks.confine import apply_from_argv
    from blocks.log_capture import RoutingHandler, TeeStream
    from engine.contracts.logs import LogStream, StepLog

    layers = apply_from_argv(sys.argv)
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # stray writes to fd 1 land in stderr, never in the protocol
    sys.path.append(os.getcwd())  # user helpers importable, after stdlib and stepwell
    request = json.load(sys.stdin)
    log, captured = StepLog(), TailWriter(STDOUT_LIMIT)
    sys.stdout = TeeStream(LogStream.STDOUT, log, captured)  # type: ignore[assignment]
    sys.stderr = TeeStream(LogStream.STDERR, log,  # type: ignore[assignment]
                           HeadWriter(sys.__stderr__, STDOUT_LIMIT))
    root = logging.getLogger()
    root.addHandler(RoutingHandler(log))
    root.setLevel(logging.INFO)
    sender = LogSender(log, protocol)
    try:
        response = handle(request)
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        sender.stop()
    response["stdout"] = captured.getvalue()
    response["logs"] = [entry.to_dict() for entry in log.entries()[log.taken:]]
    response["sandbox"] = layers
    try:
        text = json.dumps(response, allow_nan=False)
    except ValueError as exc:
        text = json.dumps(
            {
                "ok": False,
                "kind": "output",
                "error_type": "ValueError",
                "message": f"the return value is not valid JSON: {exc}",
                "traceback": "",
                "stdout": response.get("stdout", ""),
                "logs": response.get("logs", []),
            }
        )
    protocol.write(text)
    protocol.flush()


if __name__ == "__main__":
    main()
