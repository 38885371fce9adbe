"""Fixtures of the web UI tests: one seeded database per module, apps over copies of it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine.server import app_state, create_app
from engine.server.config import ServerConfig
from tests.ui.browser import require_browser
from tests.ui.workflows import Seeded, seed

LOCAL = "http://127.0.0.1:8000"


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Seeded]:
    """A database with the runs of :func:`tests.ui.workflows.seed` (made once)."""
    db = tmp_path_factory.mktemp("ui-seed") / "seed.db"
    return db, seed(db)


@pytest.fixture
def chromium() -> str:
    """The Chromium executable of the browser tests (or a skip saying what to install)."""
    return require_browser()


@pytest.fixture
def db_copy(seeded_db: tuple[Path, Seeded], tmp_path: Path) -> tuple[Path, Seeded]:
    """A private copy of the seeded database (and its file store) for one test."""
    source, runs = seeded_db
    target = tmp_path / "ui.db"
    shutil.copy(source, target)
    for suffix in ("-wal", "-shm"):
        if Path(f"{source}{suffix}").exists():
            shutil.copy(f"{source}{suffix}", f"{target}{suffix}")
    files = Path(f"{source}.files")
    if files.exists():
        shutil.copytree(files, Path(f"{target}.files"))
    return target, runs


@pytest.fixture
def local(db_copy: tuple[Path, Seeded]) -> Iterator[tuple[TestClient, Seeded]]:
    """A client of a single-user loopback server (no login) over a database copy."""
    db, runs = db_copy
    config = ServerConfig(api_keys={"sk_gen": "org_local"}, generated_key="sk_gen")
    with TestClient(create_app(db, config=config), base_url=LOCAL) as client:
        yield client, runs


@pytest.fixture
def keyed(db_copy: tuple[Path, Seeded]) -> Iterator[tuple[TestClient, Seeded]]:
    """A client of a server with keys for org_local (``sk_a``) and org_b (``sk_b``)."""
    db, runs = db_copy
    config = ServerConfig(api_keys={"sk_a": "org_local", "sk_b": "org_b"})
    with TestClient(create_app(db, config=config), base_url=LOCAL) as client:
        yield client, runs


def csrf_of(html: str) -> str:
    """The CSRF token of the first form of a page."""
    import re

    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, "no form with a CSRF token on the page"
    return found.group(1)


def sign_in(client: TestClient, key: str) -> None:
    """Sign ``client`` in with ``key`` through the login form."""
    form = client.get("/login")
    response = client.post("/login", data={"api_key": key, "csrf_token": csrf_of(form.text),
                                           "next": "/"}, follow_redirects=False)
    assert response.status_code == 303, response.text


def wait_status(client: TestClient, run_id: str, wanted: set[str], timeout: float = 30) -> str:
    """Poll the app's store until run ``run_id`` reaches one of ``wanted``; its status."""
    api = app_state(client.app).reader(None)  # type: ignore[arg-type]
    deadline = time.monotonic() + timeout
    while (status := api.get_run(run_id).lifecycle.status) not in wanted:
        assert time.monotonic() < deadline, f"run {run_id} stayed {status}, wanted {wanted}"
        time.sleep(0.05)
    return status
