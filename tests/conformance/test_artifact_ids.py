"""Artifact ids carry Retab's per-operation prefixes (docs/compatibility.md#artifacts)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from engine.contracts.artifacts import (
    ARTIFACT_ID_PREFIXES,
    artifact_digest,
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


def test_ids_are_sha256_of_run_step_and_attempt() -> None:
    # The digest comes from CPython's own SHA-256 where there is one (not OpenSSL's):
    # ids recorded by either must stay the same.
    for run_id, step_id, attempt in (("run_1", "extract", 0), ("r", "loop_iter_3.f", 12),
                                     ("run_\u00e9", "", 1)):
        expected = hashlib.sha256(f"{run_id}\x00{step_id}\x00{attempt}".encode()).hexdigest()
        assert artifact_digest(run_id, step_id, attempt) == expected
    assert artifact_id("extraction", "run_1", "extract", 0) == (
        "extr_" + hashlib.sha256(b"run_1\x00extract\x000").hexdigest()[:12])


def test_persisted_artifacts_use_the_prefixes(tmp_path: Path) -> None:
    doc = text_document(tmp_path, "invoice.txt", "Invoice Number: INV-1\nTotal: 3.00\n")
    result = run(tmp_path / "db", "extract", {"start": doc})
    try:
        step = result.step("extract")
        assert step.artifact is not None and step.artifact.id.startswith("extr_")
    finally:
        close(result)
