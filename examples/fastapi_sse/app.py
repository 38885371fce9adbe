"""Expense approvals over HTTP: start runs, stream their steps with Server-Sent Events.

Run it::

    python -m examples.fastapi_sse.app            # serves http://127.0.0.1:8000

    curl -X POST localhost:8000/runs -H 'content-type: application/json' \\
         -d '{"employee": "ada", "category": "meals", "amount": 42}'
    curl -N localhost:8000/runs/RUN_ID/events    # one SSE event per step transition

What it shows:

* one :class:`~engine.core.Engine` for the whole app, opened in the lifespan;
* a custom block type (``expense_policy``) registered on the engine's registry, used in
  ``workflow.yaml`` like a built-in;
* ``await engine.start(...)`` in a request handler: the run goes on after the response;
* ``handle.events()`` relayed as SSE: ``id`` is the event's ``seq`` (0, 1, 2, ... with no
  gaps), ``event`` is ``step`` or ``run``, and the stream ends after the run's final
  event. A client reconnecting with ``Last-Event-ID`` resumes after that event.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from blocks.base import BlockType, StrictConfig
from engine import Engine, Payload
from engine.contracts.blocks import BlockContext, BlockResult
from engine.contracts.errors import InputError, WorkflowValidationError
from engine.handle import RunHandle

WORKFLOW = Path(__file__).with_name("workflow.yaml")


# --------------------------------------------------------------------------- the app's blocks


class PolicyConfig(StrictConfig):
    """Spending limit per expense category; ``default_limit`` for the others."""

    limits: dict[str, float] = Field(default_factory=dict)
    default_limit: float = 100.0


class ExpensePolicy(BlockType):
    """Sends an expense out on ``output-json-within`` or ``output-json-over`` its limit."""

    type_name = "expense_policy"
    config_model = PolicyConfig
    operation = "expense_policy"

    def input_handles(self, config: PolicyConfig) -> dict[str, Any]:
        return {"input-json-expense": "json"}

    def output_handles(self, config: PolicyConfig) -> dict[str, Any]:
        return {"output-json-within": "json", "output-json-over": "json"}

    def runs_inline(self, config: PolicyConfig) -> bool:
        return True

    async def run(self, ctx: BlockContext, config: PolicyConfig,
                  inputs: Mapping[str, Payload]) -> BlockResult:
        """Compare the amount with the category's limit and fire one handle."""
        expense = dict(inputs["input-json-expense"].data)
        limit = config.limits.get(expense["category"], config.default_limit)
        handle = "output-json-within" if expense["amount"] <= limit else "output-json-over"
        expense["limit"] = limit
        return BlockResult(outputs={handle: Payload.json(expense)},
                           artifact={"operation": self.operation, "limit": limit,
                                     "amount": expense["amount"], "selected_handle": handle})


def reimburse(expense: Any) -> dict[str, Any]:
    """Within policy: schedule the payment."""
    return {"employee": expense.employee, "amount": expense.amount, "status": "scheduled"}


def ask_manager(expense: Any) -> dict[str, Any]:
    """Over the limit: the manager decides."""
    return {"employee": expense.employee, "status": "needs_manager",
            "over_by": round(expense.amount - expense.limit, 2)}


# --------------------------------------------------------------------------- HTTP


class ExpenseClaim(BaseModel):
    """``POST /runs`` body."""

    employee: str
    category: str
    amount: float


#: Where the app keeps its runs by default: a temporary folder, not the current one.
DEFAULT_DB = Path(tempfile.gettempdir()) / "stepwell-examples" / "expenses.db"


def create_app(db: str | Path | None = None) -> FastAPI:
    """The app, with its engine on ``db`` (opened at startup, closed at shutdown).

    Args:
        db: the database (default :data:`DEFAULT_DB`, in the temporary folder).
    """
    db = db or DEFAULT_DB

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = Engine(db)
        engine.registry.register(ExpensePolicy())
        app.state.engine = engine
        app.state.workflow = engine.load(WORKFLOW)
        app.state.runs = {}
        try:
            yield
        finally:
            await _stop_runs(app.state.runs)
            engine.close()

    app = FastAPI(title="stepwell expenses", lifespan=lifespan)

    @app.post("/runs", status_code=202)
    async def start_run(claim: ExpenseClaim, request: Request) -> dict[str, str]:
        """Start a run; it goes on after this response."""
        state = request.app.state
        try:
            handle = await state.engine.start(state.workflow, {"expense": claim.model_dump()})
        except (WorkflowValidationError, InputError) as exc:
            raise HTTPException(422, str(exc)) from exc
        state.runs[handle.run_id] = handle
        return {"run_id": handle.run_id, "events": f"/runs/{handle.run_id}/events"}

    @app.get("/runs/{run_id}/events")
    async def run_events(run_id: str, request: Request) -> StreamingResponse:
        """Every step transition of the run as SSE, ending with the run's final event."""
        handle = _handle(request, run_id)
        after = int(request.headers.get("last-event-id", "-1"))
        return StreamingResponse(_sse(handle, after), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @app.get("/runs/{run_id}")
    async def get_run(run_id: str, request: Request) -> dict[str, Any]:
        """The run in Retab's WorkflowRun shape."""
        _handle(request, run_id)
        run = request.app.state.engine.client.workflows.runs.get(run_id)
        return dict(run.model_dump(mode="json"))

    @app.post("/runs/{run_id}/cancel")
    async def cancel_run(run_id: str, request: Request) -> dict[str, bool]:
        """Cancel the run (False when it had already ended)."""
        return {"cancelled": _handle(request, run_id).cancel()}

    return app


def _handle(request: Request, run_id: str) -> RunHandle:
    handle = request.app.state.runs.get(run_id)
    if handle is None:
        raise HTTPException(404, f"No run {run_id!r} was started by this server.")
    return handle  # type: ignore[no-any-return]


async def _sse(handle: RunHandle, after: int) -> AsyncIterator[str]:
    async for event in handle.events():
        if event.seq > after:
            data = json.dumps(event.to_dict(), separators=(",", ":"))
            yield f"id: {event.seq}\nevent: {event.kind}\ndata: {data}\n\n"


async def _stop_runs(runs: dict[str, RunHandle]) -> None:
    """Cancel what is still running and let it record that before the engine closes."""
    import anyio

    from engine.contracts.errors import StepwellError

    for handle in runs.values():
        if not handle.done:
            handle.cancel()
            with anyio.move_on_after(5), suppress(StepwellError):
                await handle.result()


def main() -> None:
    """Serve the app on http://127.0.0.1:8000 (database :data:`DEFAULT_DB`)."""
    import uvicorn

    print(f"database: {DEFAULT_DB}")
    uvicorn.run(create_app(), host="127.0.0.1", port=8000)


if __name__ == "__main__":
    main()
