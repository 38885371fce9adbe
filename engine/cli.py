"""The ``stepwell`` command line.

::

    stepwell run WORKFLOW [--input BLOCK=VALUE]...   run it, live step table, summary
    stepwell validate WORKFLOW                       every problem, with its fix
    stepwell graph [WORKFLOW] [--run RUN_ID]         Mermaid flowchart (coloured by a run)
    stepwell export WORKFLOW [-o FILE]               the workflow as declarative YAML
    stepwell runs list | get | watch RUN_ID          runs in the database, followed live
    stepwell runs cancel | resume | rerun RUN_ID     act on a stored run
    stepwell steps list RUN_ID | get | logs STEP_ID  persisted steps, what they wrote
    stepwell artifacts get ARTIFACT_ID               a step's operation record
    stepwell reviews list | get | approve | reject   human reviews
    stepwell serve [--host H] [--port P]             the HTTP API (docs/http.md)
    stepwell run WORKFLOW --detach; stepwell worker  queued runs and the workers that run them
    stepwell db status | upgrade                     the database's schema revision

Every command takes ``--db PATH`` or ``--db postgresql://...`` (default
``./stepwell.db``; ``$STEPWELL_DB`` overrides the default) and most take ``--json``.
Exit codes: 0 completed, 1 the run ended in error or was cancelled, 2 bad usage / invalid
workflow / bad input / storage error, 3 the run waits for a human review.

The commands live in small modules: :mod:`engine.cli_run` (``run`` and its summary),
:mod:`engine.cli_live` and :mod:`engine.cli_view` (the live view), :mod:`engine.cli_read`
(``runs``, ``steps``), :mod:`engine.cli_logs`, :mod:`engine.cli_watch`,
:mod:`engine.cli_reviews`, :mod:`engine.cli_artifacts`, :mod:`engine.cli_render` and
:mod:`engine.cli_detail` (tables and detail views), :mod:`engine.cli_inputs`
(``--input`` parsing), :mod:`engine.cli_help` (help text) and :mod:`engine.cli_support`
(errors, exit codes, consoles); :mod:`engine.cli_app` assembles them into the typer app.
The engine, the store and rich are imported inside the commands, so ``--help`` stays
fast. Custom block types come from the ``stepwell.blocks`` entry points and ``--blocks
MODULE:ATTR`` (:mod:`engine.plugins`).

Starting fast: a ``stepwell run`` whose arguments are all plain (the options of ``run``
each written as a separate ``--name value``, known choices, one workflow path) is
parsed here and executed without building the command tree, which costs more than a
short run. Anything else (help, completion, ``--opt=value``, an unknown or repeated
option) goes to the typer app, which parses it and reports errors as usual; both paths
call :func:`engine.cli_run.run_command`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib import import_module
from typing import Any

#: ``run`` options taking a value: option -> parameter name (``--input`` repeats).
_VALUED = {"--input": "inputs", "-i": "inputs", "--db": "db", "--concurrency": "concurrency",
           "-c": "concurrency", "--durability": "durability", "--blocks": "blocks",
           "--executor": "executor"}
#: ``run`` flags: option -> parameter name.
_FLAGS = {"--json": "as_json", "--quiet": "quiet", "-q": "quiet", "--wait": "wait",
          "--all": "show_all", "--detach": "detach"}
_REPEATED = ("inputs", "blocks")


def plain_run_arguments(args: Sequence[str]) -> dict[str, Any] | None:
    """The keyword arguments of :func:`engine.cli_run.run_command` for ``args`` (the
    command line after ``stepwell``), or None unless they are a plain ``run`` (see the
    module docstring): then the typer app parses them.
    """
    if len(args) < 2 or args[0] != "run" or "_STEPWELL_COMPLETE" in os.environ:
        return None
    found: dict[str, Any] = {"inputs": [], "blocks": []}
    workflow: str | None = None
    rest = iter(args[1:])
    for arg in rest:
        if arg in _FLAGS and _FLAGS[arg] not in found:
            found[_FLAGS[arg]] = True
        elif arg in _VALUED:
            name, value = _VALUED[arg], next(rest, None)
            if value is None or value.startswith("-") or (
                    name in found and name not in _REPEATED):
                return None
            if name in _REPEATED:
                found[name].append(value)
            else:
                found[name] = value
        elif arg.startswith("-") or workflow is not None:
            return None
        else:
            workflow = arg
    return _typed(found, workflow)


def _typed(found: dict[str, Any], workflow: str | None) -> dict[str, Any] | None:
    """The values as the typer app would pass them, or None where it would object."""
    from pathlib import Path

    from engine.cli_support import RunDurability

    concurrency = found.get("concurrency")
    durability = found.get("durability", "process")
    if workflow is None or durability not in {d.value for d in RunDurability} or not (
            concurrency is None or (concurrency.isascii() and concurrency.isdigit()
                                    and int(concurrency) >= 1)):
        return None
    return {"workflow": Path(workflow), "inputs": found["inputs"], "db": found.get("db"),
            "as_json": found.get("as_json", False),
            "concurrency": None if concurrency is None else int(concurrency),
            "durability": RunDurability(durability), "quiet": found.get("quiet", False),
            "wait": found.get("wait", False), "show_all": found.get("show_all", False),
            "blocks": found["blocks"], "detach": found.get("detach", False),
            "executor": found.get("executor", "local")}


def run_plain(kwargs: dict[str, Any]) -> int:
    """Execute a plain ``stepwell run`` as the typer app would; returns the exit code.

    Errors are reported by :func:`engine.cli_support.handle_errors`, as for every command;
    an interrupt outside the run prints ``Aborted!`` and exits 1, as click does.
    """
    modules = [*_RUN_MODULES]
    if kwargs["workflow"].suffix.lower() != ".json":
        modules.append("yaml")  # what loads it; a JSON workflow never imports PyYAML
    if not kwargs["quiet"]:
        modules.append("store.client")
    _import_for_good(modules)
    from engine.cli_run import run_command
    from engine.cli_support import handle_errors

    try:
        return int(handle_errors(run_command)(**kwargs))
    except (KeyboardInterrupt, EOFError):
        print("\nAborted!", file=sys.stderr)
        return 1
    except Exception as exc:
        typer = sys.modules.get("typer")  # loaded by whatever raised typer.Exit
        if typer is not None and isinstance(exc, typer.Exit):
            return int(exc.exit_code)
        raise


#: The modules every ``stepwell run`` imports (the engine, the store, the workflow loader,
#: the event loop); all but ``--quiet`` also read the run back (``store.client``), and all
#: but a ``.json`` workflow parse YAML.
_RUN_MODULES = ("engine.cli_run", "engine.cli_support", "engine.cli_inputs", "engine.core",
                "engine.launch", "engine.loading", "engine.plugins", "store.sqlite", "asyncio")


def _import_for_good(modules: Sequence[str]) -> None:
    """Import ``modules`` with the cyclic collector paused, then freeze what exists.

    Importing allocates hundreds of thousands of objects that live as long as the
    process and form hardly any garbage; collections triggered meanwhile, and the full
    ones later, would examine them again and again for nothing. Frozen (``gc.freeze``),
    they are out of the collector's sight; what the run allocates is collected as usual.
    Only for this process's own run: an embedding program keeps its collector as it is.
    """
    import gc

    gc.disable()
    try:
        for name in modules:
            import_module(name)
    finally:
        gc.freeze()
        gc.enable()


def _printable_streams() -> None:
    """Print what the terminal's encoding cannot hold (a lone surrogate a step returned,
    a character beyond a non-UTF-8 locale) as a backslash escape instead of failing."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def main() -> None:
    """Console-script entry point (``stepwell = engine.cli:main``)."""
    _printable_streams()
    kwargs = plain_run_arguments(sys.argv[1:])
    if kwargs is not None:
        sys.exit(run_plain(kwargs))
    import_module("engine.cli_app").cli_command()(prog_name="stepwell")


def __getattr__(name: str) -> Any:
    """The typer app and its commands (``engine.cli.app``...) live in
    :mod:`engine.cli_app`; they are imported on first use."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(import_module("engine.cli_app"), name)


if __name__ == "__main__":
    main()
