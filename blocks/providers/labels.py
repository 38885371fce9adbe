"""Words, label variants and label scores for the offline provider (pure functions).

A schema property is looked for under several *variants* of its label, each with a
weight: its name split into words (``invoice_number``, ``invoiceNumber`` -> ``invoice
number``) and its ``title`` (1.0); phrases from its ``description`` (0.95: quoted text,
what follows "also called", "labelled", "e.g.", and comma/"or"-separated short parts);
and a small built-in synonym table for common document fields (0.9, 0.8 for a bare
generic word like "date").

Words are compared in a canonical form: lower case, abbreviations expanded (``no``,
``nr``, ``#`` -> ``number``; ``amt`` -> ``amount``; ``qty`` -> ``quantity``...), plurals
folded (``items`` -> ``item``) and filler words dropped (``the``, ``of``, ``your``...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Any

_WORD = re.compile(r"[^\W_]+|#|№")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
STOPWORDS = frozenset({"the", "of", "a", "an", "your", "our", "its", "this", "that", "is",
                       "are", "was", "be", "to", "in", "for", "and", "please", "en", "de"})
GENERIC = frozenset({"number", "date", "name", "amount", "value", "id", "code", "type", "item",
                     "info", "detail", "data", "text", "field"})
_CANON = {"no": "number", "nr": "number", "num": "number", "nº": "number", "#": "number",
          "№": "number", "amt": "amount", "qty": "quantity", "ref": "reference",
          "inv": "invoice", "dt": "date", "tel": "phone", "telephone": "phone",
          "addr": "address", "desc": "description", "pct": "percent", "vat": "tax",
          "gst": "tax", "mail": "email", "cust": "customer", "acct": "account"}
_SYNONYMS_RAW: dict[str, tuple[str, ...]] = {
    "total amount": ("total", "amount due", "grand total", "total due", "balance due",
                     "total amount due", "invoice total", "total payable", "amount payable"),
    "supplier": ("vendor", "seller", "from", "issued by", "supplier name", "company"),
    "customer": ("bill to", "billed to", "buyer", "client", "sold to", "customer name"),
    "issue date": ("invoice date", "date of issue", "dated", "date issued", "date"),
    "due date": ("payment due", "due", "pay by", "payment date"),
    "invoice number": ("invoice", "invoice id", "bill number"),
    "subtotal": ("sub total", "net amount", "net total"),
    "tax": ("tax amount", "sales tax", "tax total"),
    "order number": ("purchase order", "po number", "order"),
    "account number": ("account", "iban"),
}


def canon(word: str) -> str:
    """The canonical form of one lower-cased word."""
    word = _CANON.get(word, word)
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    return _CANON.get(word, word)


def words(text: str) -> tuple[str, ...]:
    """Canonical label words of ``text`` (snake_case and camelCase are split)."""
    spaced = _CAMEL.sub(" ", text).replace("_", " ").replace("-", " ")
    out = []
    for m in _WORD.finditer(spaced.lower()):
        token = canon(m.group(0))
        if token not in STOPWORDS and not token.isdigit():
            out.append(token)
    return tuple(out)


SYNONYMS: dict[tuple[str, ...], tuple[tuple[str, ...], ...]] = {
    words(k): tuple(words(v) for v in vs) for k, vs in _SYNONYMS_RAW.items()
}
_TRIGGERS = re.compile(
    r"(?:also (?:called|known as)|aka|label(?:l)?ed(?: as)?|named|called|e\.g\.|such as|"
    r"shown as|written as|appears as)\s*:?\s*(.+)", re.I)


def _description_phrases(description: str) -> list[tuple[str, ...]]:
    phrases = [words(q) for q in re.findall(r"[\"'“‘](.+?)[\"'”’]", description)]
    m = _TRIGGERS.search(description)
    if m:
        phrases += [words(p) for p in re.split(r"[,;/]|\bor\b", m.group(1))]
    if len(words(description)) <= 4:
        phrases.append(words(description))
    for part in re.split(r"[,;/()]|\bor\b|\.\s", description):
        if 0 < len(words(part)) <= 3:
            phrases.append(words(part))
    return [p for p in phrases if p and len(p) <= 5]


def variants(name: str, schema: Mapping[str, Any]) -> list[tuple[tuple[str, ...], float]]:
    """Label variants of a property, best weight first, each listed once."""
    found: dict[tuple[str, ...], float] = {}

    def add(phrase: tuple[str, ...], weight: float) -> None:
        if phrase and weight > found.get(phrase, 0.0):
            found[phrase] = weight

    primary = [words(name)]
    if isinstance(schema.get("title"), str):
        primary.append(words(schema["title"]))
    for phrase in primary:
        add(phrase, 1.0)
        for synonym in SYNONYMS.get(phrase, ()):
            add(synonym, 0.8 if len(synonym) == 1 and synonym[0] in GENERIC else 0.9)
    if isinstance(schema.get("description"), str):
        for phrase in _description_phrases(schema["description"]):
            add(phrase, 0.95)
    return sorted(found.items(), key=lambda kv: -kv[1])


def _contiguous(needle: tuple[str, ...], hay: tuple[str, ...]) -> bool:
    n = len(needle)
    return any(hay[i:i + n] == needle for i in range(len(hay) - n + 1))


@lru_cache(maxsize=65536)
def label_score(label: tuple[str, ...], variant: tuple[str, ...]) -> float:
    """How well the label words written in the document name ``variant`` (0 to 1).

    Equal: 1.0. The variant inside a longer label ("grand total" for "total"): 0.92,
    minus 0.07 per extra word. A shorter label made of the variant's words, one of them
    specific ("total" for "total amount"): 0.5 to 0.8. Near-equal spelling: 0.8 x the
    similarity. Anything else: 0.
    """
    if not label or not variant:
        return 0.0
    if label == variant:
        return 1.0
    if _contiguous(variant, label):
        return max(0.6, 0.92 - 0.07 * (len(label) - len(variant)))
    if set(label) < set(variant) and any(w not in GENERIC for w in label):
        return 0.5 + 0.3 * len(label) / len(variant)
    ratio = SequenceMatcher(None, " ".join(label), " ".join(variant)).ratio()
    return 0.8 * ratio if ratio >= 0.85 else 0.0


def best_label_score(label: tuple[str, ...],
                     options: list[tuple[tuple[str, ...], float]]) -> float:
    """The best ``label_score x weight`` of ``label`` over weighted variants."""
    return max((label_score(label, v) * w for v, w in options), default=0.0)
