"""``stepwell serve``: the HTTP API on a local port.

FastAPI and uvicorn are imported inside the command, so the rest of the CLI never loads
them. Keys come from ``STEPWELL_API_KEYS`` (``key`` or ``key:org_id``, comma-separated);
without any, a key is generated and printed, and only a loopback host is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.cli_support import DB_HELP, handle_errors, resolve_db, stderr

MB = 1024 * 1024


@handle_errors
def serve(
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on. Anything but loopback needs STEPWELL_API_KEYS."
    )] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535,
                                      help="TCP port.")] = 8000,
    db: Annotated[Path | None, typer.Option("--db", help=DB_HELP, show_default=False)] = None,
    max_body_mb: Annotated[float, typer.Option(
        "--max-body-mb", min=0.001, help="Refuse request bodies larger than this (413).")] = 32,
    allow_file_paths: Annotated[bool, typer.Option(
        "--allow-file-paths",
        help="Accept run documents given as paths on this machine (off: data URLs only).",
    )] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
) -> None:
    """Serve the Retab-compatible HTTP API; point the retab SDK's base_url here."""
    import uvicorn

    from engine.server import create_app, server_config

    config = server_config(host, max_body_bytes=int(max_body_mb * MB),
                           allow_file_paths=allow_file_paths)
    database = resolve_db(db)
    app = create_app(database, config=config)
    console = stderr()
    shown = f"[{host}]" if ":" in host else host
    console.print(f"stepwell API on http://{shown}:{port} (database {database}); "
                  f"OpenAPI at /docs")
    if config.generated_key is not None:
        console.print("No STEPWELL_API_KEYS set; this run's API key (organization org_local):")
        typer.echo(config.generated_key)
        console.print("Use it as `Api-Key: KEY`, `Authorization: Bearer KEY` or "
                      "Retab(api_key=KEY, base_url=...).")
    uvicorn.run(app, host=host, port=port, log_level=log_level.lower())
