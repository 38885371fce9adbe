"""Help text as people read it: no markup, no type placeholders, nothing cut short.

Command docstrings double as Python documentation, so they may hold reStructuredText
(````code````, ``:mod:`x```). :func:`polish` walks the command tree once, before the
command line is parsed, and:

* turns ````x```` into ``"x"`` and drops Sphinx roles (``:func:`x``` becomes ``x``);
* gives every command its whole first paragraph as its one-line help, so the command
  list never ends a description with ``...``;
* names every option value and argument in capitals (``--limit N``, ``RUN_ID``),
  never by its Python type (``<int range>``, ``<list[str]>``), and lists the values of
  a choice (``[process|full]``).
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:mod|func|class|meth|data|attr|exc):`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")
#: Option metavars that read better than the option's name.
_METAVARS = {"limit": "N", "db": "PATH", "output": "FILE", "concurrency": "N",
             "attempt": "N", "port": "PORT", "host": "HOST", "after": "CURSOR",
             "reason": "TEXT", "data": "JSON", "max_body_mb": "MB", "from_step": "STEP_ID",
             "run": "RUN_ID", "workflow": "WORKFLOW", "blocks": "MODULE:ATTR"}


def plain(text: str | None) -> str | None:
    """``text`` without reStructuredText literals and roles."""
    if text is None:
        return None
    return _LITERAL.sub(r'"\1"', _ROLE.sub(lambda m: m.group(1).split(".")[-1], text))


def polish(command: Any) -> Any:
    """Clean the help of ``command`` and every command below it (in place).

    Args:
        command: the root command (``typer.main.get_command(app)``).

    Returns:
        The same command (a click command, as typer builds it).
    """
    command.help = plain(command.help)
    if command.help and not command.short_help:
        command.short_help = command.help.strip().split("\n\n")[0].replace("\n", " ")
    for param in command.params:
        _polish_param(param)
    for sub in getattr(command, "commands", {}).values():
        polish(sub)
    return command


def _polish_param(param: Any) -> None:
    """Typer ships click's classes under its own names, so parameters are told apart by
    their ``param_type_name``, not by class."""
    kind = getattr(param, "param_type_name", "")
    if kind == "option":
        param.help = plain(param.help)
        if param.is_flag or param.count:
            return
    name = param.name or "value"
    descriptor = getattr(param, "type_descriptor", None)
    choices = getattr(descriptor, "choices", None) if getattr(descriptor, "is_choice", False) \
        else None
    if choices:
        param.metavar = "[" + "|".join(str(c) for c in choices) + "]"
    elif kind == "argument":
        shown = name.upper()
        param.metavar = shown
        # typer draws an argument as "{name} <type>": show it once, by its name only.
        param.display_type_rich = lambda ctx=None: None
        param.get_usage_pieces = lambda ctx: [shown if param.required else f"[{shown}]"]
    elif not param.metavar:
        param.metavar = _METAVARS.get(name, name.upper())
