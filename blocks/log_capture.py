"""Capture what in-process code writes, per step: ``print()``, ``sys.stderr``, ``logging``.

In-process functions (``python: module:func``) share the interpreter with the engine and
with each other, so output cannot be captured by swapping ``sys.stdout`` around a call:
two steps running at once (threads, async functions) would steal each other's lines.
Instead, the first capture installs routing once:

* ``sys.stdout`` and ``sys.stderr`` become :class:`RoutingStream` wrappers of the
  streams they were; a write made while a step's capture is active (a context variable,
  so it follows the step into its worker thread or task and nowhere else) goes to that
  step's :class:`~engine.contracts.logs.StepLog`, any other write to the original stream;
* the root logger gets a :class:`RoutingHandler`, which hands records made inside a
  capture to the step's log (with level and logger name) and ignores the others.

A logger only makes records at or above its effective level: ``logging.getLogger()``
stays at its configured level (``WARNING`` unless the application changes it); the
``stepwell`` command line lowers an unconfigured root logger to ``INFO``
(:func:`capture_info`). Records made outside any step still reach ``logging.lastResort``
when nothing else is configured, as they would without the routing handler.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any, Protocol, TextIO

from engine.contracts.logs import LogStream, StepLog

#: The log of the step whose code runs in this context (None outside a capture).
CURRENT_LOG: ContextVar[StepLog | None] = ContextVar("stepwell_step_log", default=None)
_INSTALL_LOCK = threading.Lock()
#: The handler installed on the root logger, once installed.
_HANDLER: list[logging.Handler | None] = [None]


class RoutingStream:
    """A text stream that sends writes made inside a capture to the step's log.

    Everything else (attributes, writes outside a capture) goes to the wrapped stream.
    """

    def __init__(self, stream: str, original: TextIO) -> None:
        self._stream = stream
        self.original = original

    def write(self, text: str) -> int:
        """Write ``text`` to the current step's log, or to the original stream."""
        log = CURRENT_LOG.get()
        if log is None:
            return self.original.write(text)
        log.write_text(self._stream, text)
        return len(text)

    def flush(self) -> None:
        """Flush the original stream (a step's log needs no flushing)."""
        if CURRENT_LOG.get() is None:
            self.original.flush()

    def isatty(self) -> bool:
        """False inside a capture (the text goes to a log), else the original's answer."""
        return CURRENT_LOG.get() is None and self.original.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


class Writer(Protocol):
    """What :class:`TeeStream` writes through to: a text stream, or anything with
    ``write`` and ``flush`` (the function worker's bounded copies)."""

    def write(self, text: str, /) -> int:
        """Write ``text``; the number of characters taken."""
        ...

    def flush(self) -> None:
        """Flush what was written."""
        ...


class TeeStream:
    """A text stream writing to a step's log and to another stream (the function
    worker, which runs one step per process, keeps its stdout tail and stderr too)."""

    def __init__(self, stream: str, log: StepLog, original: Writer) -> None:
        self._stream = stream
        self._log = log
        self.original = original

    def write(self, text: str) -> int:
        """Write ``text`` to both."""
        self._log.write_text(self._stream, text)
        return self.original.write(text)

    def flush(self) -> None:
        """Flush the other stream."""
        self.original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


class RoutingHandler(logging.Handler):
    """A root-logger handler that keeps the records made inside a capture.

    Args:
        log: keep every record in this log instead (a process that runs one step).
    """

    def __init__(self, log: StepLog | None = None) -> None:
        super().__init__()
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        """Append ``record`` (formatted message and traceback) to the step's log.

        A record made outside a step, in a process whose logging nobody configured,
        goes where it would have gone without this handler: ``logging.lastResort``.
        """
        log = self._log or CURRENT_LOG.get()
        if log is None:
            last = logging.lastResort
            if last is not None and record.levelno >= last.level and not any(
                    h is not self for h in logging.getLogger().handlers):
                last.handle(record)
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:  # noqa: BLE001 - a bad format string must not fail the step
            message = f"{record.msg!r} % {record.args!r}"
        log.write(LogStream.LOGGING, message, level=record.levelname, logger=record.name,
                  at=record.created)


def install() -> None:
    """Install the routing streams and handler (idempotent).

    The streams are checked on every call: a test runner or a live display may have
    swapped ``sys.stdout`` since, and the swapped-in stream is wrapped in turn.
    """
    root = logging.root  # what logging.getLogger() returns, without the call
    if isinstance(sys.stdout, RoutingStream) and isinstance(sys.stderr, RoutingStream) \
            and _HANDLER[0] in root.handlers:
        return
    with _INSTALL_LOCK:
        if not isinstance(sys.stdout, RoutingStream):
            sys.stdout = RoutingStream(LogStream.STDOUT, sys.stdout)  # type: ignore[assignment]
        if not isinstance(sys.stderr, RoutingStream):
            sys.stderr = RoutingStream(LogStream.STDERR, sys.stderr)  # type: ignore[assignment]
        if _HANDLER[0] not in root.handlers:
            handler = _HANDLER[0] or RoutingHandler()
            root.addHandler(handler)
            _HANDLER[0] = handler


def add_entries(log: StepLog | None, entries: object) -> None:
    """Append entries another process reported (``LogEntry.to_dict`` form) to ``log``.

    Entries come from a worker that may be confined and untrusted: anything that is not
    a well-formed entry of a stream a worker may write is dropped, and the log's bounds
    apply as to any writer.
    """
    if log is None or not isinstance(entries, list):
        return
    for item in entries:
        if not isinstance(item, dict) or item.get("stream") not in _WORKER_STREAMS:
            continue
        message, level, logger, at = (item.get(k) for k in ("message", "level", "logger", "at"))
        if not isinstance(message, str):
            continue
        log.write(str(item["stream"]), message,
                  level=level if isinstance(level, str) else None,
                  logger=logger if isinstance(logger, str) else None,
                  at=float(at) if isinstance(at, int | float) else None)


_WORKER_STREAMS = frozenset({LogStream.STDOUT, LogStream.STDERR, LogStream.LOGGING})


def capture_info() -> None:
    """Keep ``logging.info`` records of steps: lower the root logger to ``INFO`` unless
    the application configured logging itself (what the command line does)."""
    root = logging.getLogger()
    if root.level == logging.WARNING and not any(
            not isinstance(h, RoutingHandler) for h in root.handlers):
        root.setLevel(logging.INFO)


@contextmanager
def captured(log: StepLog | None) -> Iterator[None]:
    """Route this context's ``print()``, ``sys.stderr`` writes and log records to ``log``.

    Args:
        log: the attempt's log (``ctx.log``); None captures nothing.
    """
    token = begin_capture(log)
    try:
        yield
    finally:
        end_capture(token)


def begin_capture(log: StepLog | None) -> Token[StepLog | None] | None:
    """Enter what :func:`captured` does, without a generator (the function block
    captures on every step); hand the result to :func:`end_capture`, in a ``finally``.

    Args:
        log: the attempt's log (``ctx.log``); None captures nothing (returns None).
    """
    if log is None:
        return None
    install()
    return CURRENT_LOG.set(log)


def end_capture(token: Token[StepLog | None] | None) -> None:
    """Leave the capture :func:`begin_capture` entered (its ``token``)."""
    if token is not None:
        CURRENT_LOG.reset(token)
