"""A real ``stepwell serve`` for two organizations, and the Retab SDK pointed at it.

:class:`ServeProcess` starts the CLI in a subprocess on a free loopback port with one key
per organization (``org_a``, ``org_b``), so every test talks to the server as a user
would: over HTTP, through the unmodified ``retab`` SDK. Two organizations make it a
shared server (function code runs in confined workers). The model provider is the
offline one. Workflows used by several test modules are here too.
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
from retab import Retab

ROOT = Path(__file__).resolve().parents[2]
INVOICE_PDF = ROOT / "examples" / "invoice_pdf" / "invoice.pdf"
KEY_A = "sk_sdk_org_a_" + "5a" * 16
KEY_B = "sk_sdk_org_b_" + "6b" * 16
TERMINAL = {"completed", "error", "cancelled"}


def free_port() -> int:
    """A loopback TCP port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """``python -m engine.cli serve`` with keys for ``org_a`` and ``org_b``.

    Args:
        workdir: where the database and the server's log go.
        options: more ``stepwell serve`` options (``--egress-allow 127.0.0.1``...).
        db: the database (default: ``sdk.db`` in ``workdir``); a ``postgresql://`` URL
            serves from PostgreSQL.
    """

    def __init__(self, workdir: Path, *options: str, db: str | None = None) -> None:
        self.db = db or str(workdir / "sdk.db")
        self.options = options
        self.log = workdir / "serve.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEPWELL_")}
        env["STEPWELL_API_KEYS"] = f"{KEY_A}:org_a,{KEY_B}:org_b"
        command = [sys.executable, "-m", "engine.cli", "serve", "--db", str(self.db),
                   "--port", str(self.port), "--log-level", "warning", *self.options]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                httpx.get(f"{self.url}/openapi.json", timeout=2)
                return self
            except httpx.TransportError:
                assert time.monotonic() < deadline, "stepwell serve did not come up"
                time.sleep(0.1)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None

    def client(self, key: str) -> Retab:
        """The SDK with ``key``."""
        return Retab(api_key=key, base_url=self.url, max_retries=0, timeout=60)

    def http(self, key: str) -> httpx.Client:
        """Plain HTTP with ``key`` (for what the SDK cannot send)."""
        return httpx.Client(base_url=self.url, timeout=60, headers={"Api-Key": key})


def wait_for(client: Retab, run_id: str, timeout: float = 90) -> Any:
    """Poll ``runs.get`` until the run ended."""
    deadline = time.monotonic() + timeout
    while True:
        run = client.workflows.runs.get(run_id)
        if run.lifecycle.status in TERMINAL:
            return run
        assert time.monotonic() < deadline, f"run {run_id} stuck in {run.lifecycle.status}"
        time.sleep(0.1)


def wait_eval_run(client: Retab, run_id: str, timeout: float = 120) -> Any:
    """Poll ``evals.runs.get`` until the eval run ended."""
    deadline = time.monotonic() + timeout
    while True:
        run = client.workflows.evals.runs.get(run_id)
        if run.lifecycle.status in TERMINAL:
            return run
        assert time.monotonic() < deadline, f"eval run {run_id} stuck"
        time.sleep(0.1)


def error_of(call: Any) -> Any:
    """The SDK's APIError raised by ``call()`` (fails when nothing is raised)."""
    from retab.exceptions import APIError

    try:
        call()
    except APIError as exc:
        return exc
    raise AssertionError("the call succeeded")


#: A start_json block feeding a function whose code doubles a total (written the way
#: Retab's function blocks are: ``from models import Input, Output``).
TRANSFORM_CODE = """\
from models import Input, Output

def transform(input_data: Input) -> Output:
    return Output(
        label=f"{input_data.vendor} {input_data.invoice_number}",
        doubled_total=(input_data.total_due or 0) * 2,
    )
"""


def transform_spec(name: str) -> str:
    """``start_json -> function`` as declarative YAML (the shape of Retab's live test)."""
    code = "\n".join("          " + line if line else "" for line in TRANSFORM_CODE.splitlines())
    return f"""\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: {json.dumps(name)}
  description: start_json feeding a function
spec:
  blocks:
    invoice_in:
      type: start_json
      label: Invoice data
      position: {{x: 0, y: 0}}
      config:
        json_schema:
          type: object
          properties:
            invoice_number: {{type: string}}
            total_due: {{type: number}}
            vendor: {{type: string}}
          required: [invoice_number, total_due, vendor]
    transform:
      type: function
      label: Label and double
      position: {{x: 400, y: 0}}
      config:
        language: python
        output_schema:
          type: object
          properties:
            label: {{type: string}}
            doubled_total: {{type: number}}
          required: [label, doubled_total]
        code: |
{code}
  edges:
    - source: {{block: invoice_in, handle: output-json-0}}
      target: {{block: transform, handle: input-json-0}}
"""


INVOICE = {"invoice_number": "INV-7731", "total_due": 512.5, "vendor": "Kestrel Tools"}
LABEL = "Kestrel Tools INV-7731"

#: A PDF through parse, extract, classifier and split (offline provider), and a function.
DOCUMENT_SPEC = """\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: Document blocks
spec:
  blocks:
    upload: {type: start_document, label: Invoice PDF}
    read: {type: parse, label: Read}
    fields:
      type: extract
      label: Fields
      config:
        json_schema:
          type: object
          properties:
            invoice_number: {type: string}
            total_amount: {type: number}
    kind:
      type: classifier
      label: Kind
      config:
        categories:
          - {name: Invoice, description: Bills with amounts due}
          - {name: Letter, description: Anything else}
    parts:
      type: split
      label: Parts
      config:
        subdocuments:
          - {name: Invoice, description: Invoice pages}
  edges:
    - source: {block: upload, handle: output-file-0}
      target: {block: read, handle: input-file-0}
    - source: {block: upload, handle: output-file-0}
      target: {block: fields}
    - source: {block: upload, handle: output-file-0}
      target: {block: kind}
    - source: {block: upload, handle: output-file-0}
      target: {block: parts}
"""
