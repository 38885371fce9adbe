"""What a step writes on a Dask worker comes back to its log on the driver."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Engine
from engine.executors import DaskExecutor
from tests.engine import observe_targets

ROOT = Path(__file__).resolve().parents[2]
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    os.environ["PYTHONPATH"] = path  # the workers import the test targets
    local = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                     dashboard_address=None)
    try:
        yield local.scheduler_address
    finally:
        local.close()


def test_a_remote_attempts_output_joins_its_log(cluster: str, tmp_path: Path) -> None:
    workflow = tmp_path / "each.yaml"
    workflow.write_text(observe_targets.each_workflow())
    executor = DaskExecutor(cluster)
    try:
        with Engine(tmp_path / "db", executor=executor) as engine:
            result = engine.run(workflow, observe_targets.order(2))
            assert result.status == "completed", result.error
            lines = engine.client.workflows.steps.logs("each_iter_1_work",
                                                       run_id=result.run_id).data
    finally:
        executor.close()
    assert [(line.stream, line.message) for line in lines][:1] == [("stdout", "pricing sku-1")]
