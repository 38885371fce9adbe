"""Plumbing shared by every CLI command: consoles, the database path, JSON output and
the one place where errors become a red message and an exit code.

Exit codes: 0 completed, 1 the run ended in error or was cancelled, 2 bad
usage / invalid workflow / bad input / storage failure, 3 waiting for review.
Only cheap modules are imported here so ``stepwell --help`` stays fast (typer itself
only when a command fails).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from engine.contracts.errors import StepwellError, WorkflowValidationError, error_in

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_AWAITING_REVIEW = 3
EXIT_INTERRUPTED = 130

DEFAULT_DB = "stepwell.db"
DB_HELP = ("Database: a SQLite file (default: ./stepwell.db, or $STEPWELL_DB when set) or "
           "postgresql://USER:PASSWORD@HOST:PORT/DATABASE.")
JSON_HELP = "Print machine-readable JSON instead of tables."
BLOCKS_HELP = ("Custom block types, repeatable: MODULE:ATTR naming a BlockRegistry, a "
               "BlockType, a list of them, or a function taking the registry (installed "
               "stepwell.blocks entry points load by themselves).")
ALL_HELP = "Show the loop sentinel steps too."
WAIT_HELP = ("When the run stops for a review, keep following it until someone decides "
             "and it ends (exit code of the end).")

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:
    from rich.console import Console


class Durability(StrEnum):
    """``--durability`` choices of the commands that continue runs a database holds
    (``runs resume``, ``reviews approve``/``reject``, ``worker``)."""

    process = "process"
    full = "full"


class RunDurability(StrEnum):
    """``stepwell run --durability`` choices: :class:`Durability`'s, and ``scratch`` for a
    database thrown away afterwards (its checkpoints skip fsync for every writer's
    commits, so it is not offered where a database's earlier runs matter)."""

    process = "process"
    full = "full"
    scratch = "scratch"


#: The ``--durability`` option's help.
DURABILITY_HELP = "process: survives process crashes (fast). full: also survives power loss."
#: ``stepwell run --durability``'s help.
RUN_DURABILITY_HELP = (f"{DURABILITY_HELP} scratch: no fsync at all, for a database you "
                       "throw away afterwards.")


def stdout() -> Console:
    """A console on the current stdout (made per call so test runners can swap it).

    When stdout is not a terminal and ``COLUMNS`` is unset, the width is generous so
    tables piped into files or ``grep`` keep ids on one line.
    """
    from rich.console import Console

    return Console(width=_width(sys.stdout), highlight=False, emoji=False)


def stderr() -> Console:
    """A console on the current stderr, for errors and hints (same width rule)."""
    from rich.console import Console

    return Console(stderr=True, width=_width(sys.stderr), highlight=False, emoji=False)


def _width(stream: Any) -> int | None:
    isatty = getattr(stream, "isatty", None)
    wide = not (isatty and isatty()) and "COLUMNS" not in os.environ
    return 200 if wide else None


def resolve_db(db: str | Path | None) -> str:
    """The database: ``--db``, else ``$STEPWELL_DB``, else ``./stepwell.db``.

    Raises:
        UsageError: a URL with an unknown scheme (see :mod:`store.urls`).
    """
    from store.urls import parse_db

    text = str(db) if db is not None else os.environ.get("STEPWELL_DB") or DEFAULT_DB
    parse_db(text)
    return text


def existing_db(db: str | Path | None) -> str:
    """The database path for read commands, which never create a database.

    Raises:
        typer.Exit: (code 2) after saying where the missing database was looked for.
    """
    from store.urls import parse_db

    path = resolve_db(db)
    if parse_db(path).is_file and not Path(path.removeprefix("sqlite:///")).is_file():
        fail(
            f"No stepwell database at {path}. Start a run with `stepwell run WORKFLOW"
            f"{db_flag(path)}`, or point --db (or $STEPWELL_DB) at an existing database."
        )
    return path


def db_flag(path: str) -> str:
    """`` --db PATH`` when ``path`` is not what the default resolves to, else ``''``.

    Used in printed hints so a copied command reads the same database.
    """
    from store.urls import redact

    return "" if path == resolve_db(None) else f" --db {_quote(redact(path))}"


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON on stdout (plain text, no markup)."""
    sys.stdout.write(json.dumps(to_jsonable(data), indent=2, default=str) + "\n")
    sys.stdout.flush()


#: Fields of a stored row that carry block data; an unreadable row is shown without them.
PAYLOAD_FIELDS = ("handle_inputs", "handle_outputs", "artifact", "output", "input_document",
                  "output_document", "trace_spans")


def to_jsonable(value: Any) -> Any:
    """Plain JSON data from pydantic models, value objects, dicts and lists.

    A stored row whose JSON cannot be built (nested too deeply: written before outputs
    were bounded) comes without its payload fields and with a ``stepwell_unreadable``
    note, so one bad row never breaks a listing.
    """
    if hasattr(value, "model_dump"):
        try:
            return value.model_dump(mode="json")
        except (ValueError, TypeError, RecursionError) as exc:  # pydantic's depth guard
            fields = type(value).model_fields
            if any(name in fields for name in PAYLOAD_FIELDS):
                return unreadable_dump(value, exc)
            # a page or wrapper: the bad row is somewhere inside, field by field
            return {name: to_jsonable(getattr(value, name)) for name in fields}
    if hasattr(value, "to_dict"):
        return to_jsonable(value.to_dict())
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def unreadable_dump(item: Any, exc: BaseException) -> dict[str, Any]:
    """``item``'s JSON form without :data:`PAYLOAD_FIELDS`, with a ``stepwell_unreadable``
    note naming why the whole row could not be shown."""
    fields = type(item).model_fields
    cleared = {name: fields[name].get_default(call_default_factory=True)
               for name in PAYLOAD_FIELDS if name in fields}
    data: dict[str, Any] = item.model_copy(update=cleared).model_dump(mode="json")
    data["stepwell_unreadable"] = (
        "unreadable: its stored JSON is nested too deeply or is not serialisable "
        f"({type(exc).__name__}); inputs, outputs and artifact left out")
    return data


def iso_time(epoch: float | None) -> str | None:
    """ISO 8601 UTC (``2026-03-12T09:30:00.123456Z``) of epoch seconds, None for None."""
    import datetime as dt

    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat().replace("+00:00", "Z")


def check_choices(option: str, values: Sequence[str] | None, choices: Sequence[str]) -> None:
    """Exit 2 naming the choices when a filter value is not one of them.

    Args:
        option: the option as typed (``--status``).
        values: what was given (None: nothing to check).
        choices: the accepted values.

    Raises:
        typer.Exit: (code 2) after printing the bad value and every choice.
    """
    bad = [v for v in values or () if v not in choices]
    if bad:
        import difflib

        close = difflib.get_close_matches(bad[0], list(choices), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        fail(f"{option} {bad[0]!r} is not a valid choice.{hint} Choose from: "
             f"{', '.join(choices)}.")


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``message`` in red on stderr and exit with ``code`` (no traceback)."""
    import typer  # here, not at the top: a plain ``stepwell run`` never loads typer
    from rich.markup import escape

    stderr().print(f"[bold red]Error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def workflow_file(path: Path) -> Path:
    """``path`` if it is a readable file, else exit 2 saying what to pass."""
    if not path.exists():
        fail(f"Workflow file not found: {path}. Pass the path of a workflow YAML or JSON file.")
    if not path.is_file():
        fail(f"{path} is not a file. Pass the path of a workflow YAML or JSON file.")
    return path


def emit_text(text: str, output: Path | None) -> None:
    """Print ``text`` on stdout, or write it to ``output`` (exit 2 when it cannot be
    written) and say so on stderr."""
    import typer

    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"Cannot write {output}: {exc.strerror or exc}. Pick a writable --output path.")
    stderr().print(f"Wrote {output}")


def handle_errors(command: F) -> F:
    """Decorate a command so library errors exit 2 with one clear message.

    StepwellError subclasses carry messages written for the user; YAML, pydantic and
    SQLite errors that escape the library are reported the same way rather than as a
    traceback. Anything else is a bug and keeps its traceback.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except WorkflowValidationError as exc:
            report_invalid(exc)
        except StepwellError as exc:
            fail(str(exc))
        except Exception as exc:
            inner = stepwell_error_in(exc)
            if inner is not None:  # raised inside a task group: the cause, in one line
                fail(str(inner))
            message = foreign_error_message(exc)
            if message is None:
                raise
            fail(message)

    return wrapper  # type: ignore[return-value]


def stepwell_error_in(exc: BaseException) -> StepwellError | None:
    """The first stepwell error inside an exception group (a full disk met by a task
    of the run), or None."""
    return error_in(exc, StepwellError)


def report_invalid(exc: WorkflowValidationError) -> NoReturn:
    """Print every diagnostic of an invalid workflow on stderr, then exit 2."""
    from engine.cli_render import diagnostics_table

    errors = [d for d in exc.diagnostics if d.severity == "error"]
    console = stderr()
    console.print(diagnostics_table(exc.diagnostics))
    fail(
        f"{exc.source} is invalid ({len(errors)} problem{'' if len(errors) == 1 else 's'}). "
        "Fix them and check with `stepwell validate WORKFLOW`."
    )


def foreign_error_message(exc: Exception) -> str | None:
    """A user message for known third-party errors that escaped the library, else None."""
    kind = type(exc)
    modules = {cls.__module__.split(".")[0] for cls in kind.__mro__}
    if "yaml" in modules:
        return f"Malformed YAML: {exc}. Fix the file and try again."
    if "pydantic" in modules or "pydantic_core" in modules:
        return f"Invalid data: {exc}. Fix the value named above and try again."
    if "sqlite3" in modules:
        return (
            f"Database error: {exc}. Check that --db points at a stepwell database in a "
            "writable folder."
        )
    return None


def _quote(path: str) -> str:
    return path if all(ch.isalnum() or ch in "/._-~" for ch in path) else repr(path)
