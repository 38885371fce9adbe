"""The ``offline`` provider: deterministic document heuristics, no network, no model.

* **extract**: label/value matching (:mod:`blocks.providers.offline_extract`). JSON
  context inputs are appended to the text as ``key path: value`` lines, after the
  document, so a document label wins a tie.
* **classify** and **split**: keyword scoring. A category's keywords are the words of
  its name (weight 2) and description (weight 1, minus filler such as "document");
  a page scores ``sum(weight x log(1 + occurrences))`` plus 3 when the whole name
  appears as a phrase. Scores are normalised to sum to 1; the best wins, ties go to the
  first category; with no evidence at all a category named like "other" wins if there
  is one, else the first.
* **split** assigns each page to its best subdocument; a page with no evidence
  continues the previous page's subdocument (leading ones join the first found); a page
  that says "page 1 of N" starts a new instance. Consecutive pages form one part.
* **partition**: per page, the value labelled by ``key`` (found like an extracted
  string); pages without one continue the previous partition, leading ones are
  unassigned; equal values share a partition.
* **map_form_fields**: field names and data keys compared as label words; greedy
  best-first assignment above 0.6.

``n_consensus`` > 1 asks the same question again and votes (:mod:`consensus`); the
answers always agree, so every found leaf gets likelihood 1.0 (missing ones 0.0).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from blocks.pdf import FormField
from blocks.providers import (
    CallContext,
    Classification,
    ExtractionResult,
    FormMapping,
    ImageText,
    Label,
    Partition,
    PartitionResult,
    SplitPart,
    SplitResult,
    Usage,
    json_as_text,
)
from blocks.providers import coerce as co
from blocks.providers.consensus import vote
from blocks.providers.labels import label_score, words
from blocks.providers.offline_extract import extract_offline, find_value
from engine.contracts.errors import PermanentError

MODEL = "offline"
_FILLER = frozenset({"document", "page", "with", "contain", "containing", "any", "other",
                     "e", "g", "such", "like", "from", "it", "or", "on", "by", "usually",
                     "typically", "often", "has", "have", "which", "who", "what", "e.g"})
_OTHER = frozenset({"other", "unknown", "misc", "miscellaneous", "none"})
_FIRST_PAGE = re.compile(r"\bpage\s+1\s*(?:of|/)\s*\d+", re.IGNORECASE)


def _usage() -> Usage:
    return Usage(model=MODEL, cost=0.0)


def _mask_missing(data: Any, likelihoods: Any) -> Any:
    if isinstance(data, Mapping) and isinstance(likelihoods, Mapping):
        return {k: _mask_missing(data.get(k), v) for k, v in likelihoods.items()}
    if isinstance(data, list) and isinstance(likelihoods, list):
        return [_mask_missing(d, v) for d, v in zip(data, likelihoods, strict=False)]
    return 0.0 if data is None else likelihoods


def keywords(label: Label) -> dict[str, float]:
    """Scoring keywords of a category or subdocument (see the module docstring)."""
    found = {w: 2.0 for w in words(label.name) if w not in _FILLER}
    for word in words(label.description):
        if word not in _FILLER and len(word) > 2:
            found.setdefault(word, 1.0)
    return found


def score_text(text: str, label: Label) -> float:
    """How strongly ``text`` looks like ``label`` (0 = no evidence)."""
    tokens = Counter(words(text))
    score = sum(w * math.log1p(tokens[k]) for k, w in keywords(label).items())
    name = " ".join(words(label.name))
    if name and f" {name} " in f" {' '.join(words(text))} ":
        score += 3.0
    return score


def normalise(scores: Mapping[str, float]) -> dict[str, float]:
    """Scores scaled to sum to 1 (all zero stays zero)."""
    total = sum(scores.values())
    return {k: round(v / total, 4) if total else 0.0 for k, v in scores.items()}


def best_label(scores: Mapping[str, float], labels: Sequence[Label]) -> str:
    """The top-scoring name (ties: first); with no evidence, an "other"-like one."""
    if not any(scores.values()):
        fallback = [lb.name for lb in labels if set(words(lb.name)) & _OTHER]
        return fallback[0] if fallback else labels[0].name
    return max(labels, key=lambda lb: (scores[lb.name], -labels.index(lb))).name


class OfflineProvider:
    """See the module docstring. Stateless; safe to share between runs."""

    name = "offline"

    @property
    def supports_vision(self) -> bool:
        """The offline provider cannot read images."""
        return False

    async def extract(self, pages: Sequence[str], json_schema: Mapping[str, Any], *,
                      model: str | None, n_consensus: int, context: CallContext,
                      extra: Mapping[str, Any] | None = None) -> ExtractionResult:
        """Label/value extraction (module docstring); never raises on odd text."""
        text = "\n\n".join(pages)
        if extra:
            text += "\n\n" + json_as_text(dict(extra))
        data, likelihoods = extract_offline(text, json_schema)
        if n_consensus <= 1:
            return ExtractionResult(data=data, likelihoods=likelihoods, choices=[data],
                                    usage=_usage())
        choices = [data] * n_consensus
        voted, agreement = vote(choices)
        return ExtractionResult(data=voted, likelihoods=_mask_missing(voted, agreement),
                                choices=choices, usage=_usage())

    async def classify(self, pages: Sequence[str], categories: Sequence[Label], *,
                       model: str | None, first_n_pages: int | None,
                       context: CallContext) -> Classification:
        """Keyword scoring over the first ``first_n_pages`` pages."""
        text = "\n".join(pages[:first_n_pages] if first_n_pages else pages)
        raw = {c.name: score_text(text, c) for c in categories}
        scores = normalise(raw)
        chosen = best_label(raw, list(categories))
        hits = Counter(words(text))
        found = [f"{k} x{hits[k]}" for k in keywords(next(c for c in categories
                                                          if c.name == chosen)) if hits[k]]
        reasoning = (f"matched {', '.join(found)}" if found and raw[chosen]
                     else "no category keyword found; fell back to " + repr(chosen))
        return Classification(category=chosen, reasoning=reasoning, scores=scores,
                              likelihood=scores[chosen] if raw[chosen] else 0.0, usage=_usage())

    async def split(self, pages: Sequence[str], subdocuments: Sequence[Label], *,
                    model: str | None, allow_multiple: bool,
                    context: CallContext) -> SplitResult:
        """Per-page keyword scoring, continuation pages, grouping (module docstring)."""
        labels = list(subdocuments)
        names: list[str | None] = []
        confidences: list[float] = []
        for text in pages:
            raw = {lb.name: score_text(text, lb) for lb in labels}
            names.append(best_label(raw, labels) if any(raw.values()) else None)
            confidences.append(max(normalise(raw).values(), default=0.0))
        return SplitResult(parts=_group(names, confidences, pages), usage=_usage())

    async def partition(self, pages: Sequence[str], key: str, *, model: str | None,
                        allow_overlap: bool, context: CallContext) -> PartitionResult:
        """Group pages by the value labelled ``key`` (module docstring)."""
        groups: dict[str, Partition] = {}
        unassigned: list[int] = []
        current: str | None = None
        for number, text in enumerate(pages, start=1):
            value, score = find_value(text, key)
            if isinstance(value, str):
                current = value
                if value not in groups:
                    groups[value] = Partition(key=value, pages=[], confidence=score)
            if current is None:
                unassigned.append(number)
            else:
                groups[current].pages.append(number)
        return PartitionResult(partitions=list(groups.values()), unassigned_pages=unassigned,
                               usage=_usage())

    async def map_form_fields(self, fields: Sequence[FormField], data: Mapping[str, Any], *,
                              model: str | None, context: CallContext) -> FormMapping:
        """Greedy name matching between form fields and (flattened) data keys."""
        flat = _flatten(data)
        ranked = []
        for fi, field in enumerate(fields):
            fw = words(field.name) or words(field.description)
            for key in flat:
                kw = words(key.replace(".", " "))
                last = words(key.rsplit(".", 1)[-1])
                score = max(label_score(fw, kw), label_score(kw, fw), label_score(fw, last))
                if score >= 0.6:
                    ranked.append((-score, fi, key))
        values: dict[str, Any] = {}
        used: set[str] = set()
        for _, fi, key in sorted(ranked):
            field = fields[fi]
            if field.name in values or key in used:
                continue
            value = form_value(field, flat[key])
            if value is not None:
                values[field.name] = value
                used.add(key)
        return FormMapping(values=values, usage=_usage())

    async def describe_image(self, image: bytes, mime_type: str, *, model: str | None,
                             context: CallContext) -> ImageText:
        """Always raises: the offline provider has no vision.

        Raises:
            PermanentError: always.
        """
        raise PermanentError(
            "the offline model provider cannot read images; set STEPWELL_MODEL_PROVIDER="
            "openai with a vision-capable model, or pass a PDF with a text layer.",
            code="VISION_UNSUPPORTED")


def _group(names: list[str | None], confidences: list[float],
           pages: Sequence[str]) -> list[SplitPart]:
    first = next((n for n in names if n is not None), None)
    if first is None:
        return []
    parts: list[SplitPart] = []
    current: str | None = None
    for number, (name, text) in enumerate(zip(names, pages, strict=True), start=1):
        fresh = name is not None and (name != current or bool(_FIRST_PAGE.search(text)))
        if current is None or fresh:
            current = name or first
            parts.append(SplitPart(name=current, pages=[], confidence=0.0))
        parts[-1].pages.append(number)
    out = []
    for part in parts:
        evidence = [confidences[p - 1] for p in part.pages if names[p - 1] is not None]
        confidence = round(sum(evidence) / len(evidence), 4) if evidence else 0.0
        out.append(SplitPart(name=part.name, pages=part.pages, confidence=confidence))
    return out


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(_flatten(value, path))
        else:
            out[path] = value
    return out


def form_value(field: FormField, value: Any) -> str | None:
    """``value`` written the way ``field`` takes it (None: it cannot take it)."""
    if value is None or isinstance(value, Mapping):
        return None
    if field.kind == "checkbox":
        truth = value if isinstance(value, bool) else co.parse_bool(str(value))
        if truth is None:
            return None
        return (field.options[0] if field.options else "Yes") if truth else "Off"
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value if not isinstance(v, Mapping | list))
    if isinstance(value, bool):
        value = "Yes" if value else "No"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if field.kind == "choice" and field.options:
        chosen = co.parse_enum(str(value), list(field.options))
        return None if chosen is None else str(chosen)
    return str(value)
