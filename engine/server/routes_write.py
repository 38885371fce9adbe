"""Workflow registration and run control: ``spec/validate|plan|apply``, ``runs`` create
and cancel, and reading registered workflows back.

A run created here is prepared (:meth:`engine.core.Engine.prepare`: persisted with status
``pending``) before the response is sent and executes in this process in the background
(:class:`engine.server.state.RunSupervisor`). Everything a request brings is checked first
(workflow, version, every input, every document); only then are documents stored and the
run row written, so a rejected request leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import time
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, Body, Depends, Query, Request

from engine.compiled import Node
from engine.contracts.blocks import BlockRole
from engine.contracts.bounded import check_json
from engine.contracts.errors import (
    ConflictError,
    NotFoundError,
    UsageError,
    WorkflowLoadError,
)
from engine.definition import Workflow
from engine.export import to_yaml
from engine.graph_edit import name_edges, stamps_after
from engine.launch import RunOrigin
from engine.server.auth import Org
from engine.server.documents import DecodedDocument, decode_document
from engine.server.drafts import check_definition, definition_of
from engine.server.errors import ApiError
from engine.server.file_refs import record as record_file
from engine.server.file_refs import stored_document
from engine.server.params import reject_unknown_query, with_cursor
from engine.server.paths import WorkflowId
from engine.server.run_metadata import run_metadata
from engine.server.schemas import (
    ERRORS,
    ApplyOut,
    CancelBody,
    CancelOut,
    CreateRunBody,
    DeclarativeWorkflowBody,
    PageOut,
    RunOut,
    SpecOut,
    ValidateOut,
    WorkflowOut,
    ok,
)
from engine.server.shapes import run_json, workflow_json
from engine.yaml_budget import MAX_YAML_DEPTH, YamlBudgetExceeded, check_nesting
from store.workflows import new_workflow_id

router = APIRouter(prefix="/v1/workflows", dependencies=[Depends(reject_unknown_query)],
                   responses=ERRORS)
CANCEL_WAIT_S = 5.0


def _state(request: Request) -> Any:
    return request.app.state.stepwell


# --------------------------------------------------------------------------- specs


def _load_spec(request: Request, text: str) -> tuple[Workflow, dict[str, Any]]:
    """Parse and validate a spec. Returns the workflow and its diagnostics by severity.

    Raises:
        WorkflowLoadError / ApiError: not YAML, or too large once its aliases are
            expanded.  WorkflowValidationError: invalid.  ApiError: 403 when the
            server's code policy refuses it.
    """
    try:
        check_nesting(text)  # before PyYAML's composer recurses once per level
        wf = Workflow.from_yaml(text, source="yaml_definition")
    except (YamlBudgetExceeded, RecursionError) as exc:
        problem = exc.problem if isinstance(exc, YamlBudgetExceeded) else \
            f"the document nests deeper than {MAX_YAML_DEPTH} levels"
        raise WorkflowLoadError(
            "yaml_definition", f"the YAML is too large to load: {problem}",
            "Write the nested parts out flatter; a workflow needs only a few levels"
        ) from None
    except yaml.YAMLError as exc:  # e.g. a control character the YAML reader refuses
        raise ApiError(422, "INVALID_YAML", f"invalid YAML: {exc}. Fix the text and send it "
                       "again.") from None
    return wf, check_definition(_state(request), wf)


def _counts(wf: Workflow) -> dict[str, int]:
    return {"block_count": len(wf.blocks),
            "edge_count": sum(1 for e in wf.edges if not e.generated)}


def _plan(wf: Workflow, workflow_id: str, action: str, diagnostics: dict[str, Any]
          ) -> dict[str, Any]:
    counts = _counts(wf)
    changes = counts["block_count"] + counts["edge_count"]
    summary = {"add": changes if action == "create" else 0,
               "change": 1 if action == "update" else 0, "destroy": 0, "replace": 0,
               "noop": 1 if action == "noop" else 0}
    summary["total"] = sum(summary.values())
    summary["has_changes"] = action != "noop"
    rendered = {"create": f"Create workflow {wf.name!r}: {counts['block_count']} blocks, "
                          f"{counts['edge_count']} edges.",
                "update": f"Update workflow {workflow_id} to a new version.",
                "noop": "No changes. Workflow spec is up to date."}[action]
    return {"workflow_id": workflow_id, "action": action, "created": action == "create",
            **counts, "diagnostics": diagnostics, "format_version": "workflows-plan/v1",
            "summary": summary, "resource_changes": [], "rendered_plan": rendered,
            "workflow_version_id": wf.digest()}


@router.post("/spec/validate", responses=ok(ValidateOut), summary="Validate a workflow spec")
def validate_spec(request: Request, body: DeclarativeWorkflowBody, org: Org) -> Any:
    """Validate YAML without registering it. An invalid spec is a 422 listing every
    problem (``details.diagnostics``); warnings alone keep it valid."""
    wf, diagnostics = _load_spec(request, body.yaml_definition)
    return {"workflow_id": "", **_counts(wf), "is_valid": True, "diagnostics": diagnostics}


def _apply(request: Request, body: DeclarativeWorkflowBody, org: str,
           workflow_id: str | None, write: bool) -> dict[str, Any]:
    """Plan or apply a spec: a new workflow (its first version is published), or a new
    draft of ``workflow_id`` (``noop`` when the draft's version is unchanged)."""
    state = _state(request)
    wf, diagnostics = _load_spec(request, body.yaml_definition)
    digest = wf.digest()
    if workflow_id is not None:
        current = state.store.get_workflow(workflow_id, org)
    else:  # the id runs from the CLI use: metadata.id, else one derived from the name
        current = (_registered(state, wf.workflow_id(), org)
                   or _registered(state, _own_id(wf.workflow_id(), org), org))
    if current is None:
        action = "create"
    else:
        action = "noop" if current.version_id == digest else "update"
    if not write or action == "noop":
        return _plan(wf, current.id if current else "", action, diagnostics)
    now = time.time()
    if current is None:
        target = wf.workflow_id() if workflow_id is None else workflow_id
        try:
            _create(state, wf, body, target, digest, org, now)
        except ConflictError:  # another organization has this id: theirs stays unseen
            target = _own_id(target, org)  # stable, so applying it again updates it
            try:
                _create(state, wf, body, target, digest, org, now)
            except ConflictError:  # taken on purpose by another organization's metadata.id
                target = new_workflow_id()
                _create(state, wf, body, target, digest, org, now)
        return _plan(wf, target, action, diagnostics)
    named = name_edges(wf, current.id)
    stamps = stamps_after(definition_of(current), named, current.stamps, now,
                          since=current.created_at)
    state.store.save_draft(current.id, org, definition=named.to_dict(),
                           yaml=body.yaml_definition, version_id=digest, stamps=stamps,
                           expected_revision=None, now=now)
    state.store.update_workflow(current.id, org, name=wf.name, description=wf.description,
                                now=now)
    if workflow_id is None:  # spec/apply of a workflow it has: the new YAML is what runs
        state.store.publish_workflow(current.id, org, description=wf.description, now=now)
    return _plan(wf, current.id, action, diagnostics)


def _own_id(workflow_id: str, org: str) -> str:
    """The id this organization's workflow gets when another one holds ``workflow_id``."""
    return "wf_" + hashlib.sha256(f"{org}\n{workflow_id}".encode()).hexdigest()[:20]


def _registered(state: Any, workflow_id: str, org: str) -> Any:
    """The organization's workflow with this id, or None."""
    try:
        return state.store.get_workflow(workflow_id, org)
    except NotFoundError:
        return None


def _create(state: Any, wf: Workflow, body: DeclarativeWorkflowBody, target: str,
            digest: str, org: str, now: float) -> None:
    named = name_edges(wf, target)
    state.store.create_workflow(
        workflow_id=target, name=wf.name, description=wf.description,
        project_id=body.project_id, definition=named.to_dict(), yaml=body.yaml_definition,
        version_id=digest, organization_id=org, publish=True, now=now)


@router.post("/spec/apply", responses=ok(ApplyOut), summary="Register a workflow from YAML")
def apply_spec(request: Request, body: DeclarativeWorkflowBody, org: Org) -> Any:
    """Validate the YAML and register it (nothing is written when it is invalid). Its id
    is ``metadata.id``, else derived from its name (as for runs started from the CLI);
    applying a workflow this organization already has publishes the YAML as its new
    version. Runs are then created with the returned ``workflow_id``."""
    return _apply(request, body, org, None, write=True)


@router.post("/spec/plan", responses=ok(ApplyOut), summary="Preview registering a workflow")
def plan_spec(request: Request, body: DeclarativeWorkflowBody, org: Org) -> Any:
    """What ``spec/apply`` would do, without doing it."""
    return _apply(request, body, org, None, write=False)


# --------------------------------------------------------------------------- runs


def _check_inputs(nodes: dict[str, Node], documents: dict[str, Any],
                  json_inputs: dict[str, Any]) -> None:
    starts = {n.id: n.type for n in nodes.values()}
    doc_blocks = {b for b, n in nodes.items() if n.role is BlockRole.START_DOCUMENT}
    json_blocks = set(starts) - doc_blocks
    problems: list[str] = []
    for key in sorted(set(documents) - doc_blocks):
        problems.append(f"documents.{key}: not a start_document block"
                        + (" (it is a start_json block: use json_inputs)" if key in json_blocks
                           else ""))
    for key in sorted(set(json_inputs) - json_blocks):
        problems.append(f"json_inputs.{key}: not a start_json block"
                        + (" (it is a start_document block: use documents)"
                           if key in doc_blocks else ""))
    for key in sorted(doc_blocks - set(documents)):
        problems.append(f"documents.{key}: missing (start_document block)")
    for key in sorted(json_blocks - set(json_inputs)):
        problems.append(f"json_inputs.{key}: missing (start_json block)")
    if problems:
        raise ApiError(422, "INVALID_INPUT",
                       "The run inputs do not fit the workflow's start blocks: "
                       + "; ".join(problems) + ". Start blocks: "
                       + ", ".join(f"{b} ({t})" for b, t in sorted(starts.items())) + ".",
                       {"problems": problems, "start_blocks": starts})


def _check_json_schemas(nodes: dict[str, Node], json_inputs: dict[str, Any]) -> None:
    """422 when a JSON input breaks its start_json block's ``json_schema``."""
    import jsonschema

    problems: list[dict[str, str]] = []
    for block_id, value in sorted(json_inputs.items()):
        schema = getattr(nodes[block_id].config, "json_schema", None)
        if not schema:
            continue
        validator = jsonschema.validators.validator_for(schema)(schema)
        for error in sorted(validator.iter_errors(value), key=jsonschema.exceptions.relevance):
            where = ".".join(str(p) for p in error.absolute_path) or "<root>"
            problems.append({"block_id": block_id, "path": where, "message": error.message})
    if problems:
        first = problems[0]
        raise ApiError(422, "INVALID_INPUT",
                       f"json_inputs.{first['block_id']} does not match the block's json_schema "
                       f"at {first['path']}: {first['message']}"
                       + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                       + ". Fix the input.", {"problems": problems[:20]})


@router.post("/runs", responses=ok(RunOut), summary="Start a run")
def create_run(request: Request, body: CreateRunBody, org: Org) -> Any:
    """Start a run of a registered workflow with documents (data URLs) and JSON inputs.
    The run executes in the background; poll ``GET /v1/workflows/runs/{id}``."""
    state = _state(request)
    try:
        version = state.store.workflow_version(body.workflow_id, org, body.version)
    except NotFoundError as exc:
        raise ApiError(404, "WORKFLOW_NOT_FOUND", str(exc),
                       {"workflow_id": body.workflow_id, "version": body.version}) from None
    wf = Workflow.from_dict(version.definition, source=body.workflow_id)
    check_definition(state, wf)  # the policy may have changed since it was applied
    graph = state.engine.compile(wf)
    nodes = {n.id: n for n in graph.start_blocks()}
    documents, json_inputs = body.documents or {}, body.json_inputs or {}
    for block_id, value in sorted(json_inputs.items()):
        check_json(value, what=f"json_inputs.{block_id}")
    metadata = run_metadata(body.metadata)  # 422 over its limits (engine.server.run_metadata)
    _check_inputs(nodes, documents, json_inputs)
    _check_json_schemas(nodes, json_inputs)
    decoded: list[DecodedDocument] = [
        stored_document(state, org, block_id, doc.url, doc.filename)
        or decode_document(block_id, doc.url, doc.filename,
                           allow_file_paths=state.config.allow_file_paths)
        for block_id, doc in sorted(documents.items())]
    files = state.engine.store.files
    inputs: dict[str, Any] = dict(json_inputs)
    for doc in decoded:
        ref = files.put_bytes(doc.data, doc.filename, doc.mime_type)
        record_file(state, org, ref, len(doc.data))
        inputs[doc.block_id] = ref.to_dict()
    origin = RunOrigin(workflow_id=body.workflow_id, organization_id=org, trigger="api",
                       metadata=metadata)
    prepared = state.engine.prepare(graph, inputs, origin=origin)
    state.supervisor.drive(prepared.run_id, prepared)
    return run_json(state.reader(org).get_run(prepared.run_id))


@router.post("/runs/{run_id}/cancel", responses=ok(CancelOut), summary="Cancel a run")
def cancel_run(request: Request, run_id: str, org: Org,
               body: Annotated[CancelBody | None, Body()] = None) -> Any:
    """Cancel a pending, running or waiting run: running steps are interrupted, waiting
    ones become ``cancelled``. A run that already ended is a 409."""
    state = _state(request)
    api = state.reader(org)
    run = api.get_run(run_id)  # 404 across organizations
    deadline = time.monotonic() + CANCEL_WAIT_S
    while (run.lifecycle.status == "pending" and run_id in state.supervisor.active()
           and time.monotonic() < deadline):
        # Its thread is starting it: let the runner own it, then cancel through it.
        time.sleep(0.02)
        run = api.get_run(run_id)
    try:
        here = state.engine.cancel(run_id, reason="cancelled by request (HTTP API)")
    except NotFoundError:
        raise
    except UsageError as exc:
        raise ApiError(409, "RUN_ALREADY_ENDED", str(exc), {"run_id": run_id}) from None
    deadline = time.monotonic() + CANCEL_WAIT_S
    run = api.get_run(run_id)
    while not here and run.lifecycle.status != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.05)
        run = api.get_run(run_id)
    status = "cancelled" if run.lifecycle.status == "cancelled" else "cancellation_requested"
    return {"run": run_json(run), "redis_available": False, "cancellation_status": status}


# --------------------------------------------------------------------------- workflows
# Declared last: ``/{workflow_id}`` would otherwise shadow ``/runs``, ``/steps``...


@router.get("", responses=ok(PageOut[WorkflowOut]), summary="List registered workflows")
def list_workflows(
    request: Request, org: Org,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    before: str | None = None, after: str | None = None,
    order: Literal["asc", "desc"] = "desc",
    sort_by: Literal["created_at", "updated_at"] = "updated_at",
    project_id: str | None = None,
) -> Any:
    """Workflows of the caller's organization (optionally of one project), ordered by
    ``sort_by`` (last change by default), newest first unless ``order=asc``."""
    store = _state(request).store
    found = with_cursor(
        lambda: store.list_workflows(org, limit=limit, after=after, before=before,
                                     descending=order == "desc", project_id=project_id,
                                     sort_by=sort_by), after or before, "a workflow")
    page = found.items
    return {"data": [workflow_json(w) for w in page], "list_metadata": {
        "before": page[0].id if page and found.more_before else None,
        "after": page[-1].id if page and found.more_after else None}}


@router.post("/{workflow_id}/spec/apply", responses=ok(ApplyOut),
             summary="Apply a spec to a registered workflow")
def apply_spec_to(request: Request, workflow_id: WorkflowId, body: DeclarativeWorkflowBody,
                  org: Org) -> Any:
    """Make the spec the draft of ``workflow_id`` (``noop`` when its version is unchanged);
    ``publish`` makes it what runs get by default."""
    return _apply(request, body, org, workflow_id, write=True)


@router.post("/{workflow_id}/spec/plan", responses=ok(ApplyOut),
             summary="Preview applying a spec to a registered workflow")
def plan_spec_for(request: Request, workflow_id: WorkflowId, body: DeclarativeWorkflowBody,
                  org: Org) -> Any:
    """What ``/{workflow_id}/spec/apply`` would do, without doing it."""
    return _apply(request, body, org, workflow_id, write=False)


@router.get("/{workflow_id}/spec", responses=ok(SpecOut), summary="Export a workflow's YAML")
def get_spec(request: Request, workflow_id: WorkflowId, org: Org) -> Any:
    """The draft's YAML: as applied, or written from the draft after graph edits."""
    wf = _state(request).store.get_workflow(workflow_id, org)
    return {"workflow_id": wf.id, "yaml_definition": wf.yaml or to_yaml(definition_of(wf))}


@router.get("/{workflow_id}", responses=ok(WorkflowOut), summary="Get a registered workflow")
def get_workflow(request: Request, workflow_id: WorkflowId, org: Org) -> Any:
    """A registered workflow (metadata and current version id)."""
    return workflow_json(_state(request).store.get_workflow(workflow_id, org))
