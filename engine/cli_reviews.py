"""``stepwell reviews list | get``: the review queue, with what each review asks and holds.

A review shows the instructions its block gave (``hil`` ``instructions``, a review
trigger's), what the block proposed and, once decided, the decision, its reason and the
corrected data an approval carried: the list shows the data that flows on (``decided:``
after a corrected approval, ``proposed:`` otherwise); ``reviews get`` shows both.

The table has the style of ``runs list`` and ``steps list``; ``--json`` prints
``{"data": [...], "list_metadata": {"before", "after"}}`` with ISO 8601 UTC times, like
every other list. Statuses: ``pending`` (undecided, its run waits), ``approved``,
``rejected``, ``cancelled`` (undecided, its run ended), ``decided``, ``all``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from engine.cli_durable import reviews_app
from engine.cli_read import DbOption, JsonOption
from engine.cli_support import (
    db_flag,
    existing_db,
    fail,
    handle_errors,
    iso_time,
    print_json,
    stdout,
)

if TYPE_CHECKING:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

REVIEW_STATUSES = ("pending", "approved", "rejected", "cancelled", "decided", "all")
_WIDTH = 60


def review_json(entry: Any) -> dict[str, Any]:
    """One review as ``--json`` shows it (times ISO 8601 UTC).

    Args:
        entry: a :class:`~engine.contracts.reads.ReviewEntry`.
    """
    record = (entry.data or {}).get("review") or {}
    decided = (entry.decision_data or {}).get("data") if entry.decision_data else None
    return {
        "id": entry.id, "run_id": entry.run_id, "step_id": entry.step_id,
        "block_id": entry.block_id, "block_type": entry.block_type,
        "status": queue_status(entry), "instructions": record.get("instructions") or None,
        "triggered_by": record.get("triggered_by"), "evaluations": record.get("evaluations"),
        "proposed": proposed_data(entry.data), "decision": entry.decision,
        "decided": decided, "has_decided_data": entry.decision_data is not None,
        "decision_data": entry.decision_data,
        "reason": entry.note, "created_at": iso_time(entry.created_at),
        "decided_at": iso_time(entry.decided_at), "workflow_id": entry.workflow_id,
        "run_status": entry.run_status,
    }


def queue_status(entry: Any) -> str:
    """``pending`` / ``approved`` / ``rejected``, or ``cancelled`` for an undecided review
    whose run ended."""
    if entry.decision:
        return str(entry.decision)
    ended = entry.run_status in ("completed", "error", "cancelled")
    return "cancelled" if ended else "pending"


def proposed_data(data: Any) -> Any:
    """What the block proposed: the data of its one JSON output, or every output."""
    outputs = (data or {}).get("outputs") or {}
    shown = [p.get("data", p) if isinstance(p, dict) else p for p in outputs.values()]
    return shown[0] if len(shown) == 1 else shown


def _short(value: Any, width: int = _WIDTH) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str,
                                                           ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def reviews_table(reviews: Sequence[dict[str, Any]]) -> Table:
    """Reviews as rows, in the style of the runs and steps tables."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from engine.cli_render import parse_time

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for name in ("review_id", "status", "created", "step", "run", "instructions", "data"):
        table.add_column(name, no_wrap=name in ("review_id", "status", "created"),
                         overflow="fold")
    for review in reviews:
        if review["has_decided_data"]:
            data = f"decided: {_short(review['decided'])}"
        else:
            data = f"proposed: {_short(review['proposed'])}"
        when = parse_time(review["created_at"])
        created = when.astimezone().strftime("%Y-%m-%d %H:%M:%S") if when else ""
        status = review["status"]
        table.add_row(escape(review["id"]), review_status_text(status), created,
                      escape(review["step_id"]), escape(review["run_id"]),
                      escape(_short(review["instructions"] or "", 40)), escape(data))
    return table


def review_status_text(status: str) -> Text:
    """A review status in the colour of the step status it corresponds to."""
    from rich.text import Text

    from engine.cli_render import STATUS_STYLES

    like = {"pending": "awaiting_review", "approved": "completed", "rejected": "error"}
    return Text(status, style=STATUS_STYLES.get(like.get(status, status), ""))


def review_detail(review: dict[str, Any]) -> Group:
    """One review in full: identity, status, instructions, proposed and decided data."""
    from rich.console import Group, RenderableType
    from rich.markup import escape
    from rich.text import Text

    from engine.cli_detail import fields_table
    from engine.cli_render import json_block

    rows: list[tuple[str, RenderableType]] = [
        (key, escape(str(review[key]))) for key in
        ("id", "status", "run_id", "step_id", "block_type", "created_at", "decision",
         "reason", "decided_at", "triggered_by") if review.get(key) not in (None, "")]
    parts: list[RenderableType] = [fields_table(rows)]
    if review.get("instructions"):
        parts += [Text("\ninstructions", style="bold"), Text(str(review["instructions"]))]
    parts += [Text("\nproposed", style="bold"), Text(json_block(review["proposed"]))]
    if review["has_decided_data"]:
        parts += [Text("\ndecided (corrected by the reviewer)", style="bold"),
                  Text(json_block(review["decided"]))]
    if review.get("evaluations"):
        parts += [Text("\nwhy it was asked", style="bold"),
                  Text(json_block(review["evaluations"], 30))]
    return Group(*parts)


@reviews_app.command("list")
@handle_errors
def reviews_list(
    run: Annotated[str | None, typer.Option("--run", "-r", help="Only this run's reviews.",
                                            show_default=False)] = None,
    status: Annotated[str, typer.Option(
        "--status", "-s", help=f"One of: {', '.join(REVIEW_STATUSES)}.")] = "all",
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000,
                                       help="At most N reviews.")] = 50,
    after: Annotated[str | None, typer.Option(
        "--after", help="Cursor printed at the end of the previous page.",
        show_default=False)] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List reviews, newest first: status, instructions, and the data that flows on."""
    from engine.contracts.reads import ReviewFilters
    from engine.core import Engine

    if status not in REVIEW_STATUSES:
        fail(f"--status {status!r} is not a review status. Choose one of: "
             f"{', '.join(REVIEW_STATUSES)}.")
    with Engine(existing_db(db)) as engine:
        page = engine.store.page_review_entries(
            ReviewFilters(run_id=run, decision_status=status), limit=limit, after=after,
            descending=True)
    reviews = [review_json(entry) for entry in page.items]
    cursor = reviews[-1]["id"] if reviews and page.more_after else None
    if as_json:
        print_json({"data": reviews, "list_metadata": {
            "before": reviews[0]["id"] if reviews and page.more_before else None,
            "after": cursor}})
        return
    console = stdout()
    if not reviews:
        console.print("No reviews match." if run or status != "all" or after
                      else "No reviews yet.")
        return
    console.print(reviews_table(reviews))
    flag = db_flag(existing_db(db))
    if cursor:
        again = (f"{f' --run {run}' if run else ''}"
                 f"{f' --status {status}' if status != 'all' else ''} --limit {limit}")
        console.print(f"[dim]More reviews: stepwell reviews list{again} --after {cursor}"
                      f"{flag}[/]", soft_wrap=True)
    if any(r["status"] == "pending" for r in reviews):
        console.print("Decide with `stepwell reviews approve REVIEW_ID [--data JSON]` or "
                      "`stepwell reviews reject REVIEW_ID --reason TEXT`.", soft_wrap=True)


@reviews_app.command("get")
@handle_errors
def reviews_get(
    review_id: Annotated[str, typer.Argument(help="The review id (rev_...).",
                                             show_default=False)],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one review: instructions, what was proposed, what was decided and why."""
    from engine.core import Engine

    with Engine(existing_db(db)) as engine:
        review = review_json(engine.store.read_review_entry(review_id))
    if as_json:
        print_json(review)
        return
    stdout().print(review_detail(review))
