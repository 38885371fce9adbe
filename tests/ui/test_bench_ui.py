"""bench/ui.py runs end to end at a small size."""

from __future__ import annotations

from bench.ui import measure, static_weight


def test_bench_ui_small() -> None:
    rows = measure(runs=40, items=20, repeat=1)
    assert len(rows) == 11 and all(r["bytes"] > 0 and r["median_ms"] > 0 for r in rows)
    assert {name for name, _, _ in static_weight()} >= {"app.js", "vendor/dagre.min.js"}
