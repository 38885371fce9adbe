"""The runs list's model: one keyset page of runs, with their step and item counts.

Filters are the HTTP API's (:class:`store.search.RunFilters`): status, workflow, a
creation date range and a text search over run id, workflow id and name. A page is
:data:`PAGE_SIZE` runs, newest first; ``after``/``before`` cursors make every page a
stable URL. Counts, owners and loop sizes are read for the page's runs only, in three
grouped queries (:mod:`engine.contracts.outline`).
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from engine.contracts.frozen import record
from engine.contracts.outline import RunCounts, WorkflowChoice
from engine.server.ui.run_view import run_clock
from store.api import ReadAPI, WorkflowRun
from store.search import RUN_STATUSES, RunFilters, search_runs

PAGE_SIZE = 50


@record
class RunsQuery:
    """The runs list's query string, checked.

    Attributes:
        problems: what was ignored and why (shown above the list).
    """

    status: str = ""
    workflow: str = ""
    day_from: str = ""
    day_to: str = ""
    q: str = ""
    after: str | None = None
    before: str | None = None
    problems: tuple[str, ...] = ()

    def filters(self) -> RunFilters:
        """The filters of :func:`store.search.search_runs`."""
        return RunFilters(statuses=[self.status] if self.status else None,
                          workflow_id=self.workflow or None,
                          created_from=_day(self.day_from), created_to=_day(self.day_to, 1),
                          search=self.q or None)

    def link(self, **changes: Any) -> str:
        """This query with ``changes``, as a ``/?...`` URL (cursors dropped unless given)."""
        from urllib.parse import urlencode

        values = {"status": self.status, "workflow": self.workflow, "from": self.day_from,
                  "to": self.day_to, "q": self.q}
        values.update({k.rstrip("_"): v for k, v in changes.items()})
        return "/?" + urlencode({k: v for k, v in values.items() if v})


def _day(text: str, plus: int = 0) -> float | None:
    if not text:
        return None
    moment = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
    try:
        return (moment + timedelta(days=plus)).timestamp()
    except OverflowError:  # the day after 9999-12-31: no bound
        return None


def parse_query(params: Any) -> RunsQuery:
    """Read and check the runs list's query parameters (bad values are dropped)."""
    problems: list[str] = []
    status = params.get("status", "")
    if status and status not in RUN_STATUSES:
        problems.append(f"unknown status {status!r} (use one of {', '.join(RUN_STATUSES)})")
        status = ""
    days = {}
    for name in ("from", "to"):
        value = params.get(name, "")
        try:
            if value:
                date.fromisoformat(value)
        except ValueError:
            problems.append(f"{name}: {value!r} is not a date (YYYY-MM-DD)")
            value = ""
        days[name] = value
    return RunsQuery(status=status, workflow=params.get("workflow", "")[:200],
                     day_from=days["from"], day_to=days["to"], q=params.get("q", "")[:200],
                     after=params.get("after") or None,
                     before=None if params.get("after") else params.get("before") or None,
                     problems=tuple(problems))


@record
class RunRow:
    """One line of the runs list."""

    run: WorkflowRun
    status: str
    counts: RunCounts
    items_total: int
    duration_ms: float | None
    owner_lost: bool
    waiting_since: float | None


@record
class RunsPage:
    """What the runs list shows."""

    rows: list[RunRow]
    query: RunsQuery
    next_cursor: str | None
    prev_cursor: str | None
    workflows: list[WorkflowChoice]


def runs_page(api: ReadAPI, query: RunsQuery) -> RunsPage:
    """One page of runs matching ``query``, with counts and owners.

    Raises:
        NotFoundError: a cursor that is not a visible run.
    """
    page = search_runs(api, query.filters(), limit=PAGE_SIZE, after=query.after,
                       before=query.before)
    ids = [r.id for r in page.data]
    reads, org = api.reads, api.organization_id
    counts = reads.run_counts(ids, organization_id=org)
    presence = reads.run_presence(ids, organization_id=org)
    noted: dict[str, int] = {}
    for size in reads.loop_sizes(ids, organization_id=org):
        if not size.bound:
            noted[size.run_id] = noted.get(size.run_id, 0) + size.items
    now = time.time()
    rows = []
    for run in page.data:
        seen = presence.get(run.id)
        duration, lost = run_clock(run, seen, now)
        waiting = seen.waiting_since if seen and run.lifecycle.status == "awaiting_review" \
            else None
        found = counts.get(run.id) or RunCounts()
        rows.append(RunRow(run=run, status=run.lifecycle.status, counts=found,
                           items_total=max(found.items, noted.get(run.id, 0)),
                           duration_ms=duration, owner_lost=lost, waiting_since=waiting))
    meta = page.list_metadata
    return RunsPage(rows=rows, query=query, next_cursor=meta.after, prev_cursor=meta.before,
                    workflows=reads.workflow_choices(organization_id=org))
