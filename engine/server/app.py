"""The FastAPI application: :func:`create_app` wires state, auth, routes and errors."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI

from engine.contracts.policy import SECURITY_SERVICE
from engine.contracts.store import Store
from engine.server.config import DEFAULT_MAX_BODY_BYTES, ServerConfig
from engine.server.errors import BodyLimitMiddleware, install_error_handlers
from engine.server.security import install_log_redaction, run_environment
from engine.server.state import ServerState, open_state
from engine.server.ui import install_ui

API_TITLE = "stepwell"
API_DESCRIPTION = (
    "Run Retab-style document workflows locally. The endpoints and shapes follow the "
    "Retab API, so the unmodified `retab` SDK works with `base_url` pointed here. "
    "Authenticate with `Api-Key: KEY`, `Authorization: Bearer KEY` or `?access_token=KEY`."
)


def create_app(
    db: str | os.PathLike[str] | Store,
    *,
    api_keys: Mapping[str, str] | None = None,
    config: ServerConfig | None = None,
    engine_options: Mapping[str, Any] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    allow_file_paths: bool = False,
    queue: bool = False,
) -> FastAPI:
    """The HTTP API over one stepwell database.

    Args:
        db: the database: a SQLite file (created when missing) or a ``postgresql://``
            URL (several servers may share one: they hold no state of their own); or
            a store object, which the server uses as it is and leaves open.
        api_keys: key -> organization id (ignored when ``config`` is given).
        config: the full server configuration.
        engine_options: keyword arguments for :class:`engine.core.Engine` (``services``,
            ``retry``, ``max_concurrency``...). By default the engine gets the config's
            security policy as a service, runs see their organization's environment
            (:func:`engine.server.security.run_environment`), and the block types are
            the built-ins plus the installed ``stepwell.blocks`` entry points, as
            ``stepwell serve`` has them (:func:`engine.plugins.block_registry`; pass
            ``registry`` to choose them).
        max_body_bytes / allow_file_paths: see :class:`ServerConfig` (ignored when
            ``config`` is given).
        queue: leave runs to ``stepwell worker`` processes: runs created here are queued
            and decided reviews queue their run again (:class:`engine.queue.QueueDispatch`).

    Returns:
        The app; run it with uvicorn. Runs it starts execute in this process. At start
        it kills workers a dead server left and recovers orphaned runs
        (:meth:`ServerState.recover`), then sweeps for new ones every
        ``config.orphan_sweep_s`` seconds; at shutdown it kills its own workers.

    Raises:
        UsageError: no API key at all, an in-memory database, or an entry point whose
            block types do not load.
        StorageError: the database cannot be opened.
    """
    from engine.contracts.errors import UsageError

    cfg = config or ServerConfig(api_keys=dict(api_keys or {}), max_body_bytes=max_body_bytes,
                                 allow_file_paths=allow_file_paths)
    if not cfg.api_keys:
        raise UsageError("The HTTP API needs at least one API key (api_keys={key: org_id}).")
    source = os.fspath(db) if isinstance(db, str | os.PathLike) else db
    state = open_state(source, cfg, _engine_options(cfg, engine_options or {}), queue=queue)
    install_log_redaction()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        install_log_redaction()  # after uvicorn configured its loggers
        await anyio.to_thread.run_sync(state.recover)
        state.start_sweeps()
        yield
        state.close()

    app = FastAPI(title=API_TITLE, description=API_DESCRIPTION, version=_version(),
                  lifespan=lifespan)
    app.state.stepwell = state
    install_error_handlers(app)
    _include_routes(app)
    install_ui(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=cfg.max_body_bytes)
    return app


def _engine_options(cfg: ServerConfig, given: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's options: the server's policy as a service, each organization's run
    environment and the block types of the installed entry points (unless the caller
    chose them)."""
    from engine.plugins import block_registry

    options = dict(given)
    if options.get("registry") is None:
        options["registry"] = block_registry()
    options["services"] = {SECURITY_SERVICE: cfg.policy, **dict(options.get("services") or {})}
    options.setdefault("env", run_environment(cfg.policy, cfg.secrets, os.environ))
    return options


def app_state(app: FastAPI) -> ServerState:
    """The :class:`ServerState` of an app made by :func:`create_app`."""
    state: ServerState = app.state.stepwell
    return state


def _include_routes(app: FastAPI) -> None:
    from engine.server import (
        routes_artifacts,
        routes_blocks,
        routes_edges,
        routes_evals,
        routes_executions,
        routes_experiments,
        routes_files,
        routes_logs,
        routes_read,
        routes_reviews,
        routes_runs,
        routes_versions,
        routes_write,
    )

    # Order matters: collection routes (``/v1/workflows/blocks``...) come before the
    # ``/v1/workflows/{workflow_id}`` routes of the version and write routers, and
    # ``/blocks/executions`` before ``/blocks/{block_id}``.
    app.include_router(routes_read.router, tags=["runs and steps"])
    app.include_router(routes_logs.router, tags=["runs and steps"])
    app.include_router(routes_runs.router, tags=["runs and steps"])
    app.include_router(routes_reviews.router, tags=["reviews"])
    app.include_router(routes_executions.router, tags=["blocks"])
    app.include_router(routes_blocks.router, tags=["blocks"])
    app.include_router(routes_edges.router, tags=["edges"])
    app.include_router(routes_artifacts.router, tags=["artifacts"])
    app.include_router(routes_evals.router, tags=["evals"])
    app.include_router(routes_experiments.router, tags=["experiments"])
    app.include_router(routes_versions.router, tags=["workflows"])
    app.include_router(routes_write.router, tags=["workflows"])
    app.include_router(routes_files.router, tags=["files"])


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stepwell")
    except PackageNotFoundError:
        return "0"
