"""Messages and response schemas the ``openai`` provider sends (pure functions).

Every request asks for JSON through ``response_format: {type: json_schema}``. User
schemas are made *strict-compatible* (:func:`strict_schema`): every property required
but nullable, ``additionalProperties: false``. A schema that cannot be made strict (an
object without ``properties``) is sent with ``strict: false``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from blocks.providers import Label

SYSTEM_EXTRACT = (
    "You extract structured data from documents. Answer with JSON that matches the "
    "schema. Use null for anything the document does not state; never invent values. "
    "Dates are ISO 8601 (YYYY-MM-DD); numbers are plain JSON numbers.")
SYSTEM_CLASSIFY = (
    "You classify documents. Pick exactly one category from the list, explain why in one "
    "or two sentences, give your confidence (0 to 1) and a score per category.")
SYSTEM_SPLIT = (
    "You split a multi-page document into subdocuments. Pages are numbered from 1. Assign "
    "each page to at most one subdocument; leave out types that are not present.")
SYSTEM_PARTITION = (
    "You group the pages of a document by the value of a key. Pages are numbered from 1. "
    "Every group has the key's value as written in the document and its pages.")
SYSTEM_FORM = (
    "You fill in a PDF form. Given the form's field names and some JSON data, say which "
    "value goes into which field. Leave out fields the data does not cover.")
SYSTEM_IMAGE = "You transcribe documents. Return all the text of the image, in reading order."


def pages_block(pages: Sequence[str]) -> str:
    """The pages wrapped in numbered tags."""
    return "\n".join(f"<page {n}>\n{text}\n</page {n}>" for n, text in enumerate(pages, 1))


def with_instructions(system: str, instructions: str | None) -> str:
    """``system`` plus the block's ``instructions``, when it has some."""
    return f"{system}\n\nAdditional instructions:\n{instructions}" if instructions else system


def extract_messages(pages: Sequence[str], extra: Mapping[str, Any] | None,
                     instructions: str | None) -> list[dict[str, Any]]:
    """Chat messages for an extraction."""
    user = "Document:\n" + pages_block(pages)
    if extra:
        user += "\n\nAdditional context (JSON):\n" + json.dumps(extra, default=str)[:20000]
    return [{"role": "system", "content": with_instructions(SYSTEM_EXTRACT, instructions)},
            {"role": "user", "content": user}]


def label_list(labels: Sequence[Label]) -> str:
    """``- name: description`` lines."""
    return "\n".join(f"- {lb.name}: {lb.description}".rstrip(": ") for lb in labels)


def _obj(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def classify_schema(names: Sequence[str]) -> dict[str, Any]:
    """``{reasoning, category, confidence, scores: [{category, score}]}``."""
    enum = {"type": "string", "enum": list(names)}
    return _obj({"reasoning": {"type": "string"}, "category": enum,
                 "confidence": {"type": "number"},
                 "scores": {"type": "array", "items": _obj({"category": enum,
                                                            "score": {"type": "number"}})}})


def split_schema(names: Sequence[str]) -> dict[str, Any]:
    """``{parts: [{name, pages, confidence}]}``."""
    part = _obj({"name": {"type": "string", "enum": list(names)},
                 "pages": {"type": "array", "items": {"type": "integer"}},
                 "confidence": {"type": "number"}})
    return _obj({"parts": {"type": "array", "items": part}})


def partition_schema() -> dict[str, Any]:
    """``{partitions: [{key, pages}], unassigned_pages}``."""
    pages = {"type": "array", "items": {"type": "integer"}}
    return _obj({"partitions": {"type": "array",
                                "items": _obj({"key": {"type": "string"}, "pages": pages})},
                 "unassigned_pages": pages})


def form_schema(field_names: Sequence[str]) -> dict[str, Any]:
    """``{values: [{field, value}]}``."""
    item = _obj({"field": {"type": "string", "enum": list(field_names)},
                 "value": {"type": "string"}})
    return _obj({"values": {"type": "array", "items": item}})


def image_schema() -> dict[str, Any]:
    """``{text}``."""
    return _obj({"text": {"type": "string"}})


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str):
        schema["type"] = [kind, "null"] if kind != "null" else kind
    elif isinstance(kind, list):
        schema["type"] = kind if "null" in kind else [*kind, "null"]
    else:
        return {"anyOf": [schema, {"type": "null"}]}
    if "enum" in schema and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    return schema


def _strict(node: Any) -> tuple[Any, bool]:
    if not isinstance(node, dict):
        return node, True
    ok = True
    props = node.get("properties")
    if isinstance(props, dict):
        for name, sub in props.items():
            sub, sub_ok = _strict(sub)
            props[name] = _nullable(sub) if isinstance(sub, dict) else sub
            ok = ok and sub_ok
        node["required"] = list(props)
        node["additionalProperties"] = False
    elif node.get("type") == "object":
        ok = False
    for key in ("items", "$defs", "definitions"):
        if isinstance(node.get(key), dict):
            if key == "items":
                node[key], sub_ok = _strict(node[key])
                ok = ok and sub_ok
            else:
                for name in list(node[key]):
                    node[key][name], sub_ok = _strict(node[key][name])
                    ok = ok and sub_ok
    for key in ("anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            results = [_strict(b) for b in node[key]]
            node[key] = [b for b, _ in results]
            ok = ok and all(o for _, o in results)
    return node, ok


def strict_schema(schema: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """A strict-mode copy of ``schema`` and whether strict mode can be used."""
    converted, ok = _strict(copy.deepcopy(dict(schema)))
    return converted, ok
