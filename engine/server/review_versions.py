"""A review's versions, one way for the HTTP API and the web UI.

A review proposes the step's outputs; that proposal is its first version (never stored,
:func:`~engine.contracts.records.proposal`). Reviewers add corrections (stored by
:meth:`~engine.contracts.store.ReviewStore.add_review_version`), each naming the version
it corrects. Approving a correction records its data as the decision
(:func:`decision_data`); which version a decision approved is found again by comparing
data (:func:`decided_version`). A correction applies to a review that proposes one JSON
output (:func:`proposed_json`); its snapshot is that JSON when it is an object, else
``{"value": ...}`` (:func:`snapshot_for`).
"""

from __future__ import annotations

import time
from typing import Any

from engine.contracts.bounded import check_json
from engine.contracts.records import ReviewVersion, proposal
from engine.contracts.store import ReviewStore


def proposed_json(row: dict[str, Any]) -> tuple[bool, Any]:
    """``(True, data)`` when the review proposes one JSON payload, else ``(False, None)``.

    Args:
        row: the review as :func:`store.search.review_row` gives it.
    """
    outputs = ((row["data"] or {}).get("outputs") or {})
    json_outputs = [p.get("data") for p in outputs.values()
                    if isinstance(p, dict) and p.get("type") == "json"]
    return (True, json_outputs[0]) if len(json_outputs) == 1 else (False, None)


def snapshot_for(data: Any) -> dict[str, Any]:
    """The snapshot of a version holding ``data`` (an object as it is, else wrapped)."""
    return data if isinstance(data, dict) else {"value": data}


def proposal_snapshot(row: dict[str, Any]) -> dict[str, Any]:
    """The snapshot of the proposal: its JSON, or the documents it proposes (a
    classifier's chosen category)."""
    is_json, data = proposed_json(row)
    if is_json:
        return snapshot_for(data)
    outputs = ((row["data"] or {}).get("outputs") or {})
    files = {h: p.get("document") for h, p in outputs.items() if isinstance(p, dict)}
    if row["block_type"] == "classifier" and len(files) == 1:
        return {"category": next(iter(files)).removeprefix("output-file-")}
    return {"documents": files}


def versions_of(store: ReviewStore, row: dict[str, Any]) -> list[ReviewVersion]:
    """The proposal, then the stored corrections oldest first."""
    first = proposal(row["id"], proposal_snapshot(row), row["created_at"], row["block_id"])
    return [first, *store.review_versions(row["id"])]


def latest_version(versions: list[ReviewVersion]) -> ReviewVersion:
    """The newest version that no other version corrects (the proposal when none)."""
    parents = {v.parent_id for v in versions}
    leaves = [v for v in versions if v.id not in parents]
    return max(leaves or versions, key=lambda v: v.created_at)


def decision_data(row: dict[str, Any], version: ReviewVersion) -> Any:
    """What a correction means as the step's corrected output."""
    _, proposed = proposed_json(row)
    if not isinstance(proposed, dict) and set(version.snapshot) == {"value"}:
        return version.snapshot["value"]
    return version.snapshot


def decided_version(row: dict[str, Any], versions: list[ReviewVersion]) -> str:
    """The id of the version a recorded decision took (the proposal unless corrected
    data was approved)."""
    data = row["decision_data"]
    if data is None:
        return versions[0].id
    wanted = data.get("data")
    for version in reversed(versions[1:]):
        if decision_data(row, version) == wanted:
            return version.id
    return versions[0].id


def add_correction(store: ReviewStore, row: dict[str, Any], *, parent_id: str,
                   snapshot: dict[str, Any], note: str | None, author_id: str
                   ) -> ReviewVersion:
    """Store a corrected version of a review (the same content again returns the
    version stored first).

    Raises:
        InputError: the snapshot is not bounded JSON.
    """
    check_json(snapshot, what="snapshot")
    return store.add_review_version(review_id=row["id"], parent_id=parent_id,
                                    snapshot=snapshot, note=note, author_id=author_id,
                                    now=time.time())
