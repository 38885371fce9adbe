"""What a step did, from the terminal: full records, artifacts, filters, reviews, reruns of
failed loop items, watching runs, custom blocks, help text."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engine import Engine
from engine.cli import app, cli_command
from tests.engine import observe_targets

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True)
def _no_env_db(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STEPWELL_DB", raising=False)
    monkeypatch.setenv("COLUMNS", "200")


def invoke(*args: str | Path) -> Any:
    """The CLI in-process (stdout and stderr kept apart)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "STEPWELL_DB"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    return {**env, **extra}


def stepwell(*args: str | Path, cwd: Path | None = None,
             **env: str) -> subprocess.CompletedProcess[str]:
    """The installed console script in a new process."""
    script = str(Path(sys.executable).with_name("stepwell"))
    return subprocess.run([script, *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=child_env(**env), check=False, cwd=cwd)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "observe.db"


@pytest.fixture
def each_wf(tmp_path: Path) -> Path:
    path = tmp_path / "each.yaml"
    path.write_text(observe_targets.each_workflow())
    return path


@pytest.fixture
def review_wf(tmp_path: Path) -> Path:
    path = tmp_path / "review.yaml"
    path.write_text(observe_targets.REVIEW_WORKFLOW)
    return path


def failed_run(each_wf: Path, db: Path, failing: str = "sku-2", count: int = 5) -> str:
    """A run of the for_each workflow whose item ``failing`` fails."""
    observe_targets.FAILING.add(failing)
    try:
        with Engine(db) as engine:
            return engine.run(each_wf, observe_targets.order(count)).run_id
    finally:
        observe_targets.FAILING.clear()


# --------------------------------------------------------------------------- help


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


def test_every_help_is_plain_text_and_whole(capsys: pytest.CaptureFixture[str]) -> None:
    root = cli_command()
    paths = _commands(root)
    assert ("steps", "logs") in paths and ("runs", "watch") in paths
    assert ("artifacts", "get") in paths and ("reviews", "get") in paths
    for path in paths:
        with pytest.raises(SystemExit):
            cli_command()([*path, "--help"], prog_name="stepwell")
        text = capsys.readouterr().out
        where = " ".join(path) or "stepwell"
        assert "``" not in text and ":mod:" not in text and ":func:" not in text, where
        assert not re.search(r"<(str|int|path|list|float|bool|text)[^>]*>", text), (where, text)
        cut = [line for line in text.splitlines() if line.rstrip().endswith("...")
               and not line.rstrip().endswith("[ARGS]...")]
        assert not cut, (where, cut)


def test_version_and_completion() -> None:
    version = stepwell("--version")
    assert version.returncode == 0 and re.fullmatch(r"stepwell \d+\.\d+\.\d+\n", version.stdout)
    # what the installed completion script asks (typer's --show-completion picks the
    # shell from the process tree, which a test runner does not always have)
    commands = stepwell(_STEPWELL_COMPLETE="complete_bash", COMP_WORDS="stepwell ru",
                        COMP_CWORD="1")
    assert commands.returncode == 0 and commands.stdout.split() == ["run", "runs"]
    subcommands = stepwell(_STEPWELL_COMPLETE="complete_bash", COMP_WORDS="stepwell runs li",
                           COMP_CWORD="2")
    assert subcommands.stdout.split() == ["list"]
    assert "--show-completion" in stepwell("--help").stdout


# --------------------------------------------------------------------------- filters


def test_bad_filter_values_exit_2_with_the_choices(each_wf: Path, db: Path) -> None:
    run_id = failed_run(each_wf, db)
    runs = invoke("runs", "list", "-s", "bogus", "--db", db)
    assert runs.exit_code == 2 and "Choose from: pending, queued, running" in runs.stderr
    steps = invoke("steps", "list", run_id, "-s", "bogus", "--db", db)
    assert steps.exit_code == 2 and "awaiting_review" in steps.stderr
    typed = invoke("steps", "list", run_id, "-t", "funct", "--db", db)
    assert typed.exit_code == 2 and "Did you mean 'function'?" in typed.stderr
    assert invoke("reviews", "list", "-s", "maybe", "--db", db).exit_code == 2


def test_the_more_steps_hint_keeps_every_filter(each_wf: Path, db: Path) -> None:
    run_id = failed_run(each_wf, db)
    page = invoke("steps", "list", run_id, "-t", "function", "-s", "completed", "-n", "2",
                  "--db", db)
    assert page.exit_code == 0, page.stderr
    hint = " ".join(page.stdout.split())
    assert f"stepwell steps list {run_id} --status completed --type function --limit 2" \
        " --after " in hint


def test_runs_are_found_by_workflow_name_or_id(each_wf: Path, db: Path) -> None:
    failed_run(each_wf, db)
    by_name = json.loads(invoke("runs", "list", "-w", "Price each item", "--db", db,
                                "--json").stdout)["data"]
    assert len(by_name) == 1
    by_id = json.loads(invoke("runs", "list", "-w", by_name[0]["workflow_id"], "--db", db,
                              "--json").stdout)["data"]
    assert [r["id"] for r in by_id] == [by_name[0]["id"]]
    missing = invoke("runs", "list", "-w", "Price each", "--db", db)
    assert missing.exit_code == 2 and "Price each item" in missing.stderr


# --------------------------------------------------------------------------- records


def test_steps_get_shows_the_whole_record_and_json_inlines_the_artifact(db: Path) -> None:
    with Engine(db) as engine:
        run_id = engine.run(EXAMPLES / "invoice_pdf" / "workflow.yaml",
                            {"upload": EXAMPLES / "invoice_pdf" / "invoice.pdf"}).run_id
    full = invoke("steps", "get", "read_invoice", "--run", run_id, "--db", db)
    assert full.exit_code == 0, full.stderr
    assert "more lines" not in full.stdout and "likelihood" in full.stdout
    brief = invoke("steps", "get", "read_invoice", "--run", run_id, "--db", db, "--brief")
    assert "more lines" in brief.stdout
    step = json.loads(invoke("steps", "get", "read_invoice", "--run", run_id, "--db", db,
                             "--json").stdout)
    record = step["artifact"]["record"]
    assert step["artifact"]["operation"] == "extraction" and "likelihoods" in json.dumps(record)
    alone = json.loads(invoke("artifacts", "get", step["artifact"]["id"], "--db", db,
                              "--json").stdout)
    assert alone["id"] == step["artifact"]["id"] and alone["step_id"] == "read_invoice"
    assert alone["created_at"].endswith("Z"), alone["created_at"]  # ISO UTC like every time
    shown = invoke("artifacts", "get", step["artifact"]["id"], "--db", db)
    assert shown.exit_code == 0 and "extraction" in shown.stdout
    unknown = invoke("artifacts", "get", "art_nope", "--db", db)
    assert unknown.exit_code == 2 and len(unknown.stderr.strip().splitlines()) == 1


def test_an_unknown_block_id_exits_2_with_a_close_match(each_wf: Path, db: Path) -> None:
    run_id = failed_run(each_wf, db)
    nope = invoke("steps", "list", run_id, "-b", "wrok", "--db", db)
    assert nope.exit_code == 2 and "Did you mean 'work'?" in nope.stderr, nope.stderr
    sentinel = invoke("steps", "list", run_id, "-b", "each_sentinel_end", "--db", db)
    assert sentinel.exit_code == 0 and "each_iter_0_each_sentinel_end" in sentinel.stdout


def test_a_page_counts_the_rows_it_shows(each_wf: Path, db: Path) -> None:
    run_id = failed_run(each_wf, db)
    page = invoke("steps", "list", run_id, "-n", "2", "--after", "each_iter_0_work",
                  "--db", db)
    assert page.exit_code == 0, page.stderr
    assert "each_iter_1_work" in page.stdout and "each_iter_2_work" in page.stdout
    assert "each_iter_3_work" not in page.stdout
    hint = " ".join(page.stdout.split())
    assert "--after each_iter_2_work" in hint, hint
    last = invoke("steps", "list", run_id, "-n", "50", "--after", "each_iter_2_work",
                  "--db", db)
    assert "each_iter_3_work" in last.stdout and "More steps" not in last.stdout


def test_steps_list_hides_sentinels_unless_all(each_wf: Path, db: Path) -> None:
    run_id = failed_run(each_wf, db)
    hidden = invoke("steps", "list", run_id, "--db", db)
    assert "sentinel" not in hidden.stdout.replace("sentinel step(s) not shown", "")
    assert "each_iter_0_each_sentinel_start" in invoke("steps", "list", run_id, "--all",
                                                       "--db", db).stdout


# --------------------------------------------------------------------------- reviews


def test_reviews_show_instructions_proposed_and_decided_data(review_wf: Path,
                                                              db: Path) -> None:
    waiting = invoke("run", review_wf, "-i", '{"amount": 40}', "--db", db, "-q")
    assert waiting.exit_code == 3
    listed = json.loads(invoke("reviews", "list", "--db", db, "--json").stdout)
    assert set(listed) == {"data", "list_metadata"}
    [review] = listed["data"]
    assert review["instructions"] == "Check the receipt matches the amount"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", review["created_at"])
    table = invoke("reviews", "list", "--db", db)
    assert "Check the receipt" in table.stdout and 'proposed: {"amount": 40}' in table.stdout
    runs = invoke("runs", "list", "--db", db)
    assert "waiting for review since" in runs.stdout

    approved = invoke("reviews", "approve", review["id"], "--data", '{"amount": 35}',
                      "--db", db)
    assert approved.exit_code == 0, approved.stderr
    table = invoke("reviews", "list", "--db", db)
    assert 'decided: {"amount": 35}' in table.stdout
    shown = invoke("reviews", "get", review["id"], "--db", db)
    assert "proposed" in shown.stdout and '"amount": 40' in shown.stdout
    assert "decided (corrected by the reviewer)" in shown.stdout and '"amount": 35' in shown.stdout
    got = json.loads(invoke("reviews", "get", review["id"], "--db", db, "--json").stdout)
    assert (got["proposed"], got["decided"], got["status"]) == (
        {"amount": 40}, {"amount": 35}, "approved")
    missing = invoke("reviews", "get", "rev_nope", "--db", db)
    assert missing.exit_code == 2


# --------------------------------------------------------------------------- rerun


def test_rerun_failed_runs_only_the_failed_items(each_wf: Path, db: Path,
                                                 tmp_path: Path) -> None:
    side = tmp_path / "calls.txt"
    first = stepwell("run", each_wf, "-i", json.dumps(observe_targets.order(5)["order"]),
                     "--db", db, "--json", OBSERVE_FAILING="sku-2", OBSERVE_SIDE_FILE=str(side))
    assert first.returncode == 1, first.stderr
    old = json.loads(first.stdout)["id"]
    before = side.read_text().split()
    assert "sku-2" in before and "sku-4" not in before  # the failure stopped the loop

    again = stepwell("runs", "rerun", old, "--failed", "--db", db, "--json",
                     OBSERVE_SIDE_FILE=str(side))
    assert again.returncode == 0, again.stderr
    run = json.loads(again.stdout)
    rerun_calls = side.read_text().split()[len(before):]
    assert sorted(rerun_calls) == ["sku-2", "sku-4"]  # completed items were kept
    with Engine(db) as engine:
        steps = {s.step_id: s for s in engine.client.workflows.steps.list(
            run["id"], limit=1000).data}
    assert steps["total"].handle_outputs["output-json-0"].data == {"total": 150, "count": 5}

    none_failed = invoke("runs", "rerun", run["id"], "--failed", "--db", db)
    assert none_failed.exit_code == 2 and "has no failed steps" in none_failed.stderr
    assert len(none_failed.stderr.strip().splitlines()) == 1


def test_rerun_from_a_loop_step_keeps_the_other_items(each_wf: Path, db: Path,
                                                      tmp_path: Path) -> None:
    with Engine(db) as engine:
        old = engine.run(each_wf, observe_targets.order(3)).run_id
    side = tmp_path / "calls.txt"
    again = stepwell("runs", "rerun", old, "--from", "each_iter_1_work", "--db", db, "--json",
                     OBSERVE_SIDE_FILE=str(side))
    assert again.returncode == 0, again.stderr
    assert side.read_text().split() == ["sku-1"]
    bad = invoke("runs", "rerun", old, "--from", "each_iter_9_work", "--db", db)
    assert bad.exit_code == 2 and "is not a step of run" in bad.stderr


# --------------------------------------------------------------------------- watch, wait


def test_watch_follows_a_run_another_process_executes(each_wf: Path, db: Path) -> None:
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("stepwell")), "run", str(each_wf), "-i",
         json.dumps(observe_targets.order(4)["order"]), "--db", str(db), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=child_env(OBSERVE_SLOW_S="0.4"))
    deadline = time.monotonic() + 30
    run_id = None
    while run_id is None and time.monotonic() < deadline:
        time.sleep(0.2)
        if db.exists():
            listed = invoke("runs", "list", "--db", db, "--json")
            data = json.loads(listed.stdout)["data"] if listed.exit_code == 0 else []
            run_id = data[0]["id"] if data else None
    assert run_id is not None
    watched = stepwell("runs", "watch", run_id, "--db", db)
    proc.wait(timeout=60)
    assert watched.returncode == 0, watched.stderr
    assert f"{run_id} completed" in watched.stdout
    again = stepwell("runs", "watch", run_id, "--db", db, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["lifecycle"]["status"] == "completed"
    assert invoke("runs", "watch", "run_nope", "--db", db).exit_code == 2


def test_plain_progress_lines_when_stdout_is_piped(each_wf: Path, db: Path) -> None:
    done = stepwell("run", each_wf, "-i", json.dumps(observe_targets.order(8)["order"]),
                    "--db", db, OBSERVE_SLOW_S="0.9")
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stdout.splitlines() if line.startswith("each: ")]
    assert progress and re.match(r"each: \d/8 items", progress[0]), done.stdout


def test_wait_follows_a_run_through_its_review(review_wf: Path, db: Path) -> None:
    waiting = subprocess.Popen(
        [str(Path(sys.executable).with_name("stepwell")), "run", str(review_wf), "-i",
         '{"amount": 12}', "--db", str(db), "--wait", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    deadline = time.monotonic() + 30
    review_id = None
    while review_id is None and time.monotonic() < deadline:
        time.sleep(0.3)
        if db.exists():
            listed = invoke("reviews", "list", "--db", db, "--json")
            data = json.loads(listed.stdout)["data"] if listed.exit_code == 0 else []
            review_id = data[0]["id"] if data else None
    assert review_id is not None
    assert invoke("reviews", "approve", review_id, "--db", db).exit_code == 0
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert json.loads(out)["lifecycle"]["status"] == "completed"


# --------------------------------------------------------------------------- custom blocks


def test_validate_and_graph_load_custom_blocks(tmp_path: Path) -> None:
    workflow = EXAMPLES / "fastapi_sse" / "workflow.yaml"
    header = workflow.read_text().splitlines()[:6]
    command = next(line for line in header if "stepwell validate" in line)
    assert "--blocks examples.fastapi_sse.app:ExpensePolicy" in command
    bare = stepwell("validate", workflow, cwd=ROOT)
    assert bare.returncode == 2 and "expense_policy" in bare.stderr + bare.stdout
    loaded = stepwell("validate", workflow, "--blocks", "examples.fastapi_sse.app:ExpensePolicy",
                      cwd=ROOT)
    assert loaded.returncode == 0, loaded.stderr
    drawn = stepwell("graph", workflow, "--blocks", "examples.fastapi_sse.app:ExpensePolicy",
                     cwd=ROOT)
    assert drawn.returncode == 0 and "expense_policy" in drawn.stdout
    for spec, message in (("no_such_module_xyz:X", "cannot import"),
                          # ':x' must not turn into an emoji code in the message
                          ("no_such_module_xyz:x", "--blocks no_such_module_xyz:x: cannot"),
                          ("examples.fastapi_sse.app:WORKFLOW", "holds no block types")):
        bad = stepwell("validate", workflow, "--blocks", spec, cwd=ROOT)
        assert bad.returncode == 2 and message in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_entry_point_blocks_and_the_cwd_for_python_references(tmp_path: Path) -> None:
    (tmp_path / "shout.py").write_text(
        "from blocks.base import BlockResult, BlockType\n"
        "from engine import Payload\n\n"
        "class Shout(BlockType):\n"
        "    type_name = 'shout'\n"
        "    def input_handles(self, config): return {'input-json-0': 'json'}\n"
        "    def output_handles(self, config): return {'output-json-0': 'json'}\n"
        "    async def run(self, ctx, config, inputs):\n"
        "        text = inputs['input-json-0'].data['text']\n"
        "        return BlockResult(outputs={'output-json-0': Payload.json({'text': text.upper()})})\n"
        "\n"
        "def exclaim(data):\n"
        "    return {'text': data['text'] + '!'}\n")
    plugin = tmp_path / "plugins"
    dist = plugin / "shout-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shout\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[stepwell.blocks]\nshout = shout:Shout\n")
    (tmp_path / "wf.yaml").write_text(
        "apiVersion: workflows.retab.com/v1alpha2\nkind: Workflow\nmetadata: {name: shouting}\n"
        "spec:\n  blocks:\n    start: {type: start_json}\n    loud: {type: shout}\n"
        "    bang:\n      type: function\n"
        "      config: {python: 'shout:exclaim', output_schema: {type: object}}\n"
        "  edges:\n"
        "    - {source: {block: start, handle: output-json-0}, target: {block: loud, handle: input-json-0}}\n"
        "    - {source: {block: loud, handle: output-json-0}, target: {block: bang, handle: input-json-0}}\n")
    env = {"PYTHONPATH": os.pathsep.join((str(ROOT), str(plugin)))}
    ran = subprocess.run(
        [str(Path(sys.executable).with_name("stepwell")), "run", "wf.yaml", "-i",
         '{"text": "hi"}', "--db", "x.db", "--json"], cwd=tmp_path, capture_output=True,
        text=True, timeout=120, env={**child_env(), **env}, check=False)
    assert ran.returncode == 0, ran.stderr
    step = subprocess.run(
        [str(Path(sys.executable).with_name("stepwell")), "steps", "get", "bang", "--db",
         "x.db", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**child_env(), **env}, check=False)
    assert json.loads(step.stdout)["handle_outputs"]["output-json-0"]["data"] == {"text": "HI!"}


# --------------------------------------------------------------------------- logs


def test_steps_logs_print_every_attempt_and_json(tmp_path: Path, db: Path) -> None:
    flaky = tmp_path / "flaky.yaml"
    flaky.write_text(observe_targets.FLAKY_WORKFLOW)
    counter = tmp_path / "counter.txt"
    ran = stepwell("run", flaky, "-i", json.dumps({"counter": str(counter)}), "--db", db,
                   "--json")
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout)["id"]
    shown = stepwell("steps", "logs", "call", "--run", run_id, "--db", db)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert any(line.endswith("stdout   call 1") for line in lines), shown.stdout
    assert "── attempt 1" in shown.stdout and lines[-1].endswith("call 2")
    got = json.loads(stepwell("steps", "get", "call", "--run", run_id, "--db", db,
                              "--json").stdout)
    assert [line["message"] for line in got["logs"]] == ["call 1", "call 2"]
    data = json.loads(stepwell("steps", "logs", "call", "--run", run_id, "--db", db,
                               "--json").stdout)
    assert [(d["attempt"], d["message"]) for d in data["data"]] == [(0, "call 1"),
                                                                    (1, "call 2")]
    second = json.loads(stepwell("steps", "logs", "call", "--run", run_id, "--attempt", "1",
                                 "--db", db, "--json").stdout)
    assert [d["message"] for d in second["data"]] == ["call 2"]
    hint = stepwell("steps", "get", "call", "--run", run_id, "--db", db)
    assert f"stepwell steps logs call --run {run_id}" in hint.stdout
    missing = stepwell("steps", "logs", "nope", "--run", run_id, "--db", db)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1


def test_steps_logs_follow_a_running_step(each_wf: Path, db: Path) -> None:
    script = str(Path(sys.executable).with_name("stepwell"))
    proc = subprocess.Popen(
        [script, "run", str(each_wf), "-i", json.dumps(observe_targets.order(2)["order"]),
         "--db", str(db), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=child_env(OBSERVE_SLOW_S="1.5"))
    deadline = time.monotonic() + 30
    run_id = None
    while run_id is None and time.monotonic() < deadline:
        time.sleep(0.2)
        if db.exists():
            listed = invoke("runs", "list", "--db", db, "--json")
            data = json.loads(listed.stdout)["data"] if listed.exit_code == 0 else []
            run_id = data[0]["id"] if data else None
    assert run_id is not None
    followed = stepwell("steps", "logs", "each_iter_1_work", "--run", run_id, "--follow",
                        "--db", db)
    proc.wait(timeout=60)
    assert followed.returncode == 0, followed.stderr
    assert "pricing sku-1" in followed.stdout and "qty 2" in followed.stdout


def test_validate_suggests_the_operator_meant(tmp_path: Path) -> None:
    source = (ROOT / "tests" / "conformance" / "workflows" / "if_else.yaml").read_text()
    typo = tmp_path / "typo.yaml"
    typo.write_text(source.replace("operator: is_greater_than", "operator: is_greater_tan", 1))
    result = invoke("validate", typo)
    assert result.exit_code == 2
    assert "Did you mean 'is_greater_than'?" in " ".join((result.stdout + result.stderr).split())
