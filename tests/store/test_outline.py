"""store.outline: light rows, grouped counts and iterations, scoped by organization."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.contracts.errors import NotFoundError
from store import outline
from store.client import Client
from tests.ui.conftest import seeded_db  # noqa: F401  (the fixture)
from tests.ui.workflows import Seeded


def test_counts_tallies_and_iterations(seeded_db: tuple[Path, Seeded]) -> None:  # noqa: F811
    db, runs = seeded_db
    with Client(db) as client:
        api = outline.outline_reads(client.api)
        tallies = {(t.block_id, t.status): t for t in outline.block_tallies(api, runs.items)}
        assert tallies[("check", "completed")].count == 26
        assert tallies[("check", "error")].count == 4
        assert "is not allowed" in (tallies[("check", "error")].error or "")
        assert tallies[("small_batch", "skipped")].reason == \
            "branch_not_selected: size.output-json-else"
        assert tallies[("each_sentinel_start", "completed")].count == 30
        counts = outline.run_counts(api, [runs.items, runs.review])
        assert (counts[runs.items].items, counts[runs.items].items_done,
                counts[runs.items].items_failed) == (30, 26, 4)
        assert counts[runs.review].by_status == {"completed": 2, "awaiting_review": 1,
                                                 "pending": 4}
        per_item = outline.iteration_tallies(api, runs.items, "each")
        assert sorted(per_item) == list(range(30))
        assert [i for i, c in per_item.items() if c.get("error")] == [3, 10, 17, 24]
        members = outline.iteration_steps(api, runs.items, "each", [3, 10])
        assert [s.step_id for s in members[3]] == [
            "each_iter_3_each_sentinel_start", "each_iter_3_check", "each_iter_3_each_sentinel_end"]
        assert members[3][1].scope == (("each", 3),) and members[3][1].status == "error"
        assert [s.sentinel for s in members[10]] == ["start", None, "end"]
        top = outline.steps_by_id(api, runs.items, ["total", "batch", "nope"])
        assert [s.step_id for s in top] == ["batch", "total"]
        presence = outline.run_presence(api, [runs.review])[runs.review]
        assert presence.waiting_since is not None and presence.owner_pid
        trail = outline.step_transitions(api, runs.items, ["each_iter_3_check"])
        assert [t["status"] for t in trail["each_iter_3_check"]] == [
            "pending", "queued", "running", "error"]
        names = {name for _, name, _ in outline.workflow_choices(api)}
        assert {"Item checks", "Invoice PDF"} <= names


def test_another_organization_sees_nothing(seeded_db: tuple[Path, Seeded]) -> None:  # noqa: F811
    db, runs = seeded_db
    with Client(db, organization_id="org_b") as client:
        api = outline.outline_reads(client.api)
        for call in (outline.block_tallies, outline.step_outline, outline.check_run):
            with pytest.raises(NotFoundError):
                call(api, runs.items)
        with pytest.raises(NotFoundError):
            outline.iteration_tallies(api, runs.items, "each")
        assert outline.run_counts(api, [runs.items]) == {}
        assert outline.run_presence(api, [runs.items]) == {}
        assert outline.workflow_choices(api) == []
