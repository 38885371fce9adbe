"""engine.orphans: runs whose owner died are resumed, or ended with a reason."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from engine import Engine, Workflow
from engine.orphans import find_orphans, orphan_note, recover_orphans

ECHO = """\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata: {name: echo}
spec:
  blocks:
    data: {type: start_json}
    shape: {type: reshape, config: {mappings: {x: x}}}
    done: {type: end}
  edges:
    - {source: {block: data, handle: output-json-0}, target: {block: shape}}
    - {source: {block: shape, handle: output-json-0}, target: {block: done, handle: input-json-0}}
"""


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def orphaned_run(engine: Engine) -> str:
    prepared = engine.prepare(Workflow.from_yaml(ECHO), {"data": {"x": 1}})
    engine.store.set_owner(prepared.run_id, dead_pid(), time.time() - 60)
    return prepared.run_id


def test_orphans_are_found_and_resumed(tmp_path: Path) -> None:
    with Engine(tmp_path / "o.db") as engine:
        run_id = orphaned_run(engine)
        [found] = find_orphans(engine.store)
        assert found.id == run_id
        assert (orphan_note(found) or "").startswith("orphaned: its owner process")
        done = recover_orphans(engine, engine.resume)
        assert [(r.run_id, r.action) for r in done] == [(run_id, "resumed")]
        assert engine.store.load_run(run_id).status.value == "completed"
        assert find_orphans(engine.store) == []


def test_an_orphan_that_cannot_resume_ends_with_the_reason(tmp_path: Path) -> None:
    with Engine(tmp_path / "o.db") as engine:
        run_id = orphaned_run(engine)
        done = recover_orphans(engine, engine.resume, check=lambda wf: "no code here")
        assert [r.action for r in done] == ["ended"]
        run = engine.client.workflows.runs.get(run_id)
        assert run.lifecycle.status == "error"
        assert run.lifecycle.message.startswith("orphaned: its owner process")
        assert "cannot resume here: no code here" in run.lifecycle.message
        assert all(s.lifecycle.status in ("cancelled", "completed")
                   for s in engine.client.workflows.steps.list(run_id).data)


def test_live_runs_are_not_orphans(tmp_path: Path) -> None:
    with Engine(tmp_path / "o.db") as engine:
        engine.prepare(Workflow.from_yaml(ECHO), {"data": {"x": 1}})  # owned by this process
        assert find_orphans(engine.store) == []


def test_a_run_orphaned_again_after_each_resume_is_given_up(tmp_path: Path) -> None:
    from engine.orphans import MAX_RESUMES

    with Engine(tmp_path / "o.db") as engine:
        run_id = orphaned_run(engine)
        resumed: dict[str, int] = {}
        for _ in range(MAX_RESUMES):  # a resume that dies at once: still an orphan
            done = recover_orphans(engine, lambda _run: None, resumed=resumed)
            assert [r.action for r in done] == ["resumed"]
        [ended] = recover_orphans(engine, lambda _run: None, resumed=resumed)
        assert ended.action == "ended" and f"resumed {MAX_RESUMES} times" in ended.reason
        assert engine.store.load_run(run_id).status.value == "error"
        assert find_orphans(engine.store) == []
