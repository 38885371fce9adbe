"""Every shell command and Python snippet in README.md and docs/*.md runs, so the docs
cannot rot.

Each document runs in a fresh directory (with ``examples/`` linked in), its blocks in
order, so a later block sees what an earlier one wrote (``stepwell runs list`` after the
quickstart). A ``bash`` block runs with ``bash -e``; a ``python`` block runs as a script,
or, when its first line is ``# test_NAME.py``, as a pytest module. A block may carry one
marker, an HTML comment on the line before its fence:

* ``<!-- docs-test: skip: REASON -->``: not run (the reason is required);
* ``<!-- docs-test: exit N -->``: the block must exit with ``N``;
* ``<!-- docs-test: server -->``: runs against ``stepwell serve`` started for it (the
  placeholders ``sk_local_...`` and ``http://127.0.0.1:8000`` become its key and URL).

Upper-case placeholders are filled from the document's database before a block runs:
``RUN_ID`` (the newest run), ``REVIEW_ID`` (the newest review).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = {"bash": "bash", "sh": "bash", "python": "python"}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
MARKER = re.compile(r"<!--\s*docs-test:\s*(.*?)\s*-->\s*$")
PLACEHOLDERS = ("RUN_ID", "REVIEW_ID")
TIMEOUT_S = 300
API_KEY = "sk_local_docs_test"


@dataclass(frozen=True, slots=True, kw_only=True)
class Snippet:
    """One runnable fenced block of a document."""

    path: Path
    line: int
    lang: str
    code: str
    marker: str

    @property
    def where(self) -> str:
        """``docs/x.md:12`` for messages."""
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def snippets(path: Path) -> list[Snippet]:
    """The runnable blocks of ``path``, in order, with their markers."""
    text = path.read_text(encoding="utf-8")
    found: list[Snippet] = []
    for match in FENCE.finditer(text):
        lang = RUNNABLE.get(match.group(1))
        if lang is None:
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(before)
        found.append(Snippet(path=path, line=text[: match.start()].count("\n") + 1, lang=lang,
                             code=match.group(2), marker=marker.group(1) if marker else ""))
    return found


def environment(workdir: Path) -> dict[str, str]:
    """The environment snippets run in: the project importable, no inherited database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPWELL_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    env["HOME"] = str(workdir)
    env["COLUMNS"] = "120"
    return env


def fill_placeholders(code: str, workdir: Path, env: dict[str, str]) -> str:
    """``RUN_ID`` / ``REVIEW_ID`` replaced by the newest run / review of the directory."""
    commands = {"RUN_ID": ["runs", "list", "--limit", "1", "--json"],
                "REVIEW_ID": ["reviews", "list", "--json"]}
    for name in PLACEHOLDERS:
        if not re.search(rf"\b{name}\b", code):
            continue
        done = subprocess.run([sys.executable, "-m", "engine.cli", *commands[name]],
                              cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=60, check=True)
        data = json.loads(done.stdout)["data"]
        assert data, f"{name} is used but the document's database has none yet"
        code = re.sub(rf"\b{name}\b", data[0]["id"], code)
    return code


@contextmanager
def served(workdir: Path, env: dict[str, str]) -> Iterator[str]:
    """``stepwell serve`` on a free loopback port; yields its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "--port", str(port),
         "--log-level", "warning"], cwd=workdir, env={**env, "STEPWELL_API_KEYS": API_KEY},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run_snippet(snippet: Snippet, workdir: Path, env: dict[str, str]) -> None:
    """Run one block in ``workdir``; fail with its output when it misbehaves."""
    expected = 0
    if snippet.marker.startswith("exit "):
        expected = int(snippet.marker.split()[1])
    code = fill_placeholders(snippet.code, workdir, env)
    if snippet.marker == "server":
        with served(workdir, env) as url:
            code = code.replace("sk_local_...", API_KEY).replace("http://127.0.0.1:8000", url)
            return _execute(snippet, code, workdir, env, expected)
    return _execute(snippet, code, workdir, env, expected)


def _execute(snippet: Snippet, code: str, workdir: Path, env: dict[str, str],
             expected: int) -> None:
    first = code.splitlines()[0] if code.strip() else ""
    if snippet.lang == "bash":
        argv = ["bash", "-e", "-o", "pipefail", "-c", code]
    elif re.fullmatch(r"#\s*(test_\w+\.py)\s*", first):
        name = first.lstrip("# ").strip()
        (workdir / name).write_text(code, encoding="utf-8")
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name]
    else:
        script = workdir / f"snippet_{snippet.line}.py"
        script.write_text(code, encoding="utf-8")
        argv = [sys.executable, script.name]
    done = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=False)
    assert done.returncode == expected, (
        f"{snippet.where} exited {done.returncode} (expected {expected})\n--- code\n{code}"
        f"\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}")


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_snippet_runs(path: Path, tmp_path: Path) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = environment(tmp_path)
    for snippet in snippets(path):
        if snippet.marker.startswith("skip"):
            assert snippet.marker.partition(":")[2].strip(), (
                f"{snippet.where}: a skipped block says why: <!-- docs-test: skip: REASON -->")
            continue
        run_snippet(snippet, tmp_path, env)


def test_markers_are_known() -> None:
    for path in DOCUMENTS:
        for snippet in snippets(path):
            marker = snippet.marker
            assert (not marker or marker == "server" or re.fullmatch(r"exit \d+", marker)
                    or marker.startswith("skip:")), f"{snippet.where}: unknown marker {marker!r}"


def test_the_readme_cli_table_lists_every_command() -> None:
    from engine.cli import cli_command

    def paths(command: object, prefix: tuple[str, ...] = ()) -> list[str]:
        subs = getattr(command, "commands", {})
        if not subs:
            return [" ".join(prefix)]
        return [p for name, sub in subs.items() for p in paths(sub, (*prefix, name))]

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("## CLI"):].split("\n\n")[1]
    rows = [line for line in table.splitlines() if line.startswith("| `stepwell")]
    for path in paths(cli_command()):
        named = any(f"`stepwell {path}" in row or (" " in path and f"`{path}" in row)
                    for row in rows)
        assert named, f"README.md's CLI table has no row for `stepwell {path}`"
