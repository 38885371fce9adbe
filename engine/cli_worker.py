"""``stepwell worker`` and ``stepwell run --detach``: the run queue on the command line.

``run --detach`` validates the workflow, stores its inputs and writes the run as
``queued`` (nothing is written when any of that fails), prints the run id (or
``{"run_id", "status"}`` with ``--json``) and exits 0 without executing anything.
``worker`` claims queued runs from the database and executes them until SIGTERM (or
Ctrl-C): see :mod:`engine.worker` for what it guarantees.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli_read import DbOption, JsonOption
from engine.cli_support import (
    BLOCKS_HELP,
    DURABILITY_HELP,
    Durability,
    db_flag,
    fail,
    handle_errors,
    print_json,
    resolve_db,
    stderr,
    stdout,
)

EXECUTOR_HELP = ("Where work blocks run: local (this process) or dask://HOST:PORT (a Dask "
                 "distributed scheduler).")


def enqueue_run(workflow: Path, inputs: Sequence[str], db: str, *, blocks: Sequence[str] = (),
                as_json: bool = False) -> int:
    """``stepwell run --detach``: write the run as queued and print its id.

    Returns:
        The exit code (0).

    Raises:
        WorkflowLoadError, WorkflowValidationError, InputError, StorageError, UsageError:
            before anything is written.
    """
    from engine.cli_inputs import parse_inputs
    from engine.cli_run import cli_engine
    from engine.queue import enqueue, queue_of

    engine = cli_engine(db, blocks)
    try:
        graph = engine.compile(workflow)
        parsed = parse_inputs(list(inputs), graph.start_blocks())
        queue_of(engine.store)  # a store without a queue is refused before writing
        run_id = enqueue(engine, graph, parsed)
    finally:
        engine.close()
    if as_json:
        print_json({"run_id": run_id, "status": "queued"})
    else:
        stdout().print(run_id)
        stderr().print(f"Queued; a worker runs it (`stepwell worker{db_flag(db)}`). Follow it "
                       f"with `stepwell runs get {run_id}{db_flag(db)}`.", soft_wrap=True)
    return 0


@handle_errors
def worker(
    db: DbOption = None,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", "-c", min=1, help="Runs executing at once in this process.")] = 4,
    executor: Annotated[str, typer.Option("--executor", help=EXECUTOR_HELP)] = "local",
    lease: Annotated[float, typer.Option(
        "--lease", min=1.0, help="Seconds without a heartbeat after which another worker "
        "takes a run over.")] = 15.0,
    grace: Annotated[float, typer.Option(
        "--grace", min=0.0, help="On SIGTERM, seconds runs may go on before they are "
        "handed back to the queue.")] = 30.0,
    idle_exit: Annotated[float | None, typer.Option(
        "--idle-exit", min=0.0, help="Exit after this many seconds with nothing to do.",
        show_default=False)] = None,
    durability: Annotated[Durability, typer.Option(
        "--durability", case_sensitive=False,
        help=DURABILITY_HELP,
    )] = Durability.process,
    blocks: Annotated[list[str] | None, typer.Option(
        "--blocks", help=BLOCKS_HELP, show_default=False)] = None,
    shared: Annotated[bool, typer.Option(
        "--shared", help="Run the queued runs of a shared server under its rules "
        "(docs/security.md): confined code, declared secrets, public egress.")] = False,
    code: Annotated[str, typer.Option(
        "--code", help="Who may run code: auto, open, sandboxed, none (as stepwell serve).",
    )] = "auto",
    allow_python: Annotated[list[str] | None, typer.Option(
        "--allow-python", help="module:function pattern python: references may name "
        "(repeatable; as stepwell serve).")] = None,
    egress_allow: Annotated[list[str] | None, typer.Option(
        "--egress-allow", help="Host name or network api_call may reach although it is not "
        "public (repeatable; as stepwell serve).")] = None,
    secrets: Annotated[Path | None, typer.Option(
        "--secrets", help="The server's per-organization secrets file.",
        show_default=False)] = None,
    worker_user: Annotated[str | None, typer.Option(
        "--worker-user", help="User confined workers switch to when running as root "
        "without namespaces.", show_default=False)] = None,
    as_json: JsonOption = False,
) -> None:
    """Claim queued runs from the database and execute them, until SIGTERM or Ctrl-C.

    Workers of a shared server must run with ``--shared`` and the server's security
    options, or the runs they take execute under a personal machine's rules.
    """
    import anyio

    from engine.cli_run import cli_engine
    from engine.executors import parse_executor
    from engine.worker import Worker, WorkerOptions

    database = resolve_db(db)
    remote = parse_executor(executor)
    if remote is not None:
        remote.connect()  # an unreachable scheduler is refused before anything runs
    engine = cli_engine(database, list(blocks or []), durability)
    engine.executor = remote
    _apply_policy(engine, shared, code, tuple(allow_python or ()), tuple(egress_allow or ()),
                  secrets, worker_user)
    try:
        work = Worker(engine, WorkerOptions(concurrency=concurrency, lease_s=lease,
                                            grace_s=grace, idle_exit_s=idle_exit))
        stderr().print(f"stepwell worker on {_shown(engine)} ({concurrency} at a time, "
                       f"executor {executor}); Ctrl-C or SIGTERM stops it.", soft_wrap=True)
        stats = anyio.run(lambda: work.run(handle_signals=True))
    finally:
        engine.close()
        if remote is not None:
            remote.close()
    summary = {"claimed": stats.claimed, "ended": stats.ended,
               "handed_back": stats.handed_back, "lost": stats.lost}
    if work.executor_lost is not None and remote is not None:
        fail(f"Lost the Dask scheduler at {remote.address}: this worker stopped and handed "
             f"its {stats.handed_back} unfinished run(s) back to the queue (no retries "
             "spent; other workers may take them). Restart the scheduler and its workers, "
             f"then start `stepwell worker --executor {remote.url}` again.")
    if as_json:
        print_json(summary)
    else:
        stderr().print("worker stopped: " + ", ".join(f"{v} {k.replace('_', ' ')}"
                                                      for k, v in summary.items()))


def _apply_policy(engine: Any, shared: bool, code: str, allow_python: tuple[str, ...],
                  egress_allow: tuple[str, ...], secrets: Path | None,
                  worker_user: str | None) -> None:
    """Give the engine the host's security policy and each organization's environment."""
    import os

    from engine.contracts.policy import SECURITY_SERVICE
    from engine.server.security import load_secrets, policy_for, run_environment

    policy = policy_for(shared, code=code, allow_python=allow_python,
                        egress_allow=egress_allow, worker_user=worker_user)
    engine.services[SECURITY_SERVICE] = policy
    engine.env = run_environment(policy, load_secrets(secrets), os.environ)


def _shown(engine: Any) -> str:
    from store.urls import parse_db

    return parse_db(engine.db).display()
