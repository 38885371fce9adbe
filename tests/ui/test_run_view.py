"""engine.server.ui.run_view: folding the steps of a loop iteration into its status."""

from __future__ import annotations

import pytest

from engine.server.ui.run_view import _iteration_status


@pytest.mark.parametrize(("counts", "status"), [
    ({"completed": 3}, "completed"),
    ({"completed": 2, "skipped": 1}, "completed"),
    ({"completed": 2, "error": 1, "cancelled": 1}, "error"),
    ({"completed": 2, "running": 1}, "running"),
    # a run cancelled while the item was running: its first step completed, the next one
    # and the item's end were cancelled
    ({"completed": 2, "cancelled": 2}, "cancelled"),
    ({"cancelled": 1, "skipped": 1}, "cancelled"),
    ({"skipped": 2}, "skipped"),
])
def test_an_iteration_is_as_its_most_telling_step(counts: dict[str, int], status: str
                                                   ) -> None:
    assert _iteration_status(counts) == status
