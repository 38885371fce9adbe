"""Blocks and edges as written in a workflow file: what block types validate against.

The whole workflow model (loading, the builder) is :mod:`engine.definition`; block types
only see one :class:`BlockDef` at a time.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.contracts.bounded import clean_text

API_VERSION = "workflows.retab.com/v1alpha2"


class BlockDef(BaseModel):
    """One block as written: declarative id, type, label, config, container parent."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    label: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    parent_id: str | None = None
    position: dict[str, float] | None = None
    width: float | None = None
    height: float | None = None
    path: str = Field(default="", description="YAML path used in diagnostics")

    @field_validator("label")
    @classmethod
    def _printable_label(cls, value: str) -> str:
        """Labels reach terminals and logs: control characters are dropped."""
        return clean_text(value, limit=500)

    @property
    def display_label(self) -> str:
        """The label, or the id when no label was written."""
        return self.label or self.id


class EdgeDef(BaseModel):
    """One edge, normalised to ``source_block/source_handle -> target_block/target_handle``.

    An empty handle means "the block's only handle of the right kind" and is resolved
    at compile time.
    """

    model_config = ConfigDict(frozen=True)

    source_block: str
    source_handle: str = ""
    target_block: str
    target_handle: str = ""
    id: str | None = None
    path: str = ""
    generated: bool = False
