"""JSON Schema checks shared by blocks: schema problems, instance errors, fast validation.

Validation runs on every step that declares a schema (a function's ``output_schema``,
an extract's ``json_schema``...), so it is on the hot path. Two validators per schema,
both cached:

- a compiled ``fastjsonschema`` check, used only when every keyword in the schema means
  the same in draft-07 (what it implements) and in 2020-12 (what ``jsonschema``
  defaults to); it answers "valid" in a few microseconds;
- the ``jsonschema`` validator, which has the last word: anything the fast check does
  not accept, and every schema the fast check does not cover, goes through it, and it
  produces the error messages.

So the fast path never accepts what ``jsonschema`` would reject.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from engine.contracts.blocks import BlockContext
from engine.contracts.errors import Diagnostic, ErrorStage, PermanentError

if TYPE_CHECKING:  # imported on first use: a workflow without schemas never needs it
    import jsonschema

#: Keywords whose meaning is identical in draft-07 and 2020-12, and that both libraries
#: evaluate alike (``format`` is left out: fastjsonschema asserts formats, 2020-12 only
#: annotates them; ``multipleOf`` too: the two round floats differently).
_PORTABLE = frozenset({
    "type", "properties", "required", "additionalProperties", "patternProperties",
    "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "pattern", "minItems", "maxItems",
    "uniqueItems", "minProperties", "maxProperties", "propertyNames", "anyOf", "oneOf",
    "allOf", "not", "title", "description", "default", "examples", "$comment",
    "readOnly", "writeOnly", "deprecated", "items",
})
_CACHE_LIMIT = 4096


def _dotted(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def _who(ctx: BlockContext) -> str:
    return f"{ctx.block_type} block {ctx.block_id!r}"


def _schema_key(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), default=str)


def _portable(schema: Any) -> bool:
    """True when fastjsonschema's draft-07 reading of ``schema`` equals 2020-12's."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, Mapping) or "$schema" in schema:
        return False
    for key, value in schema.items():
        if key not in _PORTABLE:
            return False
        if key in ("properties", "patternProperties"):
            if not isinstance(value, Mapping) or not all(map(_portable, value.values())):
                return False
        elif key in ("additionalProperties", "not", "propertyNames", "items"):
            # ``items`` as a list is tuple validation in draft-07, an error in 2020-12.
            if not _portable(value):
                return False
        elif key in ("anyOf", "oneOf", "allOf"):
            if not isinstance(value, list) or not all(map(_portable, value)):
                return False
    return True


class SchemaChecks:
    """The cached validators of one schema.

    Attributes:
        full: the jsonschema validator (always there; it explains failures).
        fast: a fastjsonschema check for portable schemas, else None.
    """

    __slots__ = ("fast", "full")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        import jsonschema

        self.full = jsonschema.validators.validator_for(schema)(schema)
        self.fast: Callable[[Any], Any] | None = None
        if _portable(schema):
            import fastjsonschema

            try:
                self.fast = fastjsonschema.compile(dict(schema), use_formats=False)
            except Exception:  # noqa: BLE001 - anything it cannot compile goes the slow way
                self.fast = None

    def is_valid(self, instance: Any) -> bool:
        """True when ``instance`` satisfies the schema (the fast check first, if any)."""
        if self.fast is not None:
            try:
                self.fast(instance)
                return True
            except Exception:  # noqa: BLE001 - JsonSchemaException or a quirk: ask jsonschema
                pass
        return bool(self.full.is_valid(instance))


# By identity first (the same config dict on every step of a block), then by canonical
# JSON (a workflow often repeats one schema on many blocks).
_BY_ID: dict[int, tuple[Mapping[str, Any], SchemaChecks]] = {}
_BY_KEY: dict[str, SchemaChecks] = {}
_SCHEMA_PROBLEMS: dict[str, jsonschema.exceptions.SchemaError | None] = {}


def schema_checks(schema: Mapping[str, Any]) -> SchemaChecks:
    """The validators of ``schema``, compiled once and cached.

    Args:
        schema: a JSON schema (looked up by identity, then by canonical JSON).

    Returns:
        Its :class:`SchemaChecks`.
    """
    hit = _BY_ID.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    key = _schema_key(schema)
    checks = _BY_KEY.get(key)
    if checks is None:
        if len(_BY_KEY) > _CACHE_LIMIT:
            _BY_KEY.clear()
        checks = _BY_KEY[key] = SchemaChecks(schema)
    if len(_BY_ID) > _CACHE_LIMIT:
        _BY_ID.clear()
    _BY_ID[id(schema)] = (schema, checks)  # keeps ``schema`` alive: ids stay unique
    return checks


def is_valid(instance: Any, schema: Mapping[str, Any]) -> bool:
    """True when ``instance`` satisfies ``schema`` (the fast check, then jsonschema)."""
    return schema_checks(schema).is_valid(instance)


def schema_errors(instance: Any, schema: Mapping[str, Any]) -> list[dict[str, str]]:
    """Every way ``instance`` breaks ``schema``: ``[{path, message}]``, best first.

    Paths use the condition grammar (``lines[0].qty``); ``<root>`` is the value itself.
    An ``anyOf``/``oneOf`` failure is reported by its most relevant inner failure (so
    ``total: 'abc' is not of type 'number'``, never only "not valid under any of the
    given schemas"); a branch that only allows ``null`` is not the one reported.
    """
    import jsonschema

    validator = schema_checks(schema).full
    errors = sorted(validator.iter_errors(instance), key=jsonschema.exceptions.relevance)
    out = []
    for error in errors:
        inner = _innermost(error)
        path = list(inner.absolute_path)
        if inner.validator == "required" and isinstance(inner.instance, Mapping):
            missing = [k for k in inner.validator_value if k not in inner.instance]
            path += missing[:1]  # name the key itself, not the object that lacks it
        out.append({"path": _dotted(path), "message": inner.message})
    return out


def _innermost(error: Any) -> Any:
    """The inner failure that explains a composition failure (``anyOf``, ``oneOf``...)."""
    import jsonschema

    while error.context:
        useful = [e for e in error.context
                  if not (e.validator == "type" and e.validator_value == "null")]
        error = jsonschema.exceptions.best_match(useful or error.context)
    return error


def _schema_problem(schema: Any) -> jsonschema.exceptions.SchemaError | None:
    import jsonschema

    key = _schema_key(schema)
    if key not in _SCHEMA_PROBLEMS:
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
            _SCHEMA_PROBLEMS[key] = None
        except jsonschema.exceptions.SchemaError as exc:
            _SCHEMA_PROBLEMS[key] = exc
    return _SCHEMA_PROBLEMS[key]


#: Keywords whose values are data, not subschemas: a ``$ref`` key in them is no reference.
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})


def _refs(node: Any, at: tuple[Any, ...] = ()
          ) -> Iterator[tuple[tuple[Any, ...], str | None]]:
    """``(path, ref)`` for every ``$ref`` in a schema, and ``(path, None)`` where a nested
    ``$id`` moves the base URI (the refs below it are left to the validator)."""
    if isinstance(node, Mapping):
        if at and "$id" in node:
            yield at, None
            return
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield (*at, key), value
            elif key not in _DATA_KEYWORDS:
                yield from _refs(value, (*at, key))
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from _refs(value, (*at, n))


def _unresolvable_ref(schema: Any) -> tuple[tuple[Any, ...], str, str] | None:
    """The first ``$ref`` the validator could not resolve: ``(path, ref, reason)``.

    Only local documents are resolved (stepwell never fetches a remote schema), so a
    pointer to nowhere or a remote URL would otherwise fail every step at run time.
    """
    if not isinstance(schema, Mapping):
        return None
    refs = list(_refs(schema))
    if not refs or any(ref is None for _, ref in refs):
        return None
    from jsonschema_specifications import REGISTRY  # type: ignore[import-untyped]
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import DRAFT202012, specification_with

    specification = specification_with(str(schema.get("$schema", "")), default=DRAFT202012)
    resource = specification.create_resource(dict(schema))
    base = resource.id() or ""
    resolver = REGISTRY.with_resource(base, resource).resolver(base_uri=base)
    for where, ref in refs:
        assert ref is not None
        try:
            resolver.lookup(ref)
        except Unresolvable as exc:
            return where, ref, str(exc).split(" within ")[0][:200]
    return None


def schema_diagnostics(schema: Any, path: str) -> list[Diagnostic]:
    """``INVALID_JSON_SCHEMA`` when ``schema`` (at YAML ``path``) is not a JSON Schema, or
    holds a ``$ref`` that points nowhere."""
    if schema is None:
        return []
    exc = _schema_problem(schema)
    if exc is not None:
        return [
            Diagnostic(
                code="INVALID_JSON_SCHEMA",
                message=f"not a valid JSON Schema: {exc.message}",
                path=f"{path}.{_dotted(exc.absolute_path)}" if exc.absolute_path else path,
                fix="fix the schema (see https://json-schema.org/understanding-json-schema)",
            )
        ]
    bad_ref = _unresolvable_ref(schema)
    if bad_ref is not None:
        where, ref, reason = bad_ref
        return [
            Diagnostic(
                code="INVALID_JSON_SCHEMA",
                message=f"$ref {ref!r} cannot be resolved ({reason}); stepwell resolves "
                "references inside the schema only",
                path=f"{path}.{_dotted(where)}",
                fix="point $ref at a definition in the same schema (e.g. `#/$defs/line`), "
                "or inline the referenced schema",
            )
        ]
    return []


def ensure_matches_schema(
    ctx: BlockContext,
    instance: Any,
    schema: Mapping[str, Any] | None,
    what: str,
    *,
    code: str = "OUTPUT_SCHEMA_MISMATCH",
    stage: ErrorStage = ErrorStage.EXECUTION,
) -> None:
    """Raise unless ``instance`` satisfies ``schema`` (no schema: nothing to check).

    Raises:
        PermanentError: ``code``, naming the first failing path; all paths in context.
    """
    if not schema or schema_checks(schema).is_valid(instance):
        return
    errors = schema_errors(instance, schema)
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise PermanentError(
            f"{_who(ctx)}: {what} does not match its schema at {first['path']}: "
            f"{first['message']}{more}. Fix the data or the schema.",
            stage=stage,
            code=code,
            context={"errors": errors[:20]},
        )
