"""Request bodies and documented responses of the workflow, graph-editing and version
routes (Retab SDK 0.0.160 request models, refused when they carry unknown fields)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# --------------------------------------------------------------------------- requests


class CreateWorkflowBody(_Strict):
    """A new, empty workflow (one ``Document`` start block), unpublished."""

    name: str = Field(default="Untitled Workflow", max_length=200)
    description: str = Field(default="", max_length=5000)
    project_id: str = Field(min_length=1, max_length=200)


class UpdateWorkflowBody(_Strict):
    """New name and/or description."""

    name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=5000)


class PublishBody(_Strict):
    """A release note for the published version."""

    description: str = Field(default="", max_length=5000)


class BlockCreateBody(_Strict):
    """A block to add to a workflow's draft."""

    workflow_id: str
    id: str | None = Field(default=None, min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=100)
    label: str = Field(default="", max_length=500)
    position_x: float = 0
    position_y: float = 0
    width: float | None = None
    height: float | None = None
    config: dict[str, Any] | None = None
    parent_id: str | None = None


class BlockUpdateBody(_Strict):
    """The fields of a block to change; the others stay."""

    label: str | None = Field(default=None, max_length=500)
    position_x: float | None = None
    position_y: float | None = None
    width: float | None = None
    height: float | None = None
    config: dict[str, Any] | None = None
    parent_id: str | None = None
    config_mode: Literal["merge", "replace"] | None = None


class ValidateConfigBody(_Strict):
    """A block config to check without changing the draft."""

    config: dict[str, Any]
    config_mode: Literal["merge", "replace"] = "replace"


class EdgeCreateBody(_Strict):
    """An edge to add to a workflow's draft."""

    workflow_id: str
    id: str | None = Field(default=None, min_length=1, max_length=200)
    source_block: str = Field(min_length=1)
    target_block: str = Field(min_length=1)
    source_handle: str | None = None
    target_handle: str | None = None


class BlockExecutionBody(_Strict):
    """Execute one block of a run again, with that step's inputs."""

    run_id: str
    block_id: str
    step_id: str | None = None
    n_consensus: int | None = Field(default=None, ge=1, le=100)
    check_eligibility: bool = True


class ExportBody(_Strict):
    """A block's outputs (or inputs) over runs, as CSV."""

    workflow_id: str
    block_id: str
    export_source: Literal["outputs", "inputs"] = "outputs"
    selected_run_ids: list[str] | None = None
    selected_doc_types: list[str] | None = None
    status: str | None = None
    exclude_status: str | None = None
    from_date: str | None = None
    to_date: str | None = None
    trigger_type: str | None = None
    preferred_columns: list[str] = Field(default_factory=list)
    delimiter: str = Field(default=";", min_length=1, max_length=1)
    line_delimiter: str = Field(default="\n", min_length=1, max_length=2)
    quote: str = Field(default='"', min_length=1, max_length=1)


# --------------------------------------------------------------------------- responses


class PositionOut(BaseModel):
    """A block's position."""

    x: float
    y: float


class BlockOut(BaseModel):
    """A draft block (``WorkflowBlock``)."""

    id: str
    workflow_id: str
    type: str
    stepwell_block_type: str
    label: str
    position_x: float
    position_y: float
    width: float | None = None
    height: float | None = None
    config: dict[str, Any]
    parent_id: str | None = None
    declarative_path: str | None = None
    declarative_source_block_id: str | None = None
    updated_at: str
    resolved_schemas: dict[str, Any] | None = None


class EdgeOut(BaseModel):
    """A draft edge (``WorkflowEdgeDoc``)."""

    id: str
    workflow_id: str
    source_block: str
    target_block: str
    source_handle: str | None = None
    target_handle: str | None = None
    updated_at: str


class VersionOut(BaseModel):
    """A workflow version (``WorkflowGraphVersion``); ``id`` is the definition's digest."""

    id: str
    workflow_id: str
    blocks: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    block_version_ids: list[str]
    edge_version_ids: list[str]
    created_at: str


class VersionDiffOut(BaseModel):
    """What changed between two workflow versions."""

    from_workflow_version_id: str
    to_workflow_version_id: str
    added_block_ids: list[str]
    removed_block_ids: list[str]
    changed_block_ids: list[str]
    added_edge_ids: list[str]
    removed_edge_ids: list[str]
    changed_edge_ids: list[str]


class FieldDiffOut(BaseModel):
    """One changed field."""

    field: str
    from_value: Any = None
    to_value: Any = None


class BlockVersionOut(BaseModel):
    """A block version (``WorkflowBlockVersion``)."""

    id: str
    block_id: str
    workflow_id: str
    workflow_version_id: str
    type: str
    stepwell_block_type: str
    label: str
    position_x: float
    position_y: float
    width: float | None = None
    height: float | None = None
    parent_id: str | None = None
    config: dict[str, Any]
    config_hash: str
    created_at: str


class BlockVersionDiffOut(BaseModel):
    """Changed fields between two versions of one block."""

    from_block_version_id: str
    to_block_version_id: str
    block_id: str
    changes: list[FieldDiffOut]


class EdgeVersionOut(BaseModel):
    """An edge version (``WorkflowEdgeVersion``)."""

    id: str
    edge_id: str
    workflow_id: str
    workflow_version_id: str
    source: str
    source_handle: str | None = None
    target: str
    target_handle: str | None = None
    animated: bool = True
    created_at: str


class EdgeVersionDiffOut(BaseModel):
    """Changed fields between two versions of one edge."""

    from_edge_version_id: str
    to_edge_version_id: str
    edge_id: str
    changes: list[FieldDiffOut]


class ValidateConfigOut(BaseModel):
    """A valid block config."""

    ok: bool = True
    workflow_id: str
    block_id: str
    block_type: str
    config_hash: str


class BlockExecutionOut(BaseModel):
    """A block executed again (``StoredBlockExecution``)."""

    id: str
    workflow_id: str
    workflow_version_id: str | None = None
    source_run_id: str
    source_step_id: str | None = None
    block_id: str
    block_type: str
    lifecycle: dict[str, Any]
    handle_inputs: dict[str, Any] | None = None
    handle_outputs: dict[str, Any] | None = None
    artifact: dict[str, Any] | None = None
    stepwell_artifact: dict[str, Any] | None = None
    routing_decisions: list[str] | None = None
    duration_ms: float | None = None
    block_config: dict[str, Any] | None = None
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None


class ExportOut(BaseModel):
    """CSV of a block's outputs over runs."""

    csv_data: str
    rows: int
    columns: int
