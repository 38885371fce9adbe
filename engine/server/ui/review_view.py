"""Reviews in the browser: the queue, one review, and its correction form.

A review proposes the step's outputs. When they hold one JSON value it can be corrected:
an object becomes one form field per property (typed from the block's ``json_schema``
when it has one, else from the proposed value); anything else is one JSON text field.
The form starts from the review's latest version (the proposal, or the newest
correction, also one made over the HTTP API). :func:`read_correction` turns the
submitted form back into data, reporting every field it cannot read: a field sent back
as it was shown, or not sent at all, keeps its value exactly (an empty string stays
empty, a big integer keeps every digit, a multi-line string its lines); an edited field
is parsed by its kind (integers as integers, never through a float). A boolean field is
a choice of null, true and false; a proposed value that is none of them (an
extraction's ``"yes"`` or ``1``) is shown as JSON and offered as a choice of its own,
selected, so the reviewer sees it and keeps it or picks another
(:attr:`FormField.off_type`). Data that differs from the latest version is stored as a
new version first, exactly as ``POST /v1/workflows/reviews/versions`` stores one
(:mod:`engine.server.review_versions`), and that version is approved; data equal to
the latest version approves it as it is (no new version, no schema check: as ``stepwell
reviews approve`` does). The page lists the versions as the API does, with the one a
decision took.

Files (a classifier's or a split's documents) are approved or rejected as proposed.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from engine.contracts.frozen import record
from engine.contracts.outline import RunPresence
from engine.contracts.records import ReviewVersion
from engine.contracts.store import ReviewStore
from engine.server.review_versions import (
    decided_version,
    decision_data,
    latest_version,
    proposed_json,
    versions_of,
)
from engine.server.ui.step_view import Document, documents_of
from store.api import ReadAPI
from store.search import ReviewFilters, review_row, search_reviews

QUEUE_PAGE = 50
QUEUE_FILTERS = ("pending", "decided", "cancelled", "all")
FIELD_PREFIX = "field."
MULTILINE_CHARS = 80


@record
class FormField:
    """One editable value: ``kind`` is string, number, integer, boolean or json.

    ``text`` is the value as the form shows it; ``nullable``: an emptied field is null
    (the schema allows null, or the value was null), else an empty string.
    """

    name: str
    kind: str
    text: str
    description: str = ""
    likelihood: float | None = None
    nullable: bool = False

    @property
    def multiline(self) -> bool:
        """Shown in a ``<textarea>`` (JSON, and strings with a line break or over 80
        characters), so line breaks survive the round trip."""
        return self.kind == "json" or self.kind == "string" and (
            "\n" in self.text or "\r" in self.text or len(self.text) > MULTILINE_CHARS)

    @property
    def off_type(self) -> bool:
        """A boolean field whose value is neither true, false nor null (an extraction's
        ``"yes"``): the form shows it as a choice of its own, selected until the reviewer
        picks true, false or null, so it is never lost or turned into another value."""
        return self.kind == "boolean" and self.text not in ("", "true", "false")

    @property
    def input_name(self) -> str:
        """The form field's name."""
        return FIELD_PREFIX + self.name


@dataclass(slots=True, kw_only=True)
class ReviewModel:
    """What a review page shows."""

    row: dict[str, Any]
    run: RunPresence
    versions: list[ReviewVersion]
    proposal: Any = None
    correctable: bool = False
    fields: list[FormField] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    trigger: dict[str, Any] = field(default_factory=dict)
    instructions: str = ""
    block_label: str = ""
    schema: Any = None

    @property
    def latest(self) -> ReviewVersion:
        """The version the form starts from (see the module docstring)."""
        return latest_version(self.versions)

    @property
    def current(self) -> Any:
        """The data of :attr:`latest` (the proposal's, or a correction's)."""
        latest = self.latest
        return self.proposal if latest.parent_id is None else decision_data(self.row, latest)

    @property
    def decided_version_id(self) -> str | None:
        """The version a recorded decision took (None while undecided)."""
        if self.row["decision"] is None:
            return None
        return decided_version(self.row, self.versions)

    @property
    def state(self) -> str:
        """``pending``, ``approved``, ``rejected`` or ``cancelled`` (the run ended first)."""
        if self.row["decision"] is not None:
            return str(self.row["decision"])
        return "cancelled" if self.run.status in ("completed", "error",
                                                             "cancelled") else "pending"


def queue(api: ReadAPI, show: str, after: str | None, before: str | None
          ) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """One page of reviews (oldest first): ``(rows, cursor before, cursor after)``."""
    rows, more_before, more_after = search_reviews(
        api, ReviewFilters(decision_status=show), limit=QUEUE_PAGE, after=after, before=before)
    return (rows, rows[0]["id"] if rows and more_before else None,
            rows[-1]["id"] if rows and more_after else None)


def _block_config(row: dict[str, Any]) -> tuple[dict[str, Any], str]:
    definition = row.get("definition") or {}
    from engine.contracts.errors import StepwellError
    from engine.definition import Workflow

    try:
        block = Workflow.from_dict(definition).block(row["block_id"])
    except StepwellError:
        return {}, row["block_id"]
    if block is None:
        return {}, row["block_id"]
    return dict(block.config or {}), block.display_label


def build_review_model(api: ReadAPI, store: ReviewStore, review_id: str) -> ReviewModel:
    """Read one review with its run, versions, document and form.

    Args:
        api: a read API scoped to the viewer's organization.
        store: where corrections are stored (the server's store).
        review_id: the review.

    Raises:
        NotFoundError: no such review visible to the API's organization.
    """
    row = review_row(api, review_id)
    run = api.reads.run_presence([row["run_id"]], organization_id=api.organization_id
                                 )[row["run_id"]]
    config, label = _block_config(row)
    correctable, proposal = proposed_json(row)
    outputs = (row["data"] or {}).get("outputs") or {}
    step = api.get_step(row["step_id"], run_id=row["run_id"])
    record = step.model_dump(mode="json")
    artifact = api.get_artifact(step.artifact.id) if step.artifact is not None else None
    likelihoods = ((artifact or {}).get("consensus") or {}).get("likelihoods")
    model = ReviewModel(row=row, run=run, versions=versions_of(store, row),
                        proposal=proposal, correctable=correctable,
                        documents=documents_of(record, artifact), outputs=outputs,
                        trigger=(row["data"] or {}).get("review") or {},
                        instructions=str(config.get("instructions") or ""),
                        block_label=label, schema=config.get("json_schema"))
    if correctable:
        model.fields = form_fields(model.current, config.get("json_schema"),
                                   likelihoods if isinstance(likelihoods, dict) else {})
    return model


def form_fields(proposal: Any, schema: Any, likelihoods: dict[str, Any]) -> list[FormField]:
    """The form of a JSON proposal (see the module docstring)."""
    if not isinstance(proposal, dict):
        return [FormField(name="value", kind="json", text=json.dumps(proposal, indent=2))]
    props = (schema or {}).get("properties") if isinstance(schema, dict) else None
    props = props if isinstance(props, dict) else {}
    names = list(props) + [k for k in proposal if k not in props]
    fields = []
    for name in names:
        value = proposal.get(name)
        found = props.get(name)
        spec = found if isinstance(found, dict) else {}
        kind = _kind(spec.get("type"), value)
        text = ("" if value is None else json.dumps(value, indent=2) if kind == "json"
                else _boolean_text(value) if kind == "boolean" else str(value))
        score = likelihoods.get(name)
        declared = spec.get("type")
        nullable = (value is None or declared == "null"
                    or isinstance(declared, list) and "null" in declared)
        fields.append(FormField(name=name, kind=kind, text=text, nullable=nullable,
                                description=str(spec.get("description") or ""),
                                likelihood=float(score) if isinstance(score, int | float)
                                and not isinstance(score, bool) else None))
    return fields


def _boolean_text(value: Any) -> str:
    """A boolean field's value as the form shows it: ``true`` / ``false``, else the
    proposed value as JSON (``"yes"``, ``1``), which the form offers to keep as it is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


def _kind(declared: Any, value: Any) -> str:
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), None)
    if declared in ("string", "number", "integer", "boolean"):
        return str(declared)
    if declared is None and value is None or isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "json"


def read_correction(fields: list[FormField], form: dict[str, str], proposal: Any
                    ) -> tuple[Any, list[str]]:
    """The data the reviewer submitted, and a problem per field that does not parse.

    A field missing from the form, or sent back as it was shown (line breaks compared
    without the carriage returns browsers add), keeps ``proposal``'s value exactly;
    so an untouched form gives back ``proposal`` itself.
    """
    problems: list[str] = []
    values: dict[str, Any] = {}
    for f in fields:
        raw = form.get(f.input_name)
        if raw is None or _same_text(raw, f.text):
            continue
        try:
            values[f.name] = _parse(f.kind, _browser_text(raw), nullable=f.nullable)
        except ValueError as exc:
            problems.append(f"{f.name}: {exc}")
    if not isinstance(proposal, dict):
        return values.get("value", proposal), problems
    return {**proposal, **values}, problems


def _browser_text(raw: str) -> str:
    """A submitted value with the CRLF line breaks of form encoding turned back to LF."""
    return raw.replace("\r\n", "\n")


def _same_text(raw: str, shown: str) -> bool:
    return raw == shown or _browser_text(raw) == _browser_text(shown)


def _number(kind: str, text: str, raw: str) -> int | float:
    """An integer exactly (no float in between: more than 2**53 keeps its digits), else
    a finite float; ``integer`` fields also take a whole float such as ``12.0``."""
    if re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{raw!r} is not a finite number")
    if kind == "integer":
        if not number.is_integer():
            raise ValueError(f"{raw!r} is not a whole number")
        return int(number)
    return number


def schema_problems(schema: Any, data: Any) -> list[str]:
    """Where ``data`` breaks the block's ``json_schema`` (empty when it fits or there is
    no schema)."""
    if not isinstance(schema, dict) or not schema:
        return []
    import jsonschema

    try:
        validator = jsonschema.validators.validator_for(schema)(schema)
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    except jsonschema.exceptions.SchemaError:
        return []
    return [f"{'.'.join(map(str, e.absolute_path)) or 'the data'}: {e.message}"
            for e in errors[:20]]


def _parse(kind: str, raw: str, *, nullable: bool = False) -> Any:
    """An edited field's value: strings as typed (emptied: null when ``nullable``, else
    ""), integers exactly, other numbers as floats, booleans, JSON."""
    text = raw.strip()
    if kind == "string":
        return None if raw == "" and nullable else raw
    if text == "" or text == "null":
        return None
    if kind == "boolean":
        if text.lower() not in ("true", "false"):
            raise ValueError("choose true or false")
        return text.lower() == "true"
    if kind in ("number", "integer"):
        return _number(kind, text, raw)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
