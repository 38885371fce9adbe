"""``python -m bench`` runs every workload end to end (tiny sizes) and prints its tables."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def test_bench_prints_every_table() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--steps", "31", "--repeat", "1",
         "--read-steps", "3000", "--peers"],
        check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for label in ("floor (sqlite3)", "chain", "fanout", "for_each", "while",
                  "W4 cold start", "W5 reads", "steps get by id", "W6 stubbed",
                  "invoice_routing", "LangGraph"):
        assert label in out, f"{label!r} missing from:\n{out}"


def test_workloads_write_the_steps_they_promise() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.measure", "for_each", "40", "full", "--repeat", "1"],
        check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert '"steps": 39' in done.stdout


def test_each_run_is_divided_by_the_floor_measured_beside_it() -> None:
    """``x_floor`` is the run's per-step time over the floor measured right before it
    (with one timed run, exactly that ratio), not over a floor from elsewhere."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.measure", "chain", "12", "process", "--repeat", "1"],
        check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["steps"] == 12 and figures["floor_us"] > 0
    per_step_us = figures["wall"] / figures["steps"] * 1e6
    assert figures["x_floor"] == pytest.approx(per_step_us / figures["floor_us"], rel=1e-9)


def test_the_printing_chain_keeps_its_lines_in_the_step_logs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--workloads", "chain_printing", "--steps", "12",
         "--repeat", "1", "--read-steps", "0", "--no-cold-start", "--no-stubbed"],
        check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "chain_printing" in done.stdout and "n is" not in done.stdout


_HIDE_PEERS = """
import sys
from importlib.abc import MetaPathFinder

class HidePeers(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("langgraph", "dbos"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, HidePeers())
from bench.__main__ import main
main(sys.argv[1:])
"""


def test_peers_without_the_extra_say_how_to_install_it() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _HIDE_PEERS, "--steps", "11", "--repeat", "1",
         "--workloads", "chain", "--read-steps", "0", "--no-cold-start", "--peers"],
        check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "pip install -e '.[bench]'" in out
    assert "not measured by this command" in out and "LangGraph" in out
    assert "Peers, measured" not in out


def test_peers_run_the_same_workloads() -> None:
    pytest.importorskip("langgraph.checkpoint.sqlite")
    pytest.importorskip("dbos")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--steps", "11", "--repeat", "1",
         "--workloads", "chain,fanout", "--read-steps", "0", "--durability", "full",
         "--peers"],
        check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Peers, measured: full durability" in out and "x stepwell" in out
    assert "WAL, synchronous=FULL" in out
    rows: dict[tuple[str, str], list[str]] = {}
    name = ""
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 8 and cells[1] in ("chain", "fanout"):
            name = cells[0] or name
            rows[name.split()[0], cells[1]] = cells
    for peer in ("stepwell", "LangGraph", "DBOS"):
        for workload in ("chain", "fanout"):
            cells = rows[peer, workload]
            assert float(cells[2]) > 0 and float(cells[4]) > 0, cells  # us/step, x stepwell
            assert int(cells[5].replace(",", "")) > 0, cells  # DB bytes per step
        assert rows[peer, "chain"][7].endswith(")"), rows[peer, "chain"]  # cold start (xN)



def _rows(path: Path) -> dict[str, list[Any]]:
    """Every table's rows, in rowid order."""
    from store.layout import TABLE_NAMES

    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall()
                for t in TABLE_NAMES}
    finally:
        conn.close()


def test_sql_replay_writes_what_the_run_wrote(tmp_path: Path) -> None:
    """The replayed transactions rebuild the recorded run's rows exactly: the SQL timed
    without the engine is the SQL the engine sent."""
    from bench.sqlreplay import Transaction, recording, replay
    from bench.workloads import WORKLOADS
    from engine.core import Engine

    workflow, inputs, count = WORKLOADS["while"](12)
    log: list[Transaction] = []
    with recording(log), Engine(tmp_path / "run.db") as engine:
        assert engine.run(workflow, inputs).ok
    recorded = len(log)
    with Engine(tmp_path / "after.db") as engine:  # recording is over: nothing noted
        assert engine.run(workflow, inputs).ok
    assert replay(log, tmp_path / "replay.db") > 0
    written = _rows(tmp_path / "run.db")
    assert len(written["steps"]) == count and _rows(tmp_path / "replay.db") == written
    assert len(log) == recorded and all(log)  # the second run added nothing


def test_wal_pages_count_the_pages_each_commit_appends(tmp_path: Path) -> None:
    """A commit that adds one small definition appends two pages (the table's leaf and
    its primary key's index): the count is the WAL's, not an estimate."""
    from bench.sqlreplay import Transaction, replay_in_memory, wal_pages

    sql = "INSERT INTO definitions (id, definition, created_at) VALUES (?, ?, ?)"
    log: list[Transaction] = [[("one", sql, (f"d{i}", "{}", 0.0))] for i in range(30)]
    assert wal_pages(log, tmp_path / "pages.db") == 60
    assert replay_in_memory(log) > 0
    twice = log + log[:1]  # the same id again: the replay fails as the store would
    with pytest.raises(sqlite3.IntegrityError):
        replay_in_memory(twice)


def test_pages_by_tree_name_where_each_commits_pages_go(tmp_path: Path) -> None:
    """The pages a commit appends, by b-tree: they add up to what :func:`wal_pages`
    counts, and a chain's go to the steps table's leaves, a loop's to its indexes too."""
    from bench.sqlreplay import Transaction, pages_by_tree, recording, wal_pages
    from bench.workloads import WORKLOADS
    from engine.core import Engine

    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("SELECT pageno FROM dbstat LIMIT 1").fetchall()
    except sqlite3.OperationalError:
        pytest.skip("this SQLite has no dbstat table (SQLITE_ENABLE_DBSTAT_VTAB)")
    finally:
        conn.close()
    for name, steps in (("chain", 60), ("while", 60)):
        workflow, inputs, _ = WORKLOADS[name](steps)
        log: list[Transaction] = []
        with recording(log), Engine(tmp_path / f"{name}.db") as engine:
            assert engine.run(workflow, inputs).ok
        trees = pages_by_tree(log, tmp_path / f"{name}-trees.db")
        total = wal_pages(log, tmp_path / f"{name}-pages.db")
        assert sum(trees.values()) * len(log) == pytest.approx(total)
        assert list(trees.values()) == sorted(trees.values(), reverse=True)
        assert trees["steps leaf"] >= 1  # every commit moves a step
        if name == "while":  # each iteration inserts its rows: their indexes grow
            assert trees["ux_steps_step_run leaf"] > 0.5


def test_sql_replay_prints_a_line_per_workload() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.sqlreplay", "chain,for_each,chain_printing", "--steps",
         "40", "--repeat", "1"], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:2] == ["workload", "steps"] and len(lines) == 4
    chain = lines[1].split()
    assert chain[:2] == ["chain", "40"] and int(chain[2]) >= 40  # a commit per step at least
    assert lines[0].split()[-5:] == ["in", "memory", "us/step", "WAL", "pages/commit"]
    in_memory, pages = float(chain[-2]), float(chain[-1])
    assert in_memory > 0 and pages >= 1  # every commit appends a page at least
    bad = subprocess.run([sys.executable, "-m", "bench.sqlreplay", "nope"],
                         check=False, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown workload 'nope'" in bad.stderr
    trees = subprocess.run(
        [sys.executable, "-m", "bench.sqlreplay", "chain", "--steps", "20", "--repeat", "1",
         "--pages"], check=False, capture_output=True, text=True, timeout=300)
    assert trees.returncode == 0, trees.stderr
    assert any(line.split()[:2] == ["steps", "leaf"] for line in trees.stdout.splitlines())
    zero = subprocess.run([sys.executable, "-m", "bench.sqlreplay", "--repeat", "0"],
                          check=False, capture_output=True, text=True, timeout=60)
    assert zero.returncode == 2 and "--repeat must be at least 1" in zero.stderr


def test_commit_times_print_a_line_per_workload() -> None:
    """Every COMMIT of the timed runs is counted: a chain of 40 steps commits once per
    step and twice more (the run's creation and its end)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.commits", "chain,while", "--steps", "40", "--repeat",
         "2"], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["workload", "steps", "commits"] and len(lines) == 3
    chain = lines[1].split()
    assert chain[:3] == ["chain", "40", "42"]
    median, mean, p99, slowest = (float(v) for v in chain[3:7])
    assert 0 < median <= p99 <= slowest * 1000 + 5 and mean > 0  # printed rounded
    assert lines[2].split()[0] == "while"
    bad = subprocess.run([sys.executable, "-m", "bench.commits", "chain", "--repeat", "0"],
                         check=False, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--repeat must be at least 1" in bad.stderr


def test_a_commit_over_the_stall_line_is_counted() -> None:
    from bench.commits import STALL_S, CommitTimes

    times = CommitTimes("chain", 3, 2, [STALL_S / 10, STALL_S * 3, STALL_S / 10, STALL_S * 2])
    assert times.per_run == 2
    assert times.stalls() == (1.0, pytest.approx(STALL_S * 5 * 1e3 / 2))


def test_instruction_count_runs_the_workload_it_counts() -> None:
    """The counted process builds four workflows and runs as many as asked, on
    :memory:, without valgrind (what valgrind wraps)."""
    for extra in ([], ["--store"]):  # --store: record one run, replay it into stores
        done = subprocess.run(
            [sys.executable, "-m", "bench.instructions", "--inner", "for_each", "--steps",
             "12", "--runs", "2", *extra], capture_output=True, text=True, check=False,
            timeout=120)
        assert done.returncode == 0, done.stderr
    for args, message in ((["nope"], "unknown workload 'nope'"),
                          (["chain", "--steps", "1"], "--steps must be at least 2"),
                          (["--inner", "chain", "--runs", "5"], "--runs must be between")):
        bad = subprocess.run([sys.executable, "-m", "bench.instructions", *args],
                             capture_output=True, text=True, check=False, timeout=60)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr


def test_instruction_count_without_valgrind_says_what_to_install(monkeypatch) -> None:
    from bench import instructions

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="apt-get install valgrind"):
        instructions.instructions_per_step("chain", 10)


def test_instruction_count_refuses_a_count_the_extra_runs_did_not_raise(monkeypatch) -> None:
    """Two counts that differ by something other than the runs give no negative figure."""
    from bench import instructions

    counts = iter([900_000, 800_000])
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/valgrind")
    monkeypatch.setattr(instructions, "_warm_up", lambda workload, steps, **kw: None)
    monkeypatch.setattr(instructions, "_count", lambda *args, **kw: next(counts))
    with pytest.raises(SystemExit, match="Count again with more --steps"):
        instructions.instructions_per_step("chain", 10)


#: A callgrind output file in small: objects named on ``ob=`` and ``cob=`` lines and then
#: by number, a call whose inclusive cost line follows ``calls=``, relative positions.
_CALLGRIND = """# callgrind format
version: 1
positions: line
events: Ir
summary: 1000

ob=(1) /usr/lib/libpython3.11.so.1.0
fl=(1) ceval.c
fn=(1) eval
10 600
+2 100
cob=(2) /usr/lib/x86_64-linux-gnu/libsqlite3.so.0
cfi=(2) ???
cfn=(2) sqlite3_step
calls=3 0x10
* 250

ob=(2)
fl=(2)
fn=(2)
0 250
cob=(3) /lib/_sqlite3.cpython-311-x86_64-linux-gnu.so
cfn=(3) bind
calls=1 0
0 40

ob=(3)
fn=(3)
-1 40
ob=(1)
fn=(1)
12 10
"""


def test_self_by_object_counts_each_objects_own_instructions(tmp_path: Path) -> None:
    """A call's inclusive cost goes to no one (the callee's own lines hold it); an object
    first named on a ``cob=`` line is known by its number afterwards."""
    from bench.instructions import library_lines, self_by_object

    out = tmp_path / "callgrind.out"
    out.write_text(_CALLGRIND)
    mine = self_by_object(out)
    assert mine == {"libpython3.11.so.1.0": 710, "libsqlite3.so.0": 250,
                    "_sqlite3.cpython-311-x86_64-linux-gnu.so": 40}
    lines = library_lines({name: value / 10 for name, value in mine.items()}, 100.0)
    assert [line.split()[0] for line in lines] == [
        "libpython3.11.so.1.0", "libsqlite3.so.0", "_sqlite3"]
    assert lines[2].split()[1:] == ["(extension", "module)", "4", "4.0%"]
    small = library_lines({"libpython3.11.so.1.0": 99.0, "a.so": 0.3, "b.so": 0.2}, 99.5)
    assert small[-1].split() == ["(2", "more,", "each", "under", "0.5%)", "0", "0.5%"]


@pytest.mark.skipif(shutil.which("valgrind") is None,
                    reason="valgrind is not installed (Debian: apt-get install valgrind)")
def test_instruction_count_prints_instructions_per_step(tmp_path: Path) -> None:
    """Counted under valgrind: a line per workload with a positive count per step, and
    the store's part of it, also where no module has its bytecode compiled yet (a fresh
    checkout)."""
    fresh = {**os.environ, "PYTHONPYCACHEPREFIX": str(tmp_path / "pycache")}
    done = subprocess.run([sys.executable, "-m", "bench.instructions", "chain", "--steps", "6",
                           "--store", "--by-library"],
                          capture_output=True, text=True, check=False, timeout=600, env=fresh)
    assert done.returncode == 0, done.stderr
    header, line, *libraries = done.stdout.splitlines()
    assert header.split() == ["workload", "steps", "instructions/step", "store", "apply/step"]
    name, steps, per_step, store = line.split()
    assert (name, steps) == ("chain", "6") and int(per_step.replace(",", "")) > 10_000
    # the store's part of a step: most of it, but not all
    assert 5_000 < int(store.replace(",", "")) < int(per_step.replace(",", ""))
    # whose code ran it: the interpreter first, SQLite among the rest, summing to the step
    assert libraries[0].split()[0].startswith(("libpython", "python")), libraries
    assert any(entry.split()[0].startswith("libsqlite3") for entry in libraries), libraries
    shares = sum(float(entry.split()[-1].rstrip("%")) for entry in libraries)
    assert 99.0 < shares < 101.0, libraries


def test_layers_split_a_step_into_engine_store_and_sql() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.layers", "chain,while", "--steps", "30", "--repeat", "1"],
        check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert header.split()[:4] == ["workload", "floor", "us", "engine+blocks"]
    assert [line.split()[0] for line in lines] == ["chain", "while"]
    for line in lines:
        cells = line.split()
        floor, engine, sqlite = float(cells[1]), float(cells[2]), float(cells[8])
        assert floor > 0 and 0 < engine < sqlite  # persisting steps costs something
        assert float(cells[9].strip("()x")) == pytest.approx(sqlite / floor, rel=0.02)
    bad = subprocess.run([sys.executable, "-m", "bench.layers", "--repeat", "0"],
                         check=False, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--repeat must be at least 1" in bad.stderr


def test_the_engine_layer_keeps_runs_but_no_steps() -> None:
    from bench.layers import StepsDropped
    from bench.workloads import chain
    from engine.core import Engine

    store = StepsDropped()
    workflow, inputs, _ = chain(5)
    with Engine(store=store) as engine:
        result = engine.run(workflow, inputs)
    assert result.ok and store.read_run(result.run_id).status == "completed"
    assert store.run_steps(result.run_id) == []
