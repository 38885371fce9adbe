"""``stepwell serve``: the HTTP API on a local port.

FastAPI and uvicorn are imported inside the command, so the rest of the CLI never loads
them. Keys come from ``STEPWELL_API_KEYS`` (``key`` or ``key:org_id``, comma-separated);
without any, a key is generated and printed, and only a loopback host is allowed. The
security policy is decided here, at start-up, and printed (engine.server.security).
Block types: the built-ins, the installed ``stepwell.blocks`` entry points and
``--blocks MODULE:ATTR`` (:mod:`engine.plugins`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.cli_support import BLOCKS_HELP, DB_HELP, handle_errors, resolve_db, stderr

MB = 1024 * 1024


@handle_errors
def serve(
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on. Anything but loopback needs STEPWELL_API_KEYS "
        "(32 characters or more)."
    )] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535,
                                      help="TCP port.")] = 8000,
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP, show_default=False)] = None,
    queue: Annotated[bool, typer.Option(
        "--queue", help="Leave runs to `stepwell worker` processes: runs created here are "
        "queued, decided reviews queue their run again (replicas over one database).",
    )] = False,
    max_body_mb: Annotated[float, typer.Option(
        "--max-body-mb", min=0.001, help="Refuse request bodies larger than this (413).")] = 32,
    allow_file_paths: Annotated[bool, typer.Option(
        "--allow-file-paths",
        help="Accept run documents given as paths on this machine (off: data URLs only).",
    )] = False,
    code: Annotated[str, typer.Option(
        "--code", help="Who may run code: auto (open on a personal server, sandboxed when "
        "several organizations or the network can reach it), open, sandboxed, none.",
    )] = "auto",
    no_code: Annotated[bool, typer.Option(
        "--no-code", help="Refuse workflows with code blocks (same as --code none).")] = False,
    allow_python: Annotated[list[str] | None, typer.Option(
        "--allow-python", help="module:function pattern python: references may name on a "
        "shared server (* wildcards; repeatable).")] = None,
    egress_allow: Annotated[list[str] | None, typer.Option(
        "--egress-allow", help="Host name or network api_call may reach on a shared server "
        "although it is not public (repeatable).")] = None,
    secrets: Annotated[Path | None, typer.Option(
        "--secrets", help='JSON file {"org_id": {"NAME": "value"}}: each organization\'s '
        "secrets, the only values its runs see.", show_default=False)] = None,
    worker_user: Annotated[str | None, typer.Option(
        "--worker-user", help="User confined workers switch to when the server runs as root "
        "without namespaces (default: nobody).", show_default=False)] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
    blocks: Annotated[list[str] | None, typer.Option(
        "--blocks", help=BLOCKS_HELP, show_default=False)] = None,
) -> None:
    """Serve the Retab-compatible HTTP API; point the retab SDK's base_url here.

    See docs/security.md for what a shared server (several organizations, or a public
    address) allows.
    """
    import dataclasses

    import uvicorn

    from blocks.sandbox_host import platform_report
    from engine.server import create_app, server_config
    from engine.server.security import (
        check_keys,
        choose_policy,
        describe_policy,
        load_secrets,
    )

    config = server_config(host, max_body_bytes=int(max_body_mb * MB),
                           allow_file_paths=allow_file_paths)
    check_keys(host, config.api_keys)
    policy = choose_policy(host, config.api_keys, code="none" if no_code else code,
                           allow_python=tuple(allow_python or ()),
                           egress_allow=tuple(egress_allow or ()), worker_user=worker_user)
    config = dataclasses.replace(config, policy=policy, secrets=load_secrets(secrets))
    database = resolve_db(db)
    from blocks.log_capture import capture_info
    from engine.plugins import block_registry, importable_cwd

    importable_cwd()
    capture_info()
    app = create_app(database, config=config, queue=queue,
                     engine_options={"registry": block_registry(blocks or ())})
    console = stderr()
    shown = f"[{host}]" if ":" in host else host
    console.print(f"stepwell API on http://{shown}:{port} (database {_shown_db(database)}"
                  f"{'; runs queued for workers' if queue else ''}); OpenAPI at /docs",
                  markup=False)
    console.print(describe_policy(policy), markup=False)
    if policy.confine_workers:
        console.print(platform_report(worker_user).describe(), markup=False)
    if config.generated_key is not None:
        console.print("No STEPWELL_API_KEYS set; this run's API key (organization org_local):")
        typer.echo(config.generated_key)
        console.print("Use it as `Api-Key: KEY`, `Authorization: Bearer KEY` or "
                      "Retab(api_key=KEY, base_url=...).")
    uvicorn.run(app, host=host, port=port, log_level=log_level.lower())


def _shown_db(database: str) -> str:
    from store.urls import redact

    return redact(database)
