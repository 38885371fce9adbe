"""A one-step ``stepwell run --json`` imports only what such a run needs (bench W4).

Every module below costs a cold start milliseconds and serves other commands or other
workflows only, so it is imported where it is used. The run happens in a fresh
interpreter: what this test session imported does not count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.coldstart import ONE_STEP

ROOT = Path(__file__).resolve().parents[2]

#: The workflow bench W4 times.
ONE_STEP_YAML = ONE_STEP

ONE_STEP_JSON = json.dumps({
    "apiVersion": "workflows.retab.com/v1alpha2", "kind": "Workflow",
    "metadata": {"name": "one step"},
    "spec": {"blocks": {"start": {"type": "start_json"}}, "edges": []},
})

#: Modules a one-step run must not import, with what needs them instead.
NOT_ON_THE_RUN_PATH = {
    "regex": "matches_regex conditions and assertions (engine.contracts.bounded)",
    "difflib": "'did you mean' hints for unknown block types and dangling edges",
    "rich": "tables and the live view; --json prints plain JSON",
    "typer": "the command tree; a plain run is parsed by engine.cli",
    "click": "the command tree",
    "engine.cli_app": "the command tree",
    "engine.cli_live": "the live view of a run on a terminal",
    "engine.cli_render": "tables and summaries",
    "blocks.conditions": "routing blocks' condition parser",
    "store.api": "the read API of the HTTP server and the SDK",
    "store.shapes": "the pydantic read models",
    "engine.contracts.records": "review and workflow records",
    "engine.contracts.reads": "read filters, pages and step/review records (a run reads "
                              "back its own record only: engine.contracts.run_record)",
    "sqlalchemy": "migrations; the schema is executed from its SQL rendering",
    "httpx": "HTTP blocks and the SDK",
    "fastapi": "stepwell serve",
    "jsonschema": "output schema checks (blocks.schemas imports it on first use)",
    "fastjsonschema": "the compiled fast path of those checks",
    "pypdf": "document blocks (blocks.pdf imports it on first use)",
}


def _imported_by_a_run(tmp_path: Path, workflow: Path) -> set[str]:
    """The modules a ``stepwell run WORKFLOW --input '{}' --json`` process ends with."""
    listing = tmp_path / "modules.json"
    argv = ["stepwell", "run", str(workflow), "--input", "{}", "--db",
            str(tmp_path / "cold.db"), "--json"]
    code = (f"import json, sys; sys.argv = {argv!r}\n"
            "from engine.cli import main\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
            f"open({str(listing)!r}, 'w').write(json.dumps([code, sorted(sys.modules)]))\n")
    env = {k: v for k, v in os.environ.items() if k != "STEPWELL_DB"}
    # this checkout first, whatever the working directory of the run
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["lifecycle"]["status"] == "completed"
    exit_code, modules = json.loads(listing.read_text())
    assert exit_code == 0
    return set(modules)


def test_a_one_step_yaml_run_imports_only_what_it_needs(tmp_path: Path) -> None:
    workflow = tmp_path / "one.yaml"
    workflow.write_text(ONE_STEP_YAML)
    modules = _imported_by_a_run(tmp_path, workflow)
    loaded = {name: why for name, why in NOT_ON_THE_RUN_PATH.items() if name in modules}
    assert not loaded, f"a one-step run imported modules it does not need: {loaded}"
    assert "engine.core" in modules and "yaml" in modules  # the check sees the run


def test_a_one_step_json_run_does_not_parse_yaml_either(tmp_path: Path) -> None:
    workflow = tmp_path / "one.json"
    workflow.write_text(ONE_STEP_JSON)
    modules = _imported_by_a_run(tmp_path, workflow)
    unneeded = {**NOT_ON_THE_RUN_PATH, "yaml": "YAML workflows"}
    loaded = {name: why for name, why in unneeded.items() if name in modules}
    assert not loaded, f"a one-step run imported modules it does not need: {loaded}"
