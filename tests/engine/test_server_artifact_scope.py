"""An artifact of another organization reads as an unknown artifact, in every store.

The HTTP ``artifacts.get`` answers with the store's NotFoundError, so a message that
named the artifact's run would tell an org-B key org A's run id.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.contracts.errors import NotFoundError
from engine.contracts.store import Store
from tests.store.conftest import OPENERS
from tests.store.helpers import T0, S, ev, lifecycle, new_run


@pytest.fixture(params=sorted(OPENERS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each store implementation in turn (PostgreSQL skips without a test server)."""
    opened = OPENERS[request.param](tmp_path, 0)
    yield opened
    opened.close()


def test_foreign_artifact_is_unknown(store: Store) -> None:
    store.create_run(new_run("run_secret_a", organization_id="org_a"), now=T0)
    artifact = {"operation": "function_invocation", "output": {"x": 1}}
    store.apply("run_secret_a", lifecycle("a")[:3], now=T0)
    store.apply("run_secret_a", [ev("a", S.COMPLETED, artifact=artifact)], now=T0 + 1)
    art_id = str(store.read_step("a", organization_id="org_a").artifact_id)
    assert store.read_artifact(art_id, organization_id="org_a").run_id == "run_secret_a"
    with pytest.raises(NotFoundError) as foreign:
        store.read_artifact(art_id, organization_id="org_b")
    with pytest.raises(NotFoundError) as unknown:
        store.read_artifact("fninv_000000000000", organization_id="org_b")
    assert "run_secret_a" not in str(foreign.value)
    assert str(foreign.value) == str(unknown.value).replace("fninv_000000000000", art_id)
