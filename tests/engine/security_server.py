"""A real ``stepwell serve`` with two organizations, and workflows to attack it with.

:class:`SharedServer` starts the CLI in a subprocess on a free loopback port with keys for
``org_a`` and ``org_b``, a per-organization secrets file, ``127.0.0.2`` allowlisted for
``api_call`` (the test's own HTTP servers listen there) and the functions of
:mod:`tests.engine.security_targets` allowlisted for ``python:``. Every byte the tests
send goes to loopback addresses.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

ROOT = Path(__file__).resolve().parents[2]
KEY_A = "sk_org_a_" + "a1" * 16
KEY_B = "sk_org_b_" + "b2" * 16
SECRET_A = "org-a-secret-value-7d1f"
SECRET_B = "org-b-secret-value-93c2"
SERVER_ENV_SECRET = "server-env-secret-55aa"
TERMINAL = ("completed", "error", "cancelled")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on at ``host``."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Org:
    """HTTP calls with one organization's key."""

    def __init__(self, url: str, key: str) -> None:
        self.key = key
        self.http = httpx.Client(base_url=url, timeout=60, headers={"Api-Key": key})

    def apply(self, yaml_text: str) -> httpx.Response:
        """POST spec/apply."""
        return self.http.post("/v1/workflows/spec/apply", json={"yaml_definition": yaml_text})

    def workflow(self, yaml_text: str) -> str:
        """Apply and return the workflow id (the apply must succeed)."""
        response = self.apply(yaml_text)
        assert response.status_code == 200, response.text
        return str(response.json()["workflow_id"])

    def start(self, workflow_id: str, **body: Any) -> httpx.Response:
        """POST runs."""
        return self.http.post("/v1/workflows/runs", json={"workflow_id": workflow_id, **body})

    def run(self, yaml_text: str, *, wait: bool = True, **body: Any) -> dict[str, Any]:
        """Apply, start, and (by default) wait for a terminal status."""
        response = self.start(self.workflow(yaml_text), **body)
        assert response.status_code == 200, response.text
        run = response.json()
        return self.wait(run["id"]) if wait else dict(run)

    def get_run(self, run_id: str) -> dict[str, Any]:
        """GET one run."""
        response = self.http.get(f"/v1/workflows/runs/{run_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait(self, run_id: str, statuses: tuple[str, ...] = TERMINAL,
             timeout: float = 90) -> dict[str, Any]:
        """Poll until the run's status is one of ``statuses``."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.get_run(run_id)
            if run["lifecycle"]["status"] in statuses:
                return run
            assert time.monotonic() < deadline, run
            time.sleep(0.05)

    def step(self, run_id: str, step_id: str) -> dict[str, Any]:
        """GET one step of a run."""
        response = self.http.get(f"/v1/workflows/steps/{step_id}", params={"run_id": run_id})
        assert response.status_code == 200, response.text
        return dict(response.json())

    def alive(self) -> None:
        """The server answers this organization with 2xx."""
        assert self.http.get("/v1/workflows/runs").status_code == 200


class SharedServer:
    """``stepwell serve`` for two organizations (see the module docstring).

    Args:
        workdir: where the database, secrets file and logs go.
        extra_args: more ``stepwell serve`` options.
    """

    def __init__(self, workdir: Path, *extra_args: str) -> None:
        self.workdir = workdir
        self.db = workdir / "shared.db"
        self.secrets = workdir / "secrets.json"
        self.secrets.write_text(json.dumps({"org_a": {"A_TOKEN": SECRET_A},
                                            "org_b": {"B_TOKEN": SECRET_B}}))
        self.secrets.chmod(0o600)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = extra_args
        self.log = workdir / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The serve command line."""
        return [sys.executable, "-m", "engine.cli", "serve", "--db", str(self.db),
                "--port", str(self.port), "--log-level", "info", "--secrets", str(self.secrets),
                "--egress-allow", "127.0.0.2",
                "--allow-python", "tests.engine.security_targets:*", *self.extra_args]

    def environment(self) -> dict[str, str]:
        """The server's environment: two keys, and a secret that must never leak."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEPWELL_")}
        env["STEPWELL_API_KEYS"] = f"{KEY_A}:org_a,{KEY_B}:org_b"
        env["PROVIDER_SECRET"] = SERVER_ENV_SECRET
        return env

    def start(self) -> Self:
        """Start the server and wait until it answers."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.command(), cwd=ROOT, env=self.environment(),
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                httpx.get(f"{self.url}/openapi.json", timeout=1)
                return self
            except httpx.TransportError:
                assert time.monotonic() < deadline, "stepwell serve did not come up"
                time.sleep(0.1)

    def stop(self, sig: int = signal.SIGINT) -> int:
        """Stop the server with ``sig`` and return its exit status."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.proc = None

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.proc is not None
        return self.proc.pid

    def rss_mb(self) -> float:
        """The server's resident memory in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def org(self, which: str) -> Org:
        """An HTTP client for ``a`` or ``b``."""
        return Org(self.url, KEY_A if which == "a" else KEY_B)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.proc is not None:
            self.stop()


# ----------------------------------------------------------------------------- workflows


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line if line else line for line in text.splitlines())


def one_block(name: str, block_type: str, config: dict[str, Any], *,
              start: str = "start_json") -> str:
    """``start -> work -> end`` with ``work`` of ``block_type`` configured by ``config``."""
    handle = "output-json-0" if start == "start_json" else "output-file-0"
    return f"""\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: {json.dumps(name)}
spec:
  blocks:
    data: {{type: {start}}}
    work:
      type: {block_type}
      config:
{_indent(json.dumps(config, indent=2), 8)}
    done: {{type: end}}
  edges:
    - {{source: {{block: data, handle: {handle}}}, target: {{block: work}}}}
    - {{source: {{block: work, handle: output-json-0}}, target: {{block: done, handle: input-json-0}}}}
"""


def code_workflow(code: str, *, schema: dict[str, Any] | None = None, **config: Any) -> str:
    """A ``function`` block running ``code`` in a worker."""
    return one_block("code", "function", {
        "code": code, "output_schema": schema or {"type": "object"}, **config})


def python_workflow(reference: str, **config: Any) -> str:
    """A ``function`` block calling ``reference`` in-process."""
    return one_block("python", "function", {
        "python": reference, "output_schema": {"type": "object"}, **config})


def api_workflow(url: str, **config: Any) -> str:
    """An ``api_call`` block (GET ``url`` by default)."""
    return one_block("api", "api_call", {"method": "GET", "url": url, **config})


def parse_workflow() -> str:
    """``start_document -> parse -> end``."""
    return one_block("parse", "parse", {}, start="start_document")


# ----------------------------------------------------------------------------- upstream


class Upstream:
    """An HTTP server on a loopback address for ``api_call`` to reach, recording requests.

    Paths: ``/echo`` answers the request's headers as JSON; ``/redirect?to=URL&status=N``
    redirects; ``/big?mb=N`` answers N MB; ``/limited`` answers 429 with
    ``Retry-After: 1e9`` the first time, then ``{"ok": true}``.

    Args:
        host: the address to listen on (``127.0.0.2`` is allowlisted by SharedServer).
    """

    def __init__(self, host: str = "127.0.0.2") -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        self.requests: list[dict[str, Any]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                upstream.requests.append({"path": parts.path, "headers": dict(self.headers)})
                if parts.path == "/redirect":
                    self.send_response(int(query.get("status", "302")))
                    self.send_header("Location", query["to"])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if parts.path == "/big":
                    size = int(query.get("mb", "30")) * 1024 * 1024
                    self.send_response(200)
                    self.send_header("Content-Length", str(size))
                    self.end_headers()
                    chunk = b"x" * 65536
                    try:
                        for _ in range(size // len(chunk)):
                            self.wfile.write(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                limited = parts.path == "/limited" and sum(
                    1 for r in upstream.requests if r["path"] == "/limited") == 1
                status = 429 if limited else 200
                body = json.dumps({"ok": True} if parts.path == "/limited" else
                                  {"headers": dict(self.headers)}).encode()
                self.send_response(status)
                if limited:
                    self.send_header("Retry-After", "1e9")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
