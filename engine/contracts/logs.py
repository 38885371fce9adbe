"""Step logs: what a block's attempt wrote (stdout, stderr, ``logging``, HTTP summaries).

A handler finds a :class:`StepLog` on its context (``ctx.log``). Writers append to it
while the attempt runs: the ``function`` block routes its code's ``print()``, ``sys.stderr``
and ``logging`` records there, ``api_call`` a summary of each request and response. While
the attempt runs, the runner's heartbeat thread hands the complete lines written so far
to the store about twice a second (:meth:`StepLog.take`), so ``steps logs --follow``
shows them as they come and a run whose process is killed keeps them. When the attempt
ends (completed, failed or timed out) the runner hands the rest (:meth:`StepLog.entries`
after :attr:`StepLog.taken`) to the store
(:meth:`~engine.contracts.store.RunStore.append_logs`) in the same flush as the attempt's
outcome, so logs of step ``X`` are complete once ``X`` has ended.

Logs are bounded per attempt: at most :data:`MAX_ENTRIES` entries and
:data:`MAX_BYTES` bytes of text, one message at most :data:`MAX_MESSAGE_CHARS`
characters. What does not fit is dropped, and the cut is marked: an oversized message
ends with ``… [N more characters]`` and ``truncated`` set, and the attempt's last entry
(stream ``stepwell``) says how many entries and characters were dropped.

A step that writes nothing costs one small object per attempt; nothing is stored.
"""

from __future__ import annotations

import time
from enum import StrEnum

from engine.contracts.bounded import paired
from engine.contracts.frozen import record

#: Entries kept per attempt (the marker of dropped entries comes on top).
MAX_ENTRIES = 2000
#: Characters of message text kept per attempt.
MAX_BYTES = 256 * 1024
#: Characters kept of one message.
MAX_MESSAGE_CHARS = 16 * 1024
#: The ``logger`` of the engine's note on a loop container's log when its loop opens;
#: the message starts with the item count (``30 items, 4 at a time, ...``).
LOOP_LOGGER = "stepwell.loop"


class LogStream(StrEnum):
    """Where a log entry came from.

    ``stdout`` / ``stderr``: text the block's code wrote (one entry per line);
    ``logging``: a ``logging`` record (``level`` and ``logger`` set); ``http``: a request
    or response summary (``api_call``); ``stepwell``: a note from the engine (the marker
    of dropped entries).
    """

    STDOUT = "stdout"
    STDERR = "stderr"
    LOGGING = "logging"
    HTTP = "http"
    STEPWELL = "stepwell"


@record
class LogEntry:
    """One log line of an attempt.

    Attributes:
        stream: a :class:`LogStream` value.
        message: the text, without its trailing newline.
        at: when it was written (epoch seconds).
        level: the ``logging`` level name (``INFO``...) for ``logging`` records.
        logger: the ``logging`` logger name for ``logging`` records.
        truncated: the message was cut to :data:`MAX_MESSAGE_CHARS`.
    """

    stream: str
    message: str
    at: float
    level: str | None = None
    logger: str | None = None
    truncated: bool = False

    def to_dict(self) -> dict[str, object]:
        """The entry as a plain dict (one key per field)."""
        return {"stream": self.stream, "message": self.message, "at": self.at,
                "level": self.level, "logger": self.logger, "truncated": self.truncated}


@record
class AttemptLog:
    """What one attempt of one step wrote, handed to the store in one piece."""

    step_id: str
    attempt: int
    entries: tuple[LogEntry, ...]


@record
class LogRecord:
    """A stored log entry, as the read API returns it.

    Attributes:
        seq: its position among the step's entries (every attempt), from 1; the cursor
            of log pages.
        attempt: 0 for the first attempt, +1 per retry.
    """

    run_id: str
    step_id: str
    attempt: int
    seq: int
    stream: str
    message: str
    at: float
    level: str | None
    logger: str | None
    truncated: bool


class StepLog:
    """The bounded log of one attempt; writers call :meth:`write` / :meth:`write_text`.

    Not thread-safe by itself; the writers of one attempt run one at a time (the
    function block's capture serialises through its stream buffers).
    """

    __slots__ = ("_chars", "_cut", "_dropped", "_dropped_chars", "_entries", "_partial",
                 "_taken")

    def __init__(self) -> None:
        self._entries: list[LogEntry] | None = None
        self._chars = 0
        self._dropped = 0
        self._dropped_chars = 0
        self._partial: dict[str, str] | None = None
        #: Streams whose current line was already written out (too long to wait for).
        self._cut: set[str] | None = None
        #: How many entries :meth:`take` has handed out.
        self._taken = 0

    def write(self, stream: str, message: str, *, level: str | None = None,
              logger: str | None = None, at: float | None = None) -> None:
        """Append one entry (the message is cut to :data:`MAX_MESSAGE_CHARS`).

        Args:
            stream: a :class:`LogStream` value.
            message: the text (a trailing newline is removed).
            level: the ``logging`` level name, for ``logging`` records.
            logger: the ``logging`` logger name, for ``logging`` records.
            at: epoch seconds (default: now).
        """
        message = message.removesuffix("\n")
        if not message.isascii():  # a lone surrogate (printed from an escape) fails UTF-8
            message = paired(message)
        if "\x00" in message:  # PostgreSQL's text holds no NUL: shown as U+FFFD everywhere
            message = message.replace("\x00", "\ufffd")
        truncated = len(message) > MAX_MESSAGE_CHARS
        if truncated:
            rest = len(message) - MAX_MESSAGE_CHARS
            message = f"{message[:MAX_MESSAGE_CHARS]}… [{rest} more characters]"
        entries = self._entries
        if entries is None:
            entries = self._entries = []
        if len(entries) >= MAX_ENTRIES or self._chars + len(message) > MAX_BYTES:
            self._dropped += 1
            self._dropped_chars += len(message)
            return
        self._chars += len(message)
        entries.append(LogEntry(stream=stream, message=message,
                                at=time.time() if at is None else at, level=level,
                                logger=logger, truncated=truncated))

    def write_text(self, stream: str, text: str) -> None:
        """Append text written to a stream: one entry per complete line; a partial last
        line waits for the rest (or for :meth:`entries`)."""
        if not text:
            return
        partial = self._partial
        if partial is None:
            partial = self._partial = {}
        text = partial.pop(stream, "") + text
        *lines, rest = text.split("\n")
        cut = self._cut
        if lines and cut and stream in cut:
            cut.discard(stream)
            if not lines[0]:  # the end of a line already written out: no empty entry
                del lines[0]
        for line in lines:
            self.write(stream, line)
        if len(rest) > MAX_MESSAGE_CHARS:  # a line without end: keep the waiting part small
            self.write(stream, rest)
            if cut is None:
                cut = self._cut = set()
            cut.add(stream)
        elif rest:
            partial[stream] = rest

    @property
    def empty(self) -> bool:
        """True when nothing was written (the common case, checked after every attempt)."""
        return self._entries is None and not self._partial

    def take(self) -> tuple[LogEntry, ...]:
        """The complete entries written since the last :meth:`take` (the runner's drain
        while the attempt runs; partial lines wait). One caller at a time."""
        entries = self._entries
        if entries is None:
            return ()
        end = len(entries)  # a writer in another thread only appends
        start, self._taken = self._taken, end
        return tuple(entries[start:end])

    @property
    def taken(self) -> int:
        """How many entries :meth:`take` has handed out (the first of :meth:`entries`)."""
        return self._taken

    def entries(self) -> tuple[LogEntry, ...]:
        """Everything written, partial lines flushed, with the marker of dropped entries
        last when some did not fit."""
        for stream, rest in list((self._partial or {}).items()):
            self.write(stream, rest)
        self._partial = None
        found = tuple(self._entries or ())
        if not self._dropped:
            return found
        note = (f"log truncated: {self._dropped} more entries ({self._dropped_chars} "
                f"characters) were dropped; an attempt keeps {MAX_ENTRIES} entries and "
                f"{MAX_BYTES} characters")
        return (*found, LogEntry(stream=LogStream.STEPWELL, message=note, at=time.time(),
                                 truncated=True))
