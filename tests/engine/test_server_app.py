"""create_app from Python: the block types of installed ``stepwell.blocks`` entry points.

A temporary distribution (a ``.dist-info`` folder on ``sys.path``) declares a block type
``stamp`` in the entry-point group; an app made by ``create_app`` validates and runs a
workflow that uses it, as ``stepwell serve`` does; an explicit ``registry`` wins.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from blocks.registry import default_registry
from engine.server import create_app
from tests.engine.plugin_dist import installed_distribution

KEY = "sk_app_" + "7c" * 16
HEADERS = {"Api-Key": KEY}
STAMP = textwrap.dedent('''
    from blocks.base import BlockResult, BlockType
    from engine.contracts.values import Payload


    class Stamp(BlockType):
        type_name = "stamp"

        def input_handles(self, config):
            return {"input-json-0": "json"}

        def output_handles(self, config):
            return {"output-json-0": "json"}

        async def run(self, ctx, config, inputs):
            data = dict(inputs["input-json-0"].data)
            return BlockResult(outputs={"output-json-0": Payload.json({**data, "stamped": True})})


    BLOCKS = [Stamp]
''')
SPEC = """\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: Stamped
spec:
  blocks:
    facts: {type: start_json}
    stamp: {type: stamp}
  edges:
    - source: {block: facts, handle: output-json-0}
      target: {block: stamp, handle: input-json-0}
"""


@pytest.fixture
def stamp_distribution(tmp_path: Path) -> Iterator[Path]:
    """An installed distribution whose entry point declares ``app_stamp_blocks:BLOCKS``."""
    with installed_distribution(tmp_path, "app_stamp_blocks", STAMP,
                                {"stamps": "app_stamp_blocks:BLOCKS"}) as folder:
        yield folder


def test_entry_point_block_types_are_served(stamp_distribution: Path) -> None:
    app = create_app(stamp_distribution / "app.db", api_keys={KEY: "org_a"})
    with TestClient(app) as http:
        valid = http.post("/v1/workflows/spec/validate", headers=HEADERS,
                          json={"yaml_definition": SPEC})
        assert valid.status_code == 200, valid.json()
        wid = http.post("/v1/workflows/spec/apply", headers=HEADERS,
                        json={"yaml_definition": SPEC}).json()["workflow_id"]
        run = http.post("/v1/workflows/runs", headers=HEADERS, json={
            "workflow_id": wid, "json_inputs": {"facts": {"n": 1}}}).json()
        deadline = time.monotonic() + 60
        while (got := http.get(f"/v1/workflows/runs/{run['id']}", headers=HEADERS).json()
               )["lifecycle"]["status"] not in ("completed", "error", "cancelled"):
            assert time.monotonic() < deadline, got
            time.sleep(0.05)
        assert got["lifecycle"]["status"] == "completed", got
        step = http.get("/v1/workflows/steps/stamp", headers=HEADERS,
                        params={"run_id": run["id"]}).json()
        assert step["handle_outputs"]["output-json-0"]["data"] == {"n": 1, "stamped": True}


def test_an_explicit_registry_wins(stamp_distribution: Path) -> None:
    app = create_app(stamp_distribution / "app.db", api_keys={KEY: "org_a"},
                     engine_options={"registry": default_registry()})
    with TestClient(app) as http:
        refused = http.post("/v1/workflows/spec/validate", headers=HEADERS,
                            json={"yaml_definition": SPEC})
    assert refused.status_code == 422
    assert "stamp" in refused.text
