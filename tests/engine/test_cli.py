"""The ``stepwell`` CLI: input parsing, rendering, exit codes, and real runs.

Most tests go through typer's CliRunner; the ``subprocess`` tests run the installed
console script in a fresh process, as a user would. Every test uses its own database
under ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.cli_inputs import parse_inputs
from engine.cli_live import visible_steps
from engine.cli_render import fmt_ms, loop_label, step_note, steps_table
from engine.cli_run import exit_code_for
from engine.cli_support import db_flag, resolve_db
from engine.contracts.blocks import BlockRole
from engine.contracts.errors import InputError

# --------------------------------------------------------------------------- fixtures

FUNCTION_CODE = """\
from models import Input, Output

def transform(input_data):
    return {"y": input_data.x * 2}
"""
DIVIDING_CODE = """\
from models import Input, Output

def transform(input_data):
    return {"y": 10 / input_data.x}
"""


def workflow_yaml(code: str = FUNCTION_CODE) -> str:
    """start_json -> function -> end, as Retab declarative YAML."""
    indented = "".join(f"          {line}\n" for line in code.splitlines())
    return f"""\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: doubler
spec:
  blocks:
    order_in:
      type: start_json
      config:
        json_schema:
          type: object
          properties: {{x: {{type: number}}}}
          required: [x]
    double:
      type: function
      label: Double x
      config:
        output_schema:
          type: object
          properties: {{y: {{type: number}}}}
          required: [y]
        code: |
{indented}    done:
      type: end
  edges:
    - source: {{block: order_in, handle: output-json-0}}
      target: {{block: double, handle: input-json-0}}
    - source: {{block: double, handle: output-json-0}}
      target: {{block: done, handle: input-json-0}}
"""


INVALID_YAML = """\
apiVersion: workflows.retab.com/v9
kind: Workflow
metadata: {name: broken}
spec:
  blocks:
    order_in: {type: start_json}
    mystery: {type: teleport}
    double:
      type: function
      config:
        code: |
          def transform(input_data):
              return input_data
  edges:
    - {from: order_in, to: double}
    - {from: double, to: nowhere}
"""


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    path = tmp_path / "doubler.yaml"
    path.write_text(workflow_yaml())
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "stepwell.db"


@pytest.fixture(autouse=True)
def _no_env_db(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STEPWELL_DB", raising=False)


def invoke(*args: str | Path) -> Any:
    """Run the CLI in-process; stdout and stderr are kept apart."""
    return CliRunner().invoke(app, [str(a) for a in args])


def stepwell(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed console script in a new process."""
    exe = shutil.which("stepwell") or str(Path(sys.executable).with_name("stepwell"))
    env = {k: v for k, v in os.environ.items() if k != "STEPWELL_DB"}
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=env)


def run_json(workflow: Path, db: Path, *inputs: str) -> tuple[int, dict[str, Any]]:
    args: list[str | Path] = ["run", workflow, "--db", db, "--json"]
    for value in inputs:
        args += ["--input", value]
    result = invoke(*args)
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else {}


# --------------------------------------------------------------------------- --input parsing

START_JSON = SimpleNamespace(id="order_in", type="start_json", role=BlockRole.START_JSON)
START_DOC = SimpleNamespace(id="invoice", type="start_document", role=BlockRole.START_DOCUMENT)


def test_single_start_block_needs_no_block_prefix() -> None:
    assert parse_inputs(['{"x": 2}'], [START_JSON]) == {"order_in": {"x": 2}}
    assert parse_inputs(['order_in={"a=b": 1}'], [START_JSON]) == {"order_in": {"a=b": 1}}


def test_json_from_file_and_document_path(tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text('{"x": 3}')
    (tmp_path / "doc.pdf").write_bytes(b"%PDF-1.4")
    parsed = parse_inputs([f"order_in=@{tmp_path / 'in.json'}", f"invoice={tmp_path / 'doc.pdf'}"],
                          [START_JSON, START_DOC])
    assert parsed == {"order_in": {"x": 3}, "invoice": str(tmp_path / "doc.pdf")}
    assert parse_inputs([], []) == {}


def test_non_json_value_says_how_to_pass_json() -> None:
    with pytest.raises(InputError) as err:
        parse_inputs(["order_in=hello"], [START_JSON])
    assert str(err.value) == (
        "--input order_in=hello: not valid JSON (Expecting value: line 1 column 1). "
        "Pass JSON like '{\"a\": 1}' or @file.json")


@pytest.mark.parametrize("raw, fragment", [
    (["order_in=@/no/such.json"], "file not found: /no/such.json"),
    (["invoice=/no/such.pdf"], "file not found: /no/such.pdf"),
    (["nope=1"], "'nope' is not a start block"),
    (['{"x": 1}'], "name the one this value is for"),
    (["order_in=1", "order_in=2"], "given twice"),
    (["order_in=1"], "No input for start block 'invoice' (start_document: --input invoice=PATH)"),
])
def test_bad_inputs_name_the_problem(raw: list[str], fragment: str) -> None:
    with pytest.raises(InputError, match="--input") as err:
        parse_inputs(raw, [START_JSON, START_DOC])
    assert fragment in str(err.value)


def test_malformed_json_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(InputError, match="bad.json is not valid JSON"):
        parse_inputs([f"@{bad}"], [START_JSON])


# --------------------------------------------------------------------------- helpers


def test_exit_codes_follow_the_spec() -> None:
    assert [exit_code_for(s) for s in ("completed", "error", "cancelled", "awaiting_review")] \
        == [0, 1, 1, 3]


def test_db_resolution_prefers_flag_then_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_db(None) == "stepwell.db"
    monkeypatch.setenv("STEPWELL_DB", "/tmp/other.db")
    assert resolve_db(None) == "/tmp/other.db"
    assert resolve_db(Path("x.db")) == "x.db"
    assert db_flag("/tmp/other.db") == "" and db_flag("x.db") == " --db x.db"


def test_rendering_helpers() -> None:
    step = {"step_id": "each_iter_1_leaf", "block_type": "function",
            "lifecycle": {"status": "skipped", "reason": "upstream_error: boom"},
            "loop_containers": [{"container_id": "each", "iteration": 1}], "duration_ms": 1500}
    assert loop_label(step) == "each[1]"
    assert step_note(step) == "upstream_error: boom"
    assert fmt_ms(12) == "12 ms" and fmt_ms(1500) == "1.50 s" and fmt_ms(125_000) == "2m 05s"
    wide, narrow = steps_table([step]).table(200), steps_table([step]).table(50)
    assert [c.header for c in wide.columns] == [
        "step_id", "type", "loop", "status", "duration", "reason/error"]
    assert [c.header for c in narrow.columns] == ["step_id", "status", "duration",
                                                  "reason/error"]


def test_live_view_keeps_unfinished_and_failed_steps_when_trimming() -> None:
    steps = [{"step_id": f"s{i}", "lifecycle": {"status": "completed"}} for i in range(20)]
    steps[2]["lifecycle"] = {"status": "error", "message": "boom"}
    steps[5]["lifecycle"] = {"status": "running"}
    shown = [s["step_id"] for s in visible_steps(steps, 5)]
    assert shown == ["s2", "s5", "s17", "s18", "s19"]


def test_live_view_is_fed_by_the_run_events_not_by_reading_the_database(
        workflow: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine import Engine, cli_live
    from store.client import Client

    boards: list[cli_live.LiveSteps] = []

    class Recording(cli_live.LiveSteps):
        def __init__(self) -> None:
            super().__init__()
            boards.append(self)

    def no_polling(*_: object, **__: object) -> None:
        raise AssertionError("the live view read the database")

    monkeypatch.setattr(cli_live, "LiveSteps", Recording)
    monkeypatch.setattr(Client, "__init__", no_polling)
    with Engine(tmp_path / "live.db") as engine:
        prepared = engine.prepare(engine.compile(workflow), {"order_in": {"x": 2}})
        result = cli_live.run_live(engine, prepared)
    assert result.ok
    [board] = boards
    rows = {row["step_id"]: row for row in board.steps()}
    assert list(rows) == ["order_in", "double", "done"]
    assert {row["lifecycle"]["status"] for row in rows.values()} == {"completed"}
    assert rows["double"]["block_type"] == "function"
    assert rows["double"]["duration_ms"] is not None


def test_run_compiles_the_workflow_once(workflow: Path, db: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from engine import core

    calls: list[str] = []
    real = core.compile_workflow

    def counting(wf: Any, registry: Any) -> Any:
        calls.append(wf.name)
        return real(wf, registry)

    monkeypatch.setattr(core, "compile_workflow", counting)
    code, run = run_json(workflow, db, '{"x": 2}')
    assert code == 0 and run["lifecycle"]["status"] == "completed"
    assert calls == ["doubler"]


# --------------------------------------------------------------------------- no engine needed


def test_help_lists_the_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for name in ("run", "validate", "graph", "runs", "steps"):
        assert name in result.stdout


def test_missing_workflow_file_exits_2(tmp_path: Path, db: Path) -> None:
    result = invoke("run", tmp_path / "nope.yaml", "--db", db)
    assert result.exit_code == 2
    assert "Workflow file not found" in result.stderr and "nope.yaml" in result.stderr
    assert not db.exists()


def test_read_commands_without_a_database_exit_2(tmp_path: Path) -> None:
    result = invoke("runs", "list", "--db", tmp_path / "none.db")
    assert result.exit_code == 2
    assert "No stepwell database at" in result.stderr
    assert not (tmp_path / "none.db").exists()


# --------------------------------------------------------------------------- validate / graph


def test_validate_valid_workflow(workflow: Path) -> None:
    result = invoke("validate", workflow)
    assert result.exit_code == 0, result.output
    assert "valid: 3 blocks, 2 edges" in result.stdout
    data = json.loads(invoke("validate", workflow, "--json").stdout)
    assert data == {"is_valid": True, "diagnostics": []}


def test_validate_reports_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(INVALID_YAML)
    result = invoke("validate", path, "--json")
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["is_valid"] is False
    codes = {d["code"] for d in data["diagnostics"]}
    assert len(codes) >= 3, codes
    assert "MISSING_USER_DECLARED_SCHEMA" in codes
    assert all(d["yaml_path"] and d["message"] for d in data["diagnostics"])
    table = invoke("validate", path)
    assert table.exit_code == 2
    assert "MISSING_USER_DECLARED_SCHEMA" in table.stdout and "Traceback" not in table.output
    assert "is invalid" in table.stderr


def test_malformed_yaml_exits_2_without_traceback(tmp_path: Path, db: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("spec:\n  blocks: [unclosed\n    - : :\n")
    for args in (("validate", path), ("run", path, "--db", db), ("graph", path)):
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output and "Error:" in result.stderr
    assert json.loads(invoke("validate", path, "--json").stdout)["is_valid"] is False
    assert not db.exists()


def test_graph_prints_mermaid(workflow: Path, tmp_path: Path) -> None:
    result = invoke("graph", workflow)
    assert result.exit_code == 0, result.output
    assert "double" in result.stdout and "order_in" in result.stdout
    out = tmp_path / "g.mmd"
    assert invoke("graph", workflow, "--output", out).exit_code == 0
    assert out.read_text() == result.stdout


# --------------------------------------------------------------------------- run


def test_run_json_completed(workflow: Path, db: Path) -> None:
    code, run = run_json(workflow, db, '{"x": 21}')
    assert code == 0, run
    assert run["lifecycle"]["status"] == "completed"
    assert run["id"].startswith("run_")
    assert run["inputs"]["json_data"] == {"order_in": {"x": 21}}


@pytest.mark.parametrize("durability", ["process", "full", "scratch"])
def test_run_opens_its_database_with_the_durability_asked(
        workflow: Path, db: Path, durability: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.core

    opened: list[int] = []

    class Engine(engine.core.Engine):
        def close(self) -> None:  # the connection's setting, read before it closes
            opened.append(self.store.db.conn.execute("PRAGMA synchronous").fetchone()[0])
            super().close()

    monkeypatch.setattr(engine.core, "Engine", Engine)
    result = invoke("run", workflow, "--db", db, "--input", '{"x": 1}', "--json",
                    "--durability", durability)
    assert result.exit_code == 0, result.stderr
    assert opened[:1] == [{"process": 1, "full": 2, "scratch": 0}[durability]]


def test_scratch_is_offered_to_new_runs_only(workflow: Path, db: Path) -> None:
    """A scratch connection's checkpoints skip fsync for every writer's commits: the
    commands that continue a database's runs do not offer it."""
    code, run = run_json(workflow, db, '{"x": 1}')
    assert code == 0
    for args in (["runs", "resume", run["id"]], ["worker", "--idle-exit", "0"]):
        refused = invoke(*args, "--db", db, "--durability", "scratch")
        assert refused.exit_code == 2 and "scratch" in refused.stderr, refused.stderr


def test_run_invalid_workflow_exits_2_with_diagnostics(tmp_path: Path, db: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(INVALID_YAML)
    result = invoke("run", path, "--db", db, "--input", "{}")
    assert result.exit_code == 2
    assert "MISSING_USER_DECLARED_SCHEMA" in result.stderr and "Traceback" not in result.output
    assert not db.exists()


@pytest.mark.parametrize("value, fragment", [
    ("hello", "--input order_in=hello: not valid JSON (Expecting value: line 1 column 1)"),
    ("@{tmp}/missing.json", "file not found: {tmp}/missing.json"),
    ("other=1", "'other' is not a start block"),
])
def test_bad_input_exits_2(workflow: Path, db: Path, tmp_path: Path, value: str,
                           fragment: str) -> None:
    result = invoke("run", workflow, "--db", db, "--input", value.format(tmp=tmp_path))
    assert result.exit_code == 2
    assert fragment.format(tmp=tmp_path) in result.stderr
    assert not db.exists()


def test_missing_input_exits_2(workflow: Path, db: Path) -> None:
    result = invoke("run", workflow, "--db", db)
    assert result.exit_code == 2
    assert "order_in" in result.stderr and "--input" in result.stderr


def test_failing_run_exits_1_and_names_the_failing_step(tmp_path: Path, db: Path) -> None:
    path = tmp_path / "divide.yaml"
    path.write_text(workflow_yaml(DIVIDING_CODE))
    result = invoke("run", path, "--db", db, "--input", '{"x": 0}')
    assert result.exit_code == 1, result.output
    assert "error" in result.stdout
    assert "double (function)" in result.stdout and "ZeroDivisionError" in result.stdout
    assert "upstream_error: double" in result.stdout  # the end block's skip reason
    assert "stepwell steps get double --run run_" in result.stdout
    code, run = run_json(path, db, '{"x": 0}')
    assert code == 1
    assert run["lifecycle"]["status"] == "error"
    assert run["lifecycle"]["failing_step_id"] == "double"


def test_quiet_prints_only_the_run_id(workflow: Path, db: Path) -> None:
    result = invoke("run", workflow, "--db", db, "-q", "-i", '{"x": 1}')
    assert result.exit_code == 0
    assert result.stdout.strip().startswith("run_") and len(result.stdout.split()) == 1


def test_read_only_db_folder_exits_2(workflow: Path, tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):  # root ignores permissions: use a folder no one writes
            folder = Path("/proc/self")
        db = folder / "stepwell.db"
        result = invoke("run", workflow, "--db", db, "--input", '{"x": 1}')
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert str(db) in result.stderr or str(folder) in result.stderr
        assert not db.exists()
    finally:
        (tmp_path / "locked").chmod(0o755)


def test_db_under_a_file_exits_2(workflow: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    result = invoke("run", workflow, "--db", blocker / "x.db", "--input", '{"x": 1}')
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "Error:" in result.stderr


# --------------------------------------------------------------------------- runs / steps


@pytest.fixture
def finished_run(workflow: Path, db: Path) -> str:
    code, run = run_json(workflow, db, '{"x": 4}')
    assert code == 0, run
    return str(run["id"])


def test_steps_list_table_and_json(finished_run: str, db: Path) -> None:
    result = invoke("steps", "list", finished_run, "--db", db)
    assert result.exit_code == 0, result.output
    for step_id in ("order_in", "double", "done"):
        assert step_id in result.stdout
    assert "completed" in result.stdout and "function" in result.stdout
    page = json.loads(invoke("steps", "list", finished_run, "--db", db, "--json").stdout)
    assert [s["step_id"] for s in page["data"]] == ["order_in", "double", "done"]
    assert page["list_metadata"]["after"] is None
    only = json.loads(invoke("steps", "list", finished_run, "--db", db, "--json",
                             "--type", "function").stdout)
    assert [s["step_id"] for s in only["data"]] == ["double"]


def test_steps_list_pages_with_a_cursor(finished_run: str, db: Path) -> None:
    first = invoke("steps", "list", finished_run, "--db", db, "--limit", "2")
    assert "More steps:" in first.stdout and "--after double" in first.stdout
    rest = json.loads(invoke("steps", "list", finished_run, "--db", db, "--after", "double",
                             "--json").stdout)
    assert [s["step_id"] for s in rest["data"]] == ["done"]


def test_steps_get_shows_payloads(finished_run: str, db: Path) -> None:
    result = invoke("steps", "get", "double", "--run", finished_run, "--db", db)
    assert result.exit_code == 0, result.output
    assert "handle_outputs" in result.stdout and '"y": 8' in result.stdout
    step = json.loads(invoke("steps", "get", "double", "--run", finished_run, "--db", db,
                             "--json").stdout)
    assert step["handle_outputs"]["output-json-0"]["data"] == {"y": 8}
    assert step["handle_inputs"]["input-json-0"]["data"] == {"x": 4}
    assert step["lifecycle"] == {"status": "completed"}
    assert "artifact record" in result.stdout and "function_invocation" in result.stdout


def test_runs_list_and_get(finished_run: str, db: Path) -> None:
    listed = invoke("runs", "list", "--db", db)
    assert listed.exit_code == 0 and finished_run in listed.stdout
    page = json.loads(invoke("runs", "list", "--db", db, "--json", "--status", "error").stdout)
    assert page["data"] == []
    got = invoke("runs", "get", finished_run, "--db", db)
    assert got.exit_code == 0 and "3 completed" in got.stdout
    assert json.loads(invoke("runs", "get", finished_run, "--db", db, "--json").stdout)["id"] \
        == finished_run


def test_unknown_ids_exit_2(finished_run: str, db: Path) -> None:
    for args in (("runs", "get", "run_nope"), ("steps", "list", "run_nope"),
                 ("steps", "get", "nope", "--run", finished_run)):
        result = invoke(*args, "--db", db)
        assert result.exit_code == 2, args
        assert "Error:" in result.stderr and "Traceback" not in result.output


def test_env_var_chooses_the_database(finished_run: str, db: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPWELL_DB", str(db))
    assert finished_run in invoke("runs", "list").stdout


# --------------------------------------------------------------------------- real processes


def test_subprocess_run_then_steps_list(workflow: Path, tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text('{"x": 5}')
    db = tmp_path / "proc.db"
    proc = stepwell("run", workflow, "--input", f"order_in=@{tmp_path / 'in.json'}", "--db", db)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    run_id = next(word for word in proc.stdout.split() if word.startswith("run_"))
    assert "completed" in proc.stdout and '"y": 10' in proc.stdout
    assert f"stepwell steps list {run_id} --db {db}" in proc.stdout
    steps = stepwell("steps", "list", run_id, "--db", db)
    assert steps.returncode == 0, steps.stderr
    assert "double" in steps.stdout and "completed" in steps.stdout


def test_subprocess_exit_codes(tmp_path: Path) -> None:
    failing = tmp_path / "divide.yaml"
    failing.write_text(workflow_yaml(DIVIDING_CODE))
    assert stepwell("run", failing, "-i", '{"x": 0}', cwd=tmp_path).returncode == 1
    assert (tmp_path / "stepwell.db").exists()  # the default database is ./stepwell.db
    bad = stepwell("run", failing, "-i", "not json", cwd=tmp_path)
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr
    assert "Traceback" not in bad.stderr
    ok = stepwell("run", failing, "-i", '{"x": 5}', "--json", cwd=tmp_path)
    assert ok.returncode == 0
    assert json.loads(ok.stdout)["lifecycle"]["status"] == "completed"


# --------------------------------------------------------------------------- plain runs

PLAIN_RUNS = [
    ["run", "wf.yaml"],
    ["run", "wf.yaml", "--input", '{"x": 1}', "-i", "b=2", "--db", "x.db", "--json"],
    ["run", "--quiet", "wf.yaml", "--concurrency", "3", "--durability", "full", "--wait",
     "--all", "--blocks", "a:B", "--blocks", "c:D", "--executor", "local", "--detach"],
    ["run", "wf.yaml", "-q", "-c", "01", "--db", ""],
    ["run", "wf.yaml", "--durability", "scratch"],
]
NOT_PLAIN = [
    [], ["run"], ["run", "--help"], ["runs", "list"], ["run", "wf.yaml", "--db=x.db"],
    ["run", "wf.yaml", "--db", "a", "--db", "b"], ["run", "wf.yaml", "--json", "--json"],
    ["run", "a.yaml", "b.yaml"], ["run", "wf.yaml", "--concurrency", "0"],
    ["run", "wf.yaml", "-c", "x"], ["run", "wf.yaml", "--durability", "FULL"],
    ["run", "wf.yaml", "--input"], ["run", "wf.yaml", "--input", "-x"], ["run", "-qa", "w"],
    ["run", "wf.yaml", "--", "x"], ["run", "wf.yaml", "--nope"],
]


@pytest.mark.parametrize("args", PLAIN_RUNS)
def test_plain_run_is_parsed_as_the_typer_app_parses_it(
        args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from engine import cli, cli_run

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(cli_run, "run_command", lambda workflow, **kw: seen.append(
        {"workflow": workflow, **kw}) or 0)
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    expected = {k: list(v) if k in ("inputs", "blocks") else v for k, v in seen[0].items()}
    assert cli.plain_run_arguments(args) == expected


@pytest.mark.parametrize("args", NOT_PLAIN)
def test_anything_else_goes_to_the_typer_app(args: list[str]) -> None:
    from engine.cli import plain_run_arguments

    assert plain_run_arguments(args) is None


def test_completion_goes_to_the_typer_app(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.cli import plain_run_arguments

    monkeypatch.setenv("_STEPWELL_COMPLETE", "complete_bash")
    assert plain_run_arguments(["run", "wf.yaml"]) is None


def test_plain_run_loads_neither_typer_nor_rich_and_collects_garbage(workflow: Path, tmp_path: Path) -> None:
    argv = ["stepwell", "run", str(workflow), "-i", '{"x": 2}', "--json"]
    code = (f"import sys; sys.argv = {argv!r}; from engine.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
            "import gc\n"
            "print(gc.isenabled(), gc.get_freeze_count() > 1000, code, "
            "sorted({m.split('.')[0] for m in sys.modules} & "
            "{'typer', 'rich', 'click', 'networkx', 'httpx', 'fastapi', 'sqlalchemy'}), "
            "sorted(set(sys.modules) & {'store.shapes', 'store.api', 'blocks.conditions', "
            "'engine.contracts.records', 'engine.contracts.outline'}), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # the collector is back on; what the start imported is frozen out of its sight; the
    # read models, review records and condition parser of other commands stay unloaded
    assert proc.stderr.strip().endswith("True True 0 [] []"), proc.stderr
    assert json.loads(proc.stdout)["lifecycle"]["status"] == "completed"


def test_plain_run_reports_errors_as_the_typer_app_does(tmp_path: Path) -> None:
    missing = stepwell("run", tmp_path / "missing.yaml", cwd=tmp_path)
    assert missing.returncode == 2 and "Workflow file not found" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.parametrize("extra", [["--executor", "dask://127.0.0.1:1"], ["--wait"]])
@pytest.mark.parametrize("plain", [True, False], ids=["plain", "typer"])
def test_detach_refuses_options_a_queued_run_cannot_honour(
        workflow: Path, db: Path, extra: list[str], plain: bool) -> None:
    """--detach only queues the run: an executor or --wait would be silently dropped."""
    db_arg = ["--db", str(db)] if plain else [f"--db={db}"]  # '--db=' takes the typer path
    done = stepwell("run", workflow, "--input", '{"name": "x"}', *db_arg, "--detach", *extra)
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "--detach" in done.stderr or "queued run" in done.stderr
    assert ("stepwell worker --executor" in done.stderr) == (extra[0] == "--executor")
    assert not db.exists()  # nothing was queued


def test_a_lone_surrogate_in_the_outputs_is_printed_not_a_crash(tmp_path: Path) -> None:
    # the function returns a string holding a lone surrogate (no UTF-8 text holds one):
    # the summary prints U+FFFD, as the database stores it, and the run exits 0
    code = 'def transform(input_data):\n    return {"y": "a\\ud83e"}\n'
    path = tmp_path / "lone.yaml"
    path.write_text(workflow_yaml(code).replace("{y: {type: number}}", "{y: {type: string}}"))
    done = stepwell("run", path, "--db", tmp_path / "lone.db", "--input", '{"x": 2}')
    assert done.returncode == 0, done.stderr
    assert '"y": "a\ufffd"' in done.stdout and "Traceback" not in done.stderr
