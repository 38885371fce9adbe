"""Helpers for the conformance suite: load a documented workflow, run it offline."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from blocks.registry import default_registry
from engine import Engine
from engine.contracts.errors import Diagnostic
from engine.definition import Workflow, load_workflow
from engine.graph import validate_workflow
from engine.launch import RunResult

WORKFLOWS = Path(__file__).resolve().parent / "workflows"


def path_of(name: str) -> Path:
    """The file of a conformance workflow (``if_else`` -> ``workflows/if_else.yaml``)."""
    for suffix in (".yaml", ".json"):
        candidate = WORKFLOWS / f"{name}{suffix}"
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"no conformance workflow {name!r} in {WORKFLOWS}")


def load(name: str) -> Workflow:
    """A conformance workflow, loaded."""
    return load_workflow(path_of(name))


def edited(name: str, block: str, **config: Any) -> Workflow:
    """A conformance workflow with some config keys of one block replaced."""
    data = yaml.safe_load(path_of(name).read_text())
    data["spec"]["blocks"][block].setdefault("config", {}).update(config)
    return Workflow.from_dict(data, source=f"{name} (edited)")


def diagnostics(workflow: Workflow | str) -> list[Diagnostic]:
    """Every diagnostic of a workflow (or of a conformance workflow by name)."""
    wf = load(workflow) if isinstance(workflow, str) else workflow
    return validate_workflow(wf, default_registry())


def errors(workflow: Workflow | str) -> list[Diagnostic]:
    """The error diagnostics only."""
    return [d for d in diagnostics(workflow) if d.severity == "error"]


def run(db: Path, workflow: Workflow | str, inputs: Mapping[str, Any],
        **engine_options: Any) -> RunResult:
    """Run a workflow offline in a fresh engine on ``db``; the result keeps the engine
    open so its steps can be read (closed by the caller's ``close(result)``)."""
    wf = load(workflow) if isinstance(workflow, str) else workflow
    engine = Engine(db, **engine_options)
    return engine.run(wf, inputs)


def close(result: RunResult) -> None:
    """Close the engine of a result from :func:`run`."""
    if result.engine is not None:
        result.engine.close()


def output(result: RunResult, step_id: str, handle: str = "output-json-0") -> Any:
    """The JSON a step emitted on ``handle`` (KeyError when it did not fire)."""
    return result.step(step_id).handle_outputs[handle].data


def fired(result: RunResult, step_id: str) -> list[str]:
    """The output handles a step fired, sorted."""
    return sorted(result.step(step_id).handle_outputs)


def status(result: RunResult, step_id: str) -> str:
    """A step's lifecycle status."""
    return str(result.step(step_id).lifecycle.status)


def reason(result: RunResult, step_id: str) -> str | None:
    """Why a step was skipped or cancelled."""
    return result.step(step_id).lifecycle.reason


def text_document(folder: Path, name: str, text: str) -> Path:
    """A text document for a start_document block."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def pdf_document(folder: Path, name: str, data: bytes) -> Path:
    """A PDF document for a start_document block."""
    path = folder / name
    path.write_bytes(data)
    return path


def artifact(result: RunResult, step_id: str) -> dict[str, Any]:
    """The artifact record of a step (with its ``id``)."""
    step = result.step(step_id)
    assert step.artifact is not None, f"step {step_id!r} recorded no artifact"
    assert result.engine is not None
    record = dict(result.engine.client.api.get_artifact(step.artifact.id))
    record.setdefault("id", step.artifact.id)
    return record
