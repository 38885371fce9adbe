"""Turning the text next to a label into a value of a JSON Schema type (offline provider).

Each ``parse_*`` function takes the raw text found after a label and returns the value,
or None when the text does not hold one:

* numbers: currency signs and codes are ignored (``€1,234.56``, ``$ 12``, ``EUR 2,125``);
  separators are read from their shape: with both ``.`` and ``,`` the last one is the
  decimal mark (``1.234,56`` and ``1,234.56`` are both 1234.56); a lone ``,`` followed by
  exactly three digits groups thousands (``1,234``), otherwise it is decimal (``12,50``);
  a lone ``.`` is decimal unless it repeats (``1.234.567``). Apostrophes, no-break and
  thin spaces group thousands (plain spaces do not: they separate table cells);
  ``(12.00)`` is negative. A number glued to letters (``INV-2026``) is not a number.
* dates (``format: date``): ISO ``2026-03-12``, ``2026/03/12``; numeric day first
  ``12/03/2026``, ``12.03.2026``, ``12-03-26`` (month first only when the day slot
  exceeds 12: ``03/25/2026``); month names ``March 12, 2026``, ``12 Mar 2026``,
  ``12-Mar-2026``; two-digit years are 20xx below 70, else 19xx.
* booleans: yes/no, true/false, y/n, x/✓/☑ (checked), ☐ (unchecked), on/off, 1/0.
* strings: the text itself, trimmed; an ``enum`` picks the option the text names.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

CURRENCY_SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP", "¥": "JPY", "₹": "INR", "CHF": "CHF"}
CURRENCY_CODES = ("EUR", "USD", "GBP", "CHF", "JPY", "CAD", "AUD", "SEK", "NOK", "DKK", "PLN",
                  "CZK", "INR", "CNY", "BRL", "MXN", "ZAR", "NZD", "SGD", "HKD")
_NUMBER = re.compile(
    r"(?<![\w.,-])\(?(?P<sign>[-+−]\s?)?"
    r"(?P<num>\d{1,3}(?:['’\u202f\u00a0.,]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?)(?![\w])")
_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}
_TRUE = {"yes", "y", "true", "t", "x", "✓", "✔", "☑", "☒", "checked", "on", "1", "[x]", "oui",
         "ja", "si", "sí"}
_FALSE = {"no", "n", "false", "f", "☐", "unchecked", "off", "0", "[ ]", "none", "non", "nein"}


def _normalise_digits(raw: str) -> str | None:
    body = re.sub(r"[\s'’\u202f\u00a0]", "", raw)
    dots, commas = body.count("."), body.count(",")
    if dots and commas:
        decimal = "." if body.rfind(".") > body.rfind(",") else ","
        group = "," if decimal == "." else "."
        return body.replace(group, "").replace(decimal, ".")
    if commas:
        tail = body.split(",")[-1]
        if commas == 1 and len(tail) != 3:
            return body.replace(",", ".")
        return body.replace(",", "")
    if dots > 1:
        return body.replace(".", "")
    return body


def parse_number(text: str, *, integer: bool = False) -> float | int | None:
    """The first number in ``text`` (see the module docstring for the formats)."""
    for match in _NUMBER.finditer(text):
        digits = _normalise_digits(match["num"])
        if digits is None or not re.fullmatch(r"\d+(\.\d+)?", digits):
            continue
        value = float(digits)
        bracketed = match.group(0).startswith("(") and text[match.end():].startswith(")")
        if bracketed or (match["sign"] or "").strip() in ("-", "−"):
            value = -value
        if integer:
            return int(value) if value.is_integer() else None
        return int(value) if value.is_integer() and "." not in digits else value
    return None


def _year(raw: str) -> int:
    year = int(raw)
    if len(raw) == 2:
        year += 2000 if year < 70 else 1900
    return year


def _date(year: int, month: int, day: int) -> str | None:
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return None


def _month(word: str) -> int | None:
    return _MONTHS.get(word[:3].lower()) if len(word) >= 3 else None


def parse_date(text: str) -> str | None:
    """An ISO ``YYYY-MM-DD`` date from the first date-looking part of ``text``."""
    m = re.search(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b", text)
    if m:
        return _date(int(m[1]), int(m[2]), int(m[3]))
    m = re.search(r"\b(\d{1,2})[-/.](\d{1,2})[-/.](\d{4}|\d{2})\b", text)
    if m:
        first, second, year = int(m[1]), int(m[2]), _year(m[3])
        if first <= 12 < second:
            return _date(year, first, second)
        return _date(year, second, first)
    m = re.search(r"\b([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b", text)
    if m and _month(m[1]):
        return _date(int(m[3]), _month(m[1]) or 0, int(m[2]))
    m = re.search(r"\b(\d{1,2})(?:st|nd|rd|th)?[\s-]+([A-Za-z]{3,9})\.?[\s-]+(\d{4}|\d{2})\b", text)
    if m and _month(m[2]):
        return _date(_year(m[3]), _month(m[2]) or 0, int(m[1]))
    return None


def parse_datetime(text: str) -> str | None:
    """``YYYY-MM-DDTHH:MM:SS`` from a date and an optional ``HH:MM[:SS]`` time."""
    day = parse_date(text)
    if day is None:
        return None
    m = re.search(r"\b(\d{1,2}):(\d{2})(?::(\d{2}))?\b", text)
    hh, mm, ss = (int(m[1]), int(m[2]), int(m[3] or 0)) if m else (0, 0, 0)
    return f"{day}T{hh:02d}:{mm:02d}:{ss:02d}"


def parse_bool(text: str) -> bool | None:
    """True/False from the usual spellings (see the module docstring)."""
    word = text.strip().lower().rstrip(".")
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    first = word.split()[0] if word.split() else ""
    return True if first in _TRUE - {"1", "x"} else False if first in _FALSE - {"0"} else None


def parse_enum(text: str, options: list[Any]) -> Any:
    """The option ``text`` names: equal ignoring case, else named as a whole word."""
    lowered = text.strip().lower()
    for option in options:
        if str(option).lower() == lowered:
            return option
    for option in options:
        if re.search(rf"(?<!\w){re.escape(str(option).lower())}(?!\w)", lowered):
            return option
    return None


def parse_currency(text: str) -> str | None:
    """An ISO currency code named in ``text`` (``EUR``) or implied by a symbol (``€``)."""
    for code in CURRENCY_CODES:
        if re.search(rf"\b{code}\b", text):
            return code
    for symbol, code in CURRENCY_SYMBOLS.items():
        if symbol in text:
            return code
    return None


def clean_string(text: str) -> str | None:
    """``text`` trimmed of spaces and stray separators; None when nothing is left."""
    value = text.strip().strip(":;|").strip()
    return value or None


def coerce(text: str, schema: Mapping[str, Any]) -> Any:
    """``text`` as a value of ``schema`` (a resolved leaf schema), or None.

    Args:
        text: the raw text after a label.
        schema: ``{type, format?, enum?}``; ``type`` may be a list (``null`` ignored).
    """
    kind = leaf_type(schema)
    if "enum" in schema:
        return parse_enum(text, list(schema["enum"]))
    if kind in ("number", "integer"):
        return parse_number(text, integer=kind == "integer")
    if kind == "boolean":
        return parse_bool(text)
    fmt = schema.get("format")
    if fmt == "date":
        return parse_date(text)
    if fmt == "date-time":
        return parse_datetime(text)
    if fmt == "email":
        m = re.search(r"[\w.+-]+@[\w-]+\.[\w.-]+", text)
        return m.group(0) if m else None
    return clean_string(text)


def leaf_type(schema: Mapping[str, Any]) -> str:
    """The JSON type a schema asks for (``string`` when it does not say)."""
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    return str(kind)
