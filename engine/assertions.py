"""Step assertions with readable failures (public test API, re-exported by engine.testing).

:func:`assert_step` reads one step of a run and compares what was asked: status, outputs,
reason, error text, retries, artifact. A mismatch raises one AssertionError listing
every difference (outputs as a unified diff) and the run's steps, so a failing test says
what happened without a debugger. Its own frames are hidden from pytest's tracebacks
(``__tracebackhide__``), so a failure shows the test's line and the message, not this
module's source.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any

from engine.contracts.errors import NotFoundError, UsageError
from engine.contracts.values import FileRef

_MISSING: Any = object()


def assert_step(source: Any, step_id: str, *, run_id: str | None = None,
                status: str | None = None, outputs: Mapping[str, Any] | None = None,
                output: Any = _MISSING, reason: str | None = None, error: str | None = None,
                retry_count: int | None = None, artifact: Mapping[str, Any] | None = None
                ) -> Any:
    """Check one step; raise an AssertionError that says what differs and what exists.

    Args:
        source: a ``RunResult``, a ``RunHandle``, or an ``Engine``/``Client`` with
            ``run_id``.
        step_id: the step (a block id at top level, ``loop_iter_0_block`` inside loops).
        status: expected lifecycle status (``completed``, ``skipped``, ``error``, ...).
        outputs: expected data per fired output handle; exactly these handles must fire.
        output: expected data of the only fired output handle.
        reason: expected skip/cancel reason (``branch_not_selected: route.output-json-else``).
        error: text the error message must contain.
        retry_count: expected number of retries.
        artifact: keys the operation record must have, with these values.

    Returns:
        The step (``store.api.Step``), for further checks.

    Raises:
        AssertionError: the step is missing or differs; the message lists every
            difference and the run's steps.
        UsageError: ``source`` is not something steps can be read from.
    """
    __tracebackhide__ = True
    client, run_id = _source(source, run_id)
    try:
        step = client.workflows.steps.get(step_id, run_id=run_id)
    except NotFoundError:
        raise AssertionError(_missing_step(client, run_id, step_id)) from None
    problems: list[str] = []
    life = step.lifecycle
    if status is not None and life.status != status:
        problems.append(f"status: expected {status!r}, got {life.status!r}")
    if reason is not None and getattr(life, "reason", None) != reason:
        problems.append(f"reason: expected {reason!r}, got {getattr(life, 'reason', None)!r}")
    if error is not None and error not in (getattr(life, "message", None) or ""):
        problems.append(f"error: expected a message containing {error!r}, got "
                        f"{getattr(life, 'message', None)!r}")
    if retry_count is not None and step.retry_count != retry_count:
        problems.append(f"retry_count: expected {retry_count}, got {step.retry_count}")
    actual = {h: (p.document.model_dump() if p.type == "file" else p.data)
              for h, p in step.handle_outputs.items()}
    if outputs is not None:
        expected = {h: v.to_dict() if isinstance(v, FileRef) else v for h, v in outputs.items()}
        if expected != actual:
            problems.append("outputs differ (- expected, + actual):\n" + _diff(expected, actual))
    if output is not _MISSING:
        if len(actual) != 1:
            problems.append(f"output: expected one fired handle, got {sorted(actual) or 'none'}")
        elif next(iter(actual.values())) != output:
            problems.append("output differs (- expected, + actual):\n"
                            + _diff(output, next(iter(actual.values()))))
    if artifact is not None:
        problems += _artifact_problems(client, step, artifact)
    if problems:
        raise AssertionError(_report(client, run_id, step, problems))
    return step


def _source(source: Any, run_id: str | None) -> tuple[Any, str]:
    __tracebackhide__ = True
    engine = getattr(source, "engine", None)
    source_run = getattr(source, "run_id", None)
    if engine is not None and source_run is not None:
        return engine.client, run_id or source_run
    client = getattr(source, "client", None) if hasattr(source, "registry") else source
    if client is None or not hasattr(client, "workflows"):
        raise UsageError(
            f"assert_step reads steps from a RunResult, a RunHandle, or an Engine/Client "
            f"with run_id=...; got {type(source).__name__}.")
    if run_id is None:
        raise UsageError("assert_step(engine_or_client, step_id) needs run_id=...")
    return client, run_id


def _artifact_problems(client: Any, step: Any, expected: Mapping[str, Any]) -> list[str]:
    if step.artifact is None:
        return [f"artifact: expected {dict(expected)!r}, the step recorded none"]
    record = client.api.get_artifact(step.artifact.id)
    return [f"artifact[{key!r}]: expected {value!r}, got {record.get(key, '<missing>')!r}"
            for key, value in expected.items() if record.get(key, _MISSING) != value]


def _diff(expected: Any, actual: Any) -> str:
    def dump(value: Any) -> list[str]:
        return json.dumps(value, indent=2, sort_keys=True, default=str).splitlines()

    lines = list(difflib.unified_diff(dump(expected), dump(actual), lineterm="", n=2))[2:]
    if len(lines) > 40:
        lines = lines[:40] + [f"... ({len(lines) - 40} more lines)"]
    return "\n".join("      " + line for line in lines)


def _step_summary(client: Any, run_id: str) -> str:
    page = client.workflows.steps.list(run_id, limit=1000)
    return ", ".join(f"{s.step_id} ({s.lifecycle.status})" for s in page.data) or "none"


def _missing_step(client: Any, run_id: str, step_id: str) -> str:
    page = client.workflows.steps.list(run_id, limit=1000)
    ids = [s.step_id for s in page.data]
    close = difflib.get_close_matches(step_id, ids, n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    return (f"run {run_id} has no step {step_id!r}.{hint}\n"
            f"  its steps: {_step_summary(client, run_id)}")


def _report(client: Any, run_id: str, step: Any, problems: list[str]) -> str:
    life = step.lifecycle
    lines = [f"step {step.step_id!r} ({step.block_type}) of run {run_id} does not match:"]
    lines += [f"  {p}" for p in problems]
    if life.status == "error":
        code = life.details.error_code if life.details else None
        lines.append(f"  the step failed: {life.message} ({life.category}, {code})")
    elif getattr(life, "reason", None):
        lines.append(f"  the step's reason: {life.reason}")
    lines.append(f"  steps of the run: {_step_summary(client, run_id)}")
    return "\n".join(lines)
