"""Artifact ids carry Retab's per-operation prefixes (docs/compatibility.md#artifacts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.contracts.artifacts import (
    ARTIFACT_ID_PREFIXES,
    artifact_id,
    artifact_prefix,
    operation_of,
)
from tests.conformance.runner import close, run, text_document

# Prefixes Retab's SDK fixtures, CLI help and API reference show.
PUBLIC = {"extraction": "extr", "split": "splt", "classification": "clss", "parse": "prs",
          "edit": "edt", "partition": "prtn", "conditional_evaluation": "ceval",
          "function_invocation": "fninv"}


def test_public_prefixes() -> None:
    for operation, prefix in PUBLIC.items():
        assert artifact_prefix(operation) == prefix


def test_every_operation_has_its_own_prefix() -> None:
    prefixes = list(ARTIFACT_ID_PREFIXES.values())
    assert len(set(prefixes)) == len(prefixes)
    for operation in ARTIFACT_ID_PREFIXES:
        assert operation_of(artifact_id(operation, "run_1", "step", 0)) == operation


def test_ids_are_deterministic_per_attempt() -> None:
    first = artifact_id("extraction", "run_1", "extract", 0)
    assert first == artifact_id("extraction", "run_1", "extract", 0)
    assert first != artifact_id("extraction", "run_1", "extract", 1)
    assert first.startswith("extr_") and len(first) == len("extr_") + 12
    assert artifact_prefix("plugin_operation") == "art"


def test_persisted_artifacts_use_the_prefixes(tmp_path: Path) -> None:
    doc = text_document(tmp_path, "invoice.txt", "Invoice Number: INV-1\nTotal: 3.00\n")
    result = run(tmp_path / "db", "extract", {"start": doc})
    try:
        step = result.step("extract")
        assert step.artifact is not None and step.artifact.id.startswith("extr_")
    finally:
        close(result)
