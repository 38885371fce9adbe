"""Where labels and values sit in a document's text (offline provider).

The text comes from pypdf's layout mode (or a text file), so cells of one line are
separated by two or more spaces, a tab or ``|``: those are *segments*, with their
column span. :class:`TextIndex` turns lines into candidate ``(label, value)``
:class:`Pair` s, each with a layout weight:

==========================================  ======
layout                                      weight
==========================================  ======
``Label: value`` in one segment             1.00
``Label:`` then the next segment            0.95
``Label:`` alone, value on the next line    0.90
table: header cell above the aligned cell   0.90
``Label value`` in one segment              0.90
``Label`` then the next segment             0.85
a line that is only ``Label``, value below  0.85
==========================================  ======

``Label value`` depends on which label is looked for, so :meth:`TextIndex.inline`
computes it per variant. :meth:`TextIndex.table` finds header rows for arrays of
objects, :meth:`TextIndex.section` a heading's block of lines for nested objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from blocks.providers.labels import words

_SEGMENT = re.compile(r"(?:(?!\s{2}|\t|\|).)+")
_COLON = re.compile(r"^(?P<label>[^:]*?[^\d\s:][^:]*?)\s*:(?!\d)\s*(?P<value>.*)$")
_VALUE_TRIM = " \t:;#=–—-.|"


@dataclass(frozen=True, slots=True)
class Segment:
    """One cell of a line: its text and column span."""

    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Pair:
    """A candidate label/value pair found at ``line``."""

    label: tuple[str, ...]
    value: str
    weight: float
    line: int


def _segments(line: str) -> list[Segment]:
    out = []
    for m in _SEGMENT.finditer(line):
        text = m.group(0).strip()
        if text and not re.fullmatch(r"[-:=_\s]+", text):
            lead = len(m.group(0)) - len(m.group(0).lstrip())
            out.append(Segment(text, m.start() + lead, m.start() + lead + len(text)))
    return out


def _labelish(text: str) -> bool:
    return bool(re.search(r"[^\W\d_]", text)) and 0 < len(words(text)) <= 6


def _aligned(seg: Segment, row: list[Segment]) -> Segment | None:
    best, overlap = None, 0
    for cell in row:
        shared = min(seg.end, cell.end) - max(seg.start, cell.start)
        if shared > overlap:
            best, overlap = cell, shared
    return best


class TextIndex:
    """Candidate pairs over the lines of ``text`` (see the module docstring)."""

    def __init__(self, text: str) -> None:
        self.lines = text.replace("\r\n", "\n").replace("\f", "\n").split("\n")
        self.rows = [_segments(line) for line in self.lines]
        self._tokens: dict[tuple[int, int], list[tuple[str, int]]] = {}
        self.pairs: list[Pair] = []
        for i in range(len(self.lines)):
            self.pairs.extend(self._pairs_at(i))

    def next_row(self, i: int) -> int | None:
        """Index of the next non-blank line after ``i`` (None at the end)."""
        for j in range(i + 1, len(self.rows)):
            if self.rows[j]:
                return j
        return None

    def _pairs_at(self, i: int) -> Iterator[Pair]:
        row = self.rows[i]
        nxt = self.next_row(i)
        below = self.rows[nxt] if nxt is not None else []
        for k, seg in enumerate(row):
            m = _COLON.match(seg.text)
            if m and _labelish(m["label"]):
                label, value = words(m["label"]), m["value"].strip(_VALUE_TRIM)
                if value:
                    yield Pair(label, value, 1.0, i)
                elif k + 1 < len(row):
                    yield Pair(label, row[k + 1].text, 0.95, i)
                elif below:
                    cell = _aligned(seg, below) or below[0]
                    if not _COLON.match(cell.text):
                        yield Pair(label, cell.text, 0.9, i)
                continue
            if not _labelish(seg.text):
                continue
            if k + 1 < len(row):
                yield Pair(words(seg.text), row[k + 1].text, 0.85, i)
            if len(row) >= 2 and len(below) >= 2 and (under := _aligned(seg, below)):
                yield Pair(words(seg.text), under.text, 0.9, i)
            elif len(row) == 1 and below and not _COLON.match(below[0].text):
                yield Pair(words(seg.text), below[0].text, 0.85, i)

    def inline(self, variant: tuple[str, ...], lines: range | None = None) -> Iterator[Pair]:
        """``Label value`` pairs for ``variant``: the label starts a segment (after at
        most two other words) and the rest of the segment is the value."""
        n = len(variant)
        for i in lines if lines is not None else range(len(self.rows)):
            for k, seg in enumerate(self.rows[i]):
                kept = self._words(i, k)
                flat = [w for w, _ in kept]
                for p in range(min(3, len(flat) - n + 1)):
                    if tuple(flat[p:p + n]) == variant:
                        value = seg.text[kept[p + n - 1][1]:].strip(_VALUE_TRIM)
                        if value:
                            yield Pair(tuple(flat[:p + n]), value, 0.9, i)
                        break

    def _words(self, line: int, index: int) -> list[tuple[str, int]]:
        """Canonical words of one segment with the offset where each ends (cached)."""
        key = (line, index)
        if key not in self._tokens:
            text = self.rows[line][index].text
            found = []
            for m in re.finditer(r"[^\W_]+|#|№", text):
                canon = words(m.group(0))
                if canon:
                    found.append((canon[0], m.end()))
            self._tokens[key] = found
        return self._tokens[key]

    def table(self, min_columns: int = 2) -> Iterator[tuple[int, list[Segment]]]:
        """Header candidates: ``(line, cells)`` for lines with several label-like cells."""
        for i, row in enumerate(self.rows):
            cells = [s for s in row if _labelish(s.text) and ":" not in s.text]
            if len(cells) >= min_columns:
                yield i, cells

    def body_rows(self, header: int, cells: list[Segment]) -> Iterator[list[Segment | None]]:
        """The rows under a header: per header cell, the aligned cell (or None). Stops
        at a blank line or a row that aligns with fewer than half of the columns."""
        for j in range(header + 1, len(self.rows)):
            row = self.rows[j]
            if not row:
                return
            aligned = [_aligned(cell, row) for cell in cells]
            if sum(a is not None for a in aligned) * 2 < len(cells) or len(row) < 2:
                return
            yield aligned

    def section(self, options: list[tuple[tuple[str, ...], float]],
                threshold: float = 0.85) -> range | None:
        """The lines under a heading that names ``options`` (a line holding only the
        label, maybe with a colon), up to the next blank line (at most 12 lines)."""
        from blocks.providers.labels import best_label_score

        for i, row in enumerate(self.rows):
            if len(row) != 1 or not _labelish(row[0].text):
                continue
            text = row[0].text.rstrip(":").strip()
            if ":" in text or best_label_score(words(text), options) < threshold:
                continue
            end = i + 1
            while end < len(self.rows) and self.rows[end] and end - i <= 12:
                end += 1
            if end > i + 1:
                return range(i + 1, end)
        return None
