"""Step logs: the bounded per-attempt log and the in-process capture that feeds it."""

from __future__ import annotations

import logging
import sys
import threading

import anyio
import pytest

from blocks.log_capture import RoutingHandler, captured
from engine.contracts.logs import MAX_ENTRIES, MAX_MESSAGE_CHARS, LogStream, StepLog


def test_text_is_split_into_lines_and_partial_lines_wait() -> None:
    log = StepLog()
    assert log.empty
    log.write_text("stdout", "one\ntw")
    log.write_text("stdout", "o\nthree")
    log.write_text("stderr", "oops\n")
    assert not log.empty
    assert [(e.stream, e.message) for e in log.entries()] == [
        ("stdout", "one"), ("stdout", "two"), ("stderr", "oops"), ("stdout", "three")]


def test_a_long_message_is_cut_and_marked() -> None:
    log = StepLog()
    log.write("stdout", "x" * (MAX_MESSAGE_CHARS + 10))
    (entry,) = log.entries()
    assert entry.truncated and entry.message.endswith("… [10 more characters]")


def test_entries_past_the_budget_are_dropped_and_counted() -> None:
    log = StepLog()
    for i in range(MAX_ENTRIES + 5):
        log.write("stdout", f"line {i}")
    entries = log.entries()
    assert len(entries) == MAX_ENTRIES + 1
    marker = entries[-1]
    assert marker.stream == LogStream.STEPWELL and marker.truncated
    assert "5 more entries" in marker.message


def test_print_stderr_and_logging_go_to_the_capturing_step_only() -> None:
    log = StepLog()
    with captured(log):
        print("hello from the step")
        sys.stderr.write("careful\n")
        logging.getLogger("my.app").warning("low on %s", "paper")
    print("not captured")
    entries = log.entries()
    assert [(e.stream, e.message) for e in entries] == [
        ("stdout", "hello from the step"), ("stderr", "careful"),
        ("logging", "low on paper")]
    assert (entries[2].level, entries[2].logger) == ("WARNING", "my.app")


def test_concurrent_steps_keep_their_own_lines() -> None:
    logs = [StepLog() for _ in range(4)]

    def work(i: int) -> None:
        with captured(logs[i]):
            for n in range(50):
                print(f"step {i} line {n}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, log in enumerate(logs):
        assert [e.message for e in log.entries()] == [f"step {i} line {n}" for n in range(50)]


def test_a_capture_follows_the_step_into_its_worker_thread() -> None:
    log = StepLog()

    async def main() -> None:
        with captured(log):
            await anyio.to_thread.run_sync(lambda: print("from a thread"))

    anyio.run(main)
    assert [e.message for e in log.entries()] == ["from a thread"]


def test_records_outside_a_step_still_reach_last_resort(
        capsys: pytest.CaptureFixture[str]) -> None:
    with captured(StepLog()):
        pass  # installs the routing handler
    root = logging.getLogger()
    others = [h for h in root.handlers if not isinstance(h, RoutingHandler)]
    for handler in others:
        root.removeHandler(handler)
    try:
        logging.getLogger("tests.outside").warning("nobody configured logging")
    finally:
        for handler in others:
            root.addHandler(handler)
    assert "nobody configured logging" in capsys.readouterr().err


def test_the_command_line_keeps_info_records_when_logging_is_unconfigured() -> None:
    import subprocess
    import sys

    code = ("import logging; from blocks.log_capture import capture_info, captured; "
            "from engine.contracts.logs import StepLog; capture_info(); log = StepLog()\n"
            "with captured(log): logging.getLogger('x').info('kept')\n"
            "print([e.message for e in log.entries()])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip() == "['kept']"


def test_a_print_longer_than_a_message_leaves_no_empty_entry() -> None:
    log = StepLog()
    log.write_text("stdout", "x" * (MAX_MESSAGE_CHARS + 10))
    log.write_text("stdout", "\n")
    log.write_text("stdout", "next\n")
    found = [(e.message[:1], e.truncated) for e in log.entries()]
    assert found == [("x", True), ("n", False)]


def test_take_hands_out_each_complete_entry_once() -> None:
    log = StepLog()
    log.write_text("stdout", "one\ntw")
    assert [e.message for e in log.take()] == ["one"]
    assert log.take() == ()
    log.write_text("stdout", "o\n")
    assert [e.message for e in log.take()] == ["two"]
    assert log.taken == 2 and [e.message for e in log.entries()] == ["one", "two"]
