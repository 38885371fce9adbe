"""`stepwell serve` and its configuration: keys, organizations, loopback-only defaults."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from engine.contracts.errors import UsageError
from engine.server import create_app, parse_api_keys, server_config
from engine.server.config import DEFAULT_ORG, is_loopback

ROOT = Path(__file__).resolve().parents[2]


def test_parse_api_keys() -> None:
    assert parse_api_keys("k1, k2:org_b ,,k3:org_c") == {
        "k1": DEFAULT_ORG, "k2": "org_b", "k3": "org_c"}
    assert parse_api_keys("") == {} and parse_api_keys(None) == {}
    for bad in (":org", "k:", "k1:a,k1:b"):
        with pytest.raises(UsageError, match="STEPWELL_API_KEYS"):
            parse_api_keys(bad)


def test_loopback_only_without_keys() -> None:
    assert all(map(is_loopback, ("127.0.0.1", "127.8.0.1", "localhost", "::1", "[::1]")))
    assert not any(map(is_loopback, ("0.0.0.0", "192.168.1.4", "::", "example.org")))
    config = server_config("127.0.0.1", environ={})
    assert config.generated_key and config.api_keys == {config.generated_key: DEFAULT_ORG}
    assert server_config("127.0.0.1", environ={}).generated_key != config.generated_key
    with pytest.raises(UsageError, match="Refusing to listen on 0.0.0.0"):
        server_config("0.0.0.0", environ={})
    keyed = server_config("0.0.0.0", environ={"STEPWELL_API_KEYS": "s3cret:org_x"})
    assert keyed.api_keys == {"s3cret": "org_x"} and keyed.generated_key is None


def test_create_app_needs_a_key_and_a_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="API key"):
        create_app(tmp_path / "a.db", api_keys={})
    with pytest.raises(UsageError, match="database file"):
        create_app(":memory:", api_keys={"k": "org"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(tmp_path: Path, *args: str, keys: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "STEPWELL_API_KEYS"}
    if keys is not None:
        env["STEPWELL_API_KEYS"] = keys
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "--db", str(tmp_path / "s.db"),
         "--log-level", "warning", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_ready(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60  # a loaded machine starts slowly
    while True:
        assert proc.poll() is None, proc.communicate()
        try:
            httpx.get(f"{url}/openapi.json", timeout=1)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, "stepwell serve did not come up"
            time.sleep(0.1)


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    return proc.returncode, out


def test_serve_prints_a_generated_key_and_uses_it(tmp_path: Path) -> None:
    port = free_port()
    proc = serve(tmp_path, "--port", str(port))
    try:
        assert proc.stdout is not None
        key = proc.stdout.readline().strip()
        assert key.startswith("sk_local_")
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        assert httpx.get(f"{url}/v1/workflows/runs", headers={"Api-Key": key}).status_code == 200
        assert httpx.get(f"{url}/v1/workflows/runs", headers={"Api-Key": "x"}).status_code == 401
    finally:
        assert stop(proc)[0] == 0


def test_serve_with_configured_keys_prints_no_key(tmp_path: Path) -> None:
    port = free_port()
    proc = serve(tmp_path, "--port", str(port), keys="alpha:org_a")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        runs = httpx.get(f"{url}/v1/workflows/runs", params={"access_token": "alpha"})
        assert runs.status_code == 200 and runs.json()["data"] == []
    finally:
        code, out = stop(proc)
    assert code == 0 and "sk_local_" not in out


def test_serve_refuses_a_public_host_without_keys(tmp_path: Path) -> None:
    proc = serve(tmp_path, "--host", "0.0.0.0", "--port", str(free_port()))
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "Refusing to listen on 0.0.0.0" in err and "STEPWELL_API_KEYS" in err
