"""bench/ui.py runs end to end at a small size."""

from __future__ import annotations

from bench.ui import measure, static_weight


def test_bench_ui_small() -> None:
    rows = measure(runs=40, items=20, repeat=1)
    assert len(rows) == 12 and all(r["bytes"] > 0 and r["median_ms"] > 0 for r in rows)
    assert {name for name, _, _ in static_weight()} >= {"app.js", "vendor/dagre.min.js"}


def test_bench_never_imports_the_tests() -> None:
    import ast
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "bench"
    for path in bench.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n == "tests" or n.startswith("tests.") for n in names), path
