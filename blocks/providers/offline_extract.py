"""Offline extraction: fill a JSON Schema from a document's text without a model.

For every property of the schema (:func:`extract_offline`):

* **leaves** (string, number, integer, boolean, dates): every candidate pair of the
  :class:`~blocks.providers.text_index.TextIndex` whose label names one of the
  property's variants (:mod:`blocks.providers.labels`) and whose value coerces to the
  property's type (:mod:`blocks.providers.coerce`) scores ``label score x variant
  weight x layout weight``; the best wins (ties: the earliest in the text). The score is
  the leaf's likelihood: 1.0 for an exact ``Name: value``, lower for a looser match, 0
  when nothing was found (the value is then ``null``). A ``currency`` string with no
  label falls back to the first currency code or symbol in the text (0.6).
* **objects**: a heading line naming the object (``Supplier``, ``Bill to:``) scopes its
  children to the lines below it (string children no label names then take the
  unlabelled lines in order, an ``address`` child all the rest, at 0.5); without a
  heading, children are looked for as
  ``<object> <child>`` (full weight) or as ``<child>`` alone (x 0.75).
* **arrays of objects**: the header row whose cells name the most item properties (at
  least two, or the only one) and the rows aligned under it, one item per row.
* **arrays of scalars**: a labelled value split on ``,`` and ``;``.
* **required keys without a declaration** (in ``required`` but not in ``properties``):
  looked for as untyped fields, by their name; a plain number is a number, other text a
  string, and a key not found is ``null`` (which an undeclared key allows).

``$ref`` to ``#/$defs/...`` or ``#/definitions/...`` and ``anyOf``/``oneOf`` (first
non-null branch) are followed; other composition keywords are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from blocks.providers import coerce as co
from blocks.providers.labels import best_label_score, variants, words
from blocks.providers.text_index import TextIndex

Variants = list[tuple[tuple[str, ...], float]]
_MAX_DEPTH = 8


def resolve(schema: Any, root: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema`` with local ``$ref`` and ``anyOf``/``oneOf`` followed (a few levels)."""
    for _ in range(_MAX_DEPTH):
        if not isinstance(schema, Mapping):
            return {}
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            node: Any = root
            for part in ref[2:].split("/"):
                node = node.get(part, {}) if isinstance(node, Mapping) else {}
            schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
            continue
        branches = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(branches, list) and "type" not in schema:
            usable = [b for b in branches if isinstance(b, Mapping) and b.get("type") != "null"]
            merged = {**(usable[0] if usable else {}),
                      **{k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}}
            schema = merged
            continue
        return schema
    return schema if isinstance(schema, Mapping) else {}


def _undeclared_required(schema: Mapping[str, Any], properties: Mapping[str, Any]) -> list[str]:
    """Keys ``required`` lists that ``properties`` does not declare (looked for untyped)."""
    required = schema.get("required")
    if not isinstance(required, list):
        return []
    return [k for k in required if isinstance(k, str) and k not in properties]


_PLAIN_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _untyped(value: Any) -> Any:
    """A found text for a field without a type: a plain number becomes a number."""
    if isinstance(value, str) and _PLAIN_NUMBER.match(value):
        return float(value) if "." in value else int(value)
    return value


def extract_offline(text: str, schema: Mapping[str, Any]) -> tuple[Any, Any]:
    """``(data, likelihoods)`` for ``schema`` (an object schema) from ``text``."""
    index = TextIndex(text)
    extractor = _Extractor(index, text, schema)
    return extractor.object(resolve(schema, schema), None, (), 0)


def find_value(text: str, label: str, schema: Mapping[str, Any] | None = None) -> tuple[Any, float]:
    """The value ``label`` (e.g. "invoice number") names in ``text``, and its score."""
    leaf = schema or {"type": "string"}
    return _Extractor(TextIndex(text), text, leaf).leaf(label, leaf, None, ())


class _Extractor:
    def __init__(self, index: TextIndex, text: str, root: Mapping[str, Any]) -> None:
        self.index = index
        self.text = text
        self.root = root

    def node(self, name: str, schema: Mapping[str, Any], scope: range | None,
             prefix: tuple[str, ...], depth: int) -> tuple[Any, Any]:
        kind = co.leaf_type(schema)
        nested = isinstance(schema.get("properties"), Mapping)
        if depth < _MAX_DEPTH and kind == "object" and nested:
            options = variants(name, schema)
            section = self.index.section(options)
            if section is not None:
                data, likelihoods = self.object(schema, section, (), depth + 1)
                self.unlabelled(schema, section, data, likelihoods)
                return data, likelihoods
            return self.object(schema, scope, prefix + words(name), depth + 1)
        if kind == "array":
            return self.array(name, schema, scope, prefix, depth)
        return self.leaf(name, schema, scope, prefix)

    def object(self, schema: Mapping[str, Any], scope: range | None,
               prefix: tuple[str, ...], depth: int) -> tuple[dict[str, Any], dict[str, Any]]:
        data: dict[str, Any] = {}
        likelihoods: dict[str, Any] = {}
        properties = schema.get("properties") or {}
        for name, raw in properties.items():
            sub = resolve(raw, self.root)
            data[name], likelihoods[name] = self.node(name, sub, scope, prefix, depth)
        for name in _undeclared_required(schema, properties):
            value, likelihoods[name] = self.leaf(name, {"type": "string"}, scope, prefix)
            data[name] = _untyped(value)
        return data, likelihoods

    def unlabelled(self, schema: Mapping[str, Any], section: range, data: dict[str, Any],
                   likelihoods: dict[str, Any]) -> None:
        """Fill string children still empty from the section's unlabelled lines, in
        order (an address-like child takes all the remaining lines)."""
        lines = [self.index.lines[i].strip() for i in section
                 if ":" not in self.index.lines[i] and self.index.lines[i].strip()]
        lines = [ln for ln in lines if ln not in {str(v) for v in data.values()}]
        for name, raw in (schema.get("properties") or {}).items():
            sub = resolve(raw, self.root)
            if data.get(name) is not None or co.leaf_type(sub) != "string" or not lines:
                continue
            if "address" in words(name) or "address" in words(str(sub.get("description", ""))):
                data[name], lines = ", ".join(re.sub(r"\s{2,}", " ", ln) for ln in lines), []
            else:
                data[name] = lines.pop(0)
            likelihoods[name] = 0.5

    def options(self, name: str, schema: Mapping[str, Any], prefix: tuple[str, ...]) -> Variants:
        own = variants(name, schema)
        if not prefix:
            return own
        return [(prefix + v, w) for v, w in own] + [(v, w * 0.75) for v, w in own]

    def leaf(self, name: str, schema: Mapping[str, Any], scope: range | None,
             prefix: tuple[str, ...]) -> tuple[Any, float]:
        options = self.options(name, schema, prefix)
        best: tuple[float, int, Any] | None = None
        pairs = [p for p in self.index.pairs if scope is None or p.line in scope]
        for variant, _ in options:
            pairs.extend(self.index.inline(variant, scope))
        for pair in pairs:
            label = best_label_score(pair.label, options)
            if label <= 0:
                continue
            value = co.coerce(pair.value, schema)
            if value is None or (isinstance(value, str) and value.endswith(":")):
                continue
            score = round(min(1.0, label * pair.weight), 2)
            if best is None or score > best[0] or (score == best[0] and pair.line < best[1]):
                best = (score, pair.line, value)
        if best is not None:
            return best[2], best[0]
        if "currency" in words(name) and co.leaf_type(schema) == "string":
            found = co.parse_currency(self.text)
            if found is not None and ("enum" not in schema or found in schema["enum"]):
                return found, 0.6
        return None, 0.0

    def array(self, name: str, schema: Mapping[str, Any], scope: range | None,
              prefix: tuple[str, ...], depth: int) -> tuple[list[Any], list[Any]]:
        items = resolve(schema.get("items") or {}, self.root)
        if co.leaf_type(items) == "object" and isinstance(items.get("properties"), Mapping):
            return self.rows(items)
        text, score = self.leaf(name, {"type": "string"}, scope, prefix)
        if not isinstance(text, str):
            return [], []
        values = [co.coerce(part, items) for part in re.split(r"[;,]\s*", text) if part.strip()]
        kept = [v for v in values if v is not None]
        return kept, [score] * len(kept)

    def rows(self, items: Mapping[str, Any]) -> tuple[list[Any], list[Any]]:
        props = {n: resolve(s, self.root) for n, s in items["properties"].items()}
        need = min(2, len(props))
        best: tuple[int, int, dict[str, tuple[int, float]]] | None = None
        for line, cells in self.index.table(min_columns=need):
            columns: dict[str, tuple[int, float]] = {}
            for prop, sub in props.items():
                options = variants(prop, sub)
                scores = [best_label_score(words(c.text), options) for c in cells]
                top = max(range(len(cells)), key=lambda k: scores[k])
                if scores[top] >= 0.6:
                    columns[prop] = (top, scores[top])
            if len(columns) >= need and (best is None or len(columns) > len(best[2])):
                best = (line, len(columns), columns)
        if best is None:
            return [], []
        line, _, columns = best
        cells = next(c for i, c in self.index.table(min_columns=need) if i == line)
        data, likelihoods = [], []
        for row in self.index.body_rows(line, cells):
            item, item_lk = self.row(row, props, columns)
            if any(v is not None for v in item.values()):
                data.append(item)
                likelihoods.append(item_lk)
        return data, likelihoods

    @staticmethod
    def row(row: list[Any], props: Mapping[str, Mapping[str, Any]],
            columns: Mapping[str, tuple[int, float]]) -> tuple[dict[str, Any], dict[str, float]]:
        item: dict[str, Any] = {}
        likelihoods: dict[str, float] = {}
        for prop, sub in props.items():
            cell = row[columns[prop][0]] if prop in columns else None
            value = co.coerce(cell.text, sub) if cell is not None else None
            item[prop] = value
            likelihoods[prop] = round(columns[prop][1] * 0.9, 2) if value is not None else 0.0
        return item, likelihoods
