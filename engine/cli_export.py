"""``stepwell export``: a workflow file written back as declarative YAML.

What Retab's ``spec get`` writes: ``apiVersion``, ``kind``, ``metadata``, blocks keyed by
id with children nested, canonical ``source``/``target`` edges, configs as written and
generated boundary edges left out (:mod:`engine.export`). Graph JSON comes out
declarative, so this also converts a REST graph into a spec. Loading the output gives
the same graph. The file is read, never validated: an invalid workflow exports too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.cli_support import emit_text, handle_errors, workflow_file


@handle_errors
def export(
    workflow: Annotated[Path, typer.Argument(
        help="Workflow file (Retab YAML, or JSON: declarative or graph).",
        show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the YAML to FILE instead of stdout.",
        show_default=False)] = None,
    db: Annotated[Path | None, typer.Option("--db", hidden=True)] = None,
) -> None:
    """Print a workflow as declarative YAML (as Retab's `spec get` writes it)."""
    from engine.definition import load_workflow
    from engine.export import to_yaml

    text = to_yaml(load_workflow(workflow_file(workflow)))
    emit_text(text, output)
