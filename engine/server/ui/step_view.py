"""The step page's model: the whole record of one step, what its artifact says, its logs.

The record is the read API's :class:`store.api.Step`, its lifecycle trail
(:meth:`~engine.contracts.outline.OutlineStore.step_moves`), its artifact
(``ReadAPI.get_artifact``) and a page of its log (``ReadStore.page_logs``, grouped by
attempt: :class:`StepLogs`). Artifacts are shown by what they hold, not by block type:
per-field likelihoods of an extraction (:func:`extraction_fields`), scores of a
classification (:func:`classifier_scores`), evaluations of conditions (``evaluations``),
the review trigger; the rest of the record as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.contracts.frozen import record
from engine.contracts.logs import LogRecord
from engine.contracts.outline import StepMove
from engine.contracts.values import LoopFrame, step_id_for
from store.api import ReadAPI

#: Log entries per page (the step page shows the first page).
LOG_PAGE = 500
DOCUMENT_MIME_PREFIXES = ("application/pdf", "image/")


@record
class Document:
    """A file a step read or wrote.

    Attributes:
        where: ``input-file-0`` / ``output-file-invoice`` / ``artifact``.
        pdf: True when pages can be rendered as images.
    """

    where: str
    file_id: str
    filename: str
    mime_type: str

    @property
    def pdf(self) -> bool:
        """True for a PDF."""
        return self.mime_type == "application/pdf"


@record
class Crumb:
    """One loop level of a step: the container step and the iteration."""

    container_step_id: str
    container_id: str
    iteration: int


@record
class AttemptEntries:
    """The log entries of one attempt on a page (``attempt`` 0 is the first)."""

    attempt: int
    entries: list[LogRecord]

    @property
    def cut(self) -> int:
        """How many of its entries were cut (a long message, or the note of dropped
        entries)."""
        return sum(1 for e in self.entries if e.truncated)


@record
class StepLogs:
    """One page of a step's log, grouped by attempt.

    Attributes:
        after: the ``seq`` the page starts after (0: the beginning).
        next_after: the cursor of the next page, when there are more entries.
    """

    attempts: list[AttemptEntries]
    after: int
    next_after: int | None

    @property
    def empty(self) -> bool:
        """True when the page has no entries."""
        return not self.attempts


def read_logs(api: ReadAPI, run_id: str, step_id: str, after: int = 0) -> StepLogs:
    """A page of :data:`LOG_PAGE` entries of the step's log after ``seq`` ``after``.

    Raises:
        NotFoundError: no such run (visible to the API's organization) or step.
    """
    page = api.reads.page_logs(run_id, step_id, organization_id=api.organization_id,
                               after=after or None, limit=LOG_PAGE)
    groups: list[AttemptEntries] = []
    for entry in page.items:
        if not groups or groups[-1].attempt != entry.attempt:
            groups.append(AttemptEntries(attempt=entry.attempt, entries=[]))
        groups[-1].entries.append(entry)
    last = page.items[-1].seq if page.items else after
    return StepLogs(attempts=groups, after=after,
                    next_after=last if page.more_after else None)


@dataclass(slots=True, kw_only=True)
class StepModel:
    """What the step page shows."""

    step: Any
    record: dict[str, Any]
    transitions: list[StepMove]
    artifact: dict[str, Any] | None
    logs: StepLogs
    documents: list[Document] = field(default_factory=list)
    crumbs: list[Crumb] = field(default_factory=list)

    @property
    def attempts(self) -> int:
        """How many times the step started."""
        return sum(1 for t in self.transitions if t.status == "running")


def build_step_model(api: ReadAPI, run_id: str, step_id: str) -> StepModel:
    """Read one step with everything the page shows.

    Raises:
        NotFoundError: no such run or step (visible to the API's organization).
    """
    step = api.get_step(step_id, run_id=run_id)
    record = step.model_dump(mode="json")
    trail = api.reads.step_moves(run_id, [step_id],
                                 organization_id=api.organization_id).get(step_id, [])
    artifact = api.get_artifact(step.artifact.id) if step.artifact is not None else None
    frames = [LoopFrame(container_id=c.container_id, iteration=c.iteration)
              for c in step.loop_containers]
    crumbs = [Crumb(container_step_id=step_id_for(f.container_id, tuple(frames[:i])),
                    container_id=f.container_id, iteration=f.iteration)
              for i, f in enumerate(frames)]
    return StepModel(step=step, record=record, transitions=trail, artifact=artifact,
                     logs=read_logs(api, run_id, step_id),
                     documents=documents_of(record, artifact), crumbs=crumbs)


def documents_of(record: dict[str, Any], artifact: dict[str, Any] | None) -> list[Document]:
    """Files among the step's inputs, outputs and artifact, each once."""
    found: dict[str, Document] = {}
    for side in ("handle_inputs", "handle_outputs"):
        for handle, payload in (record.get(side) or {}).items():
            doc = payload.get("document") if isinstance(payload, dict) else None
            if isinstance(doc, dict) and doc.get("id") and doc["id"] not in found:
                found[doc["id"]] = Document(where=handle, file_id=doc["id"],
                                            filename=doc.get("filename") or doc["id"],
                                            mime_type=doc.get("mime_type") or "")
    for doc in (artifact or {}).get("files") or [(artifact or {}).get("file")]:
        if isinstance(doc, dict) and doc.get("id") and doc["id"] not in found:
            found[doc["id"]] = Document(where="artifact", file_id=doc["id"],
                                        filename=doc.get("filename") or doc["id"],
                                        mime_type=doc.get("mime_type") or "")
    return list(found.values())


def extraction_fields(artifact: dict[str, Any]) -> list[tuple[str, Any, float | None]]:
    """``(field, value, likelihood)`` of an extraction, in output order (top level)."""
    output = artifact.get("output")
    if not isinstance(output, dict):
        return []
    likelihoods = (artifact.get("consensus") or {}).get("likelihoods")
    if not isinstance(likelihoods, dict):  # a classification has one number here
        return []
    rows = []
    for name, value in output.items():
        score = likelihoods.get(name)
        rows.append((name, value, float(score) if isinstance(score, int | float) else None))
    return rows


def classifier_scores(artifact: dict[str, Any]) -> list[tuple[str, float, bool]]:
    """``(category, score, chosen)`` of a classification, best first."""
    scores = artifact.get("scores")
    if not isinstance(scores, dict):
        return []
    chosen = ((artifact.get("output") or {}).get("category")
              if isinstance(artifact.get("output"), dict) else None)
    return sorted(((str(k), float(v), k == chosen) for k, v in scores.items()
                   if isinstance(v, int | float)), key=lambda r: -r[1])


def artifact_rest(artifact: dict[str, Any]) -> dict[str, Any]:
    """The artifact without what the page already shows in tables."""
    shown = {"id", "workflow_run_id", "step_id", "created_at", "operation"}
    if extraction_fields(artifact):
        shown |= {"output"}
    if classifier_scores(artifact):
        shown |= {"scores"}
    if isinstance(artifact.get("evaluations"), list):
        shown |= {"evaluations"}
    return {k: v for k, v in artifact.items() if k not in shown}
