"""A real ``stepwell serve`` on loopback and a headless Chromium to drive it.

The browser is Debian's ``chromium`` (or ``$STEPWELL_CHROMIUM``) driven by Playwright for
Python; nothing downloads a browser. Without one, :func:`require_browser` skips with what
to install, unless ``STEPWELL_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes it a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIRE_ENV = "STEPWELL_REQUIRE_BROWSER"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
INSTALL_HINT = ("the browser tests need Debian's Chromium (`apt-get install chromium`) and "
                "Playwright for Python (`pip install -e '.[test]'`); set "
                f"{REQUIRE_ENV}=1 to make their absence a failure")


def chromium_path() -> str | None:
    """The Chromium executable to drive, if there is one."""
    wanted = os.environ.get("STEPWELL_CHROMIUM")
    if wanted:
        return wanted if Path(wanted).exists() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def require_browser() -> str:
    """The Chromium path; skips (or fails under ``STEPWELL_REQUIRE_BROWSER=1``) without."""
    try:
        import playwright.sync_api  # noqa: F401
        missing = None if chromium_path() else "no chromium executable was found"
    except ImportError:
        missing = "Playwright for Python is not installed"
    if missing is None:
        return str(chromium_path())
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{missing}: {INSTALL_HINT}")
    pytest.skip(f"{missing}: {INSTALL_HINT}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(db: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``stepwell serve --db DB`` on a free loopback port; yield its base URL."""
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if k != "STEPWELL_API_KEYS"}
    environ.update(env or {})
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), environ.get("PYTHONPATH", "")])
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "--db", str(db), "--port", str(port),
         "--log-level", "warning"], cwd=ROOT, env=environ, stdout=log, stderr=log,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/login", timeout=1).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError("stepwell serve did not start:\n" + log.read().decode())
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


@contextmanager
def browser_page(chromium: str, width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A page of a headless Chromium with a fresh profile; page errors fail the caller."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="stepwell-chromium-") as profile, \
            sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height})
        errors: list[str] = []
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.set_default_timeout(20_000)
        try:
            yield page
        finally:
            context.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


#: A page script: the graph's edge points that lie outside its SVG's viewBox (none when
#: every edge is in view).
EDGES_OUTSIDE_THE_VIEW = """() => {
  const svg = document.querySelector("#graph svg");
  const [x, y, w, h] = svg.getAttribute("viewBox").split(" ").map(Number);
  const outside = [];
  svg.querySelectorAll("path.edge").forEach((path) => {
    for (const [, px, py] of path.getAttribute("d").matchAll(/[ML](-?[\\d.]+),(-?[\\d.]+)/g)) {
      if (+px < x || +px > x + w || +py < y || +py > y + h) { outside.push(path.getAttribute("d")); }
    }
  });
  return outside;
}"""
