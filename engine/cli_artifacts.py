"""``stepwell artifacts get ARTIFACT_ID``: the operation record a step produced.

An artifact is what a block recorded about its work, beyond its outputs: an extraction's
likelihoods, a classifier's scores, a condition's evaluations, a function's input,
output and stdout, an API call's attempts. ``steps get`` shows it with its step (and
``steps get --json`` inlines it as ``artifact.record``); this command prints it alone.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from engine.cli_read import DbOption, JsonOption, read_client
from engine.cli_support import handle_errors, print_json, stdout

artifacts_app = typer.Typer(help="Show the operation records steps produced.",
                            no_args_is_help=True)


def artifact_of(client: Any, step: dict[str, Any]) -> dict[str, Any] | None:
    """The full operation record behind ``step["artifact"]`` (None when it has none).

    Args:
        client: a read client.
        step: the step as a dict (``to_jsonable`` of the read API's step).
    """
    ref = step.get("artifact") or {}
    if not ref.get("id"):
        return None
    return dict(client.api.get_artifact(ref["id"]))


@artifacts_app.command("get")
@handle_errors
def artifacts_get(
    artifact_id: Annotated[str, typer.Argument(
        help="The artifact id (a step's artifact.id, see `stepwell steps get`).",
        show_default=False)],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show an artifact: the whole operation record a step produced."""
    from engine.cli_detail import fields_table
    from engine.cli_render import json_block

    with read_client(db) as client:
        record = dict(client.api.get_artifact(artifact_id))
    if as_json:
        print_json(record)
        return
    from rich.console import Group
    from rich.markup import escape
    from rich.text import Text

    head = [(key, escape(str(record.pop(key)))) for key in
            ("id", "operation", "workflow_run_id", "step_id", "created_at") if key in record]
    stdout().print(Group(fields_table(head), Text(""), Text(json_block(record))))
