"""Every error stepwell raises, in one tree.

::

    StepwellError
    ├── DefinitionError              a workflow cannot be loaded or is invalid (exit 2)
    │   ├── WorkflowLoadError        unreadable file, malformed YAML/JSON
    │   └── WorkflowValidationError  carries every Diagnostic found at once
    ├── UsageError                   the caller asked for something impossible (exit 2)
    │   ├── NotFoundError            unknown run, step, review
    │   ├── ConflictError            ambiguous step id, decision already taken
    │   └── InputError               a run input that does not fit its start block
    ├── RegistryError                unknown or duplicate block type
    ├── IllegalTransition            a step lifecycle move the table forbids
    ├── BlockError                   raised by block handlers; stage + category are data
    │   ├── TransientError           retried (network, timeouts, 5xx)
    │   ├── QuotaError               retried after ``retry_after`` (429)
    │   └── PermanentError           fails the step at once (validation, code errors)
    └── StorageError                 the database or file store failed

Constructors take fields and build the message; each message says what to do next.
Retryability is data on the error (``category``), never inferred from the class name
by callers.
"""

from __future__ import annotations

from dataclasses import field
from enum import StrEnum
from typing import Any, TypeVar

from engine.contracts.frozen import record

E = TypeVar("E", bound=BaseException)


class ErrorStage(StrEnum):
    """Where in a step's life an error happened (stored as ``error.stage``)."""

    INPUT_COLLECTION = "input_collection"
    REGISTRY_LOOKUP = "registry_lookup"
    DOCUMENT_FETCH = "document_fetch"
    EXECUTION = "execution"
    OUTPUT_STORAGE = "output_storage"
    ROUTING = "routing"
    HISTORY_PAYLOAD = "history_payload"


class ErrorCategory(StrEnum):
    """How the engine should react to an error (stored as ``error.category``)."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"
    QUOTA = "quota"


class StepwellError(Exception):
    """Base of every error raised by stepwell."""


# --------------------------------------------------------------------------- definitions


@record
class Diagnostic:
    """One validation problem: a code, where it is, what is wrong and how to fix it."""

    code: str
    message: str
    path: str
    fix: str = ""
    severity: str = "error"
    details: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        """One human line: ``path: message (fix)``."""
        text = f"{self.path}: {self.message}" if self.path else self.message
        return f"{text} Fix: {self.fix}" if self.fix else text

    def to_dict(self) -> dict[str, Any]:
        """JSON form used by ``--json`` and the HTTP API."""
        return {
            "code": self.code,
            "message": self.message,
            "yaml_path": self.path,
            "fix": self.fix,
            "severity": self.severity,
            "details": self.details,
        }


class DefinitionError(StepwellError):
    """A workflow definition cannot be used."""


class WorkflowLoadError(DefinitionError):
    """The workflow file could not be read or parsed at all."""

    def __init__(self, source: str, problem: str, fix: str) -> None:
        self.source = source
        self.problem = problem
        self.fix = fix
        super().__init__(f"Cannot load workflow {source}: {problem}. {fix}")


class WorkflowValidationError(DefinitionError):
    """The workflow parsed but breaks one or more rules; every problem is listed.

    ``summary`` is the list of problems without the closing advice (the message ends
    with the CLI's: run ``stepwell validate`` again), for callers such as the HTTP API
    that advise their own next step.
    """

    def __init__(self, diagnostics: list[Diagnostic], source: str = "workflow") -> None:
        self.diagnostics = diagnostics
        self.source = source
        errors = [d for d in diagnostics if d.severity == "error"]
        lines = "\n".join(f"  [{d.code}] {d.render()}" for d in errors)
        self.summary = (f"{source} is invalid ({len(errors)} "
                        f"problem{'s' if len(errors) != 1 else ''}):\n{lines}")
        super().__init__(f"{self.summary}\nFix these and run `stepwell validate` again.")


# --------------------------------------------------------------------------- usage


class UsageError(StepwellError):
    """The caller asked for something that cannot be done; nothing was changed."""


#: Where to list each kind of record, for the default hint of :class:`NotFoundError`: the
#: CLI command when ``stepwell`` has one, and the HTTP list route.
LIST_HINTS = {
    "run": "`stepwell runs list` (HTTP: GET /v1/workflows/runs)",
    "step": "`stepwell steps list RUN_ID` (HTTP: GET /v1/workflows/steps?run_id=RUN_ID)",
    "review": "`stepwell reviews list` (HTTP: GET /v1/workflows/reviews)",
    "workflow": "GET /v1/workflows",
    "block": "GET /v1/workflows/blocks?workflow_id=WORKFLOW_ID",
    "edge": "GET /v1/workflows/edges?workflow_id=WORKFLOW_ID",
    "eval": "GET /v1/workflows/evals?workflow_id=WORKFLOW_ID",
    "file": "GET /v1/files",
}


def list_hint(kind: str) -> str:
    """How to find the existing records of ``kind``: only commands and routes that exist;
    a generic hint for a kind with no list."""
    where = LIST_HINTS.get(kind)
    if where is None:
        return f"Check the {kind} id: copy it from the response or output that named it."
    return f"List the existing ones with {where}."


def error_in(exc: BaseException, kind: type[E]) -> E | None:
    """The first ``kind`` error in ``exc`` or, depth first, in the exception groups it
    holds (what a task group raises when one task of a run failed), or None."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = error_in(inner, kind)
            if found is not None:
                return found
    return None


class NotFoundError(UsageError):
    """A run, step, review or workflow does not exist."""

    def __init__(self, kind: str, ident: str, hint: str = "") -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"No {kind} {ident!r}. {hint or list_hint(kind)}")


class ConflictError(UsageError):
    """The request is ambiguous or contradicts what is already recorded."""


class InputError(UsageError):
    """A run input does not fit the workflow's start blocks."""


# --------------------------------------------------------------------------- engine


class RegistryError(StepwellError):
    """A block type is unknown or registered twice."""


class IllegalTransition(StepwellError):
    """A step lifecycle move that the transition table forbids."""

    def __init__(self, step_id: str, current: str, requested: str) -> None:
        self.step_id = step_id
        self.current = current
        self.requested = requested
        super().__init__(
            f"Can't move step {step_id!r} to {requested!r} when state={current!r}. "
            "This is an engine bug: please report it with the run's database."
        )


class StorageError(StepwellError):
    """The database or file store failed; the message names the file and the fix."""


# --------------------------------------------------------------------------- block errors


class BlockError(StepwellError):
    """An error raised while running one block.

    Args:
        message: what went wrong, phrased for the workflow author.
        category: transient and quota errors are retried, permanent ones are not.
        stage: where in the step's life it happened.
        code: a short machine code (``FUNCTION_RAISED``, ``HTTP_500`` ...).
        context: extra JSON-able facts kept in ``error.details.context``.
        retry_after: seconds to wait before the next attempt (quota errors).
    """

    default_category = ErrorCategory.PERMANENT

    def __init__(
        self,
        message: str,
        *,
        category: ErrorCategory | None = None,
        stage: ErrorStage = ErrorStage.EXECUTION,
        code: str = "BLOCK_ERROR",
        context: dict[str, Any] | None = None,
        retry_after: float | None = None,
        stack_trace: str | None = None,
    ) -> None:
        self.message = message
        self.category = category or self.default_category
        self.stage = stage
        self.code = code
        self.context = context or {}
        self.retry_after = retry_after
        self.stack_trace = stack_trace
        super().__init__(message)

    @property
    def retryable(self) -> bool:
        """True when another attempt may succeed."""
        return self.category is not ErrorCategory.PERMANENT


class TransientError(BlockError):
    """A failure that may pass on its own (network error, timeout, 5xx)."""

    default_category = ErrorCategory.TRANSIENT


class QuotaError(BlockError):
    """A rate limit (429); retried after ``retry_after`` seconds."""

    default_category = ErrorCategory.QUOTA


class PermanentError(BlockError):
    """A failure that will repeat on every attempt (bad input, bad code, bad schema)."""

    default_category = ErrorCategory.PERMANENT
