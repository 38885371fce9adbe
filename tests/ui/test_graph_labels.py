"""Block labels on the run page's graph stay inside their boxes, in a headless Chromium.

The run is of ``examples/order_pricing`` (a for_each inside a for_each, a while_loop),
once with long labels (a 60-character sentence, long unbroken ids, wide letters, German,
Japanese, emoji) and once as it is. Long labels wrap onto at most three lines (two for a
loop's heading) and end with an ellipsis past them; the whole label stays in the block's
``aria-label`` and ``<title>``. Short labels keep one line in a box no wider than needed.
Skipped without Chromium, like ``test_browser.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from engine import Engine
from tests.ui.browser import EDGES_OUTSIDE_THE_VIEW, ROOT, browser_page, serve

EXAMPLE = ROOT / "examples" / "order_pricing"
ID = "extract_invoice_header_fields_from_scanned_document_v2"
WIDE = "W" * 60
LONG = {
    "Orders": "Orders received from the partner portal this morning (batch)",
    "Each order": "For each order in the incoming batch from the partner portal today",
    "Each line": "Each line of the order, priced with the bulk rule or at the list price",
    "Line total": ID,
    "Bulk line?": "Ist das eine Großbestellung mit Mengenrabatt für Stammkunden?",
    "Bulk price (10% off)": "大口注文の価格を計算して割引を適用する処理ブロックです。一割引、二割引、三割引、"
                            "四割引のどれかを選んで、合計を出してから次の段階に渡します。",
    "List price": WIDE,
    "Order total": "Order total 🧾📦 with emoji and Ünïcödé àccents everywhere here",
    "Grand total": "compute_grand_total_over_all_orders_including_taxes_and_shipping_and_fees",
    "Haggle down to budget": "Haggle down to budget — keep taking five percent off until "
                             "the total fits the budget of the customer",
}
SHORT_LABELS = ["Orders", "Each order", "Each line", "Bulk line?", "Bulk price (10% off)",
                "List price", "Line total", "Order total", "Grand total",
                "Haggle down to budget", "Take 5% off", "Final price"]
TOLERANCE = 0.5  # px, for rounding


def _run(db: Path, labels: dict[str, str]) -> str:
    """Run order_pricing with ``labels`` replaced into ``db``; its run id."""
    text = (EXAMPLE / "workflow.yaml").read_text()
    for short, long in labels.items():
        assert f"label: {short}\n" in text, short
        text = text.replace(f"label: {short}\n", f"label: {json.dumps(long, ensure_ascii=False)}\n")
    workflow = db.parent / "workflow.yaml"
    workflow.write_text(text)
    with Engine(db) as engine:
        run = engine.run(workflow, {"order_in": json.loads((EXAMPLE / "orders.json").read_text())})
    assert run.status == "completed", run
    return run.run_id


def _box(locator: Any) -> dict[str, float]:
    box = locator.bounding_box()
    assert box is not None, locator
    return box


def _within(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return (inner["x"] >= outer["x"] - TOLERANCE and inner["y"] >= outer["y"] - TOLERANCE
            and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + TOLERANCE
            and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + TOLERANCE)


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


def _squeeze(value: str) -> str:
    return re.sub(r"\s+", "", value)


def _links(page: Any) -> list[dict[str, Any]]:
    """Every block and loop box of the graph: its label, the lines shown, the boxes."""
    found = []
    for kind, heading in (("block", "text.label"), ("cluster", "text.title")):
        links = page.locator(f"#graph svg a.{kind}")
        for i in range(links.count()):
            link = links.nth(i)
            label = link.locator(heading)
            found.append({
                "kind": kind, "aria": link.get_attribute("aria-label"),
                "title": link.locator(":scope > title").text_content(),
                "lines": label.locator("tspan").all_text_contents(),
                "rect": _box(link.locator(":scope > rect")), "label": _box(label),
                "summary": _box(link.locator("text.summary")),
                "summary_text": link.locator("text.summary").text_content()})
    return found


def test_long_labels_wrap_and_stay_inside_their_boxes(chromium: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    run_id = _run(tmp_path / "long.db", LONG)
    labels = {**{s: s for s in SHORT_LABELS}, **LONG}
    with serve(tmp_path / "long.db") as url, browser_page(chromium) as page:
        page.goto(f"{url}/runs/{run_id}")
        expect(page.locator("#graph svg a.block")).to_have_count(9)
        expect(page.locator("#graph svg a.cluster")).to_have_count(3)
        links = _links(page)
        svg = _box(page.locator("#graph svg"))
        blocks = [link["rect"] for link in links if link["kind"] == "block"]
        ports = [_box(page.locator("#graph svg circle.port").nth(i))
                 for i in range(page.locator("#graph svg circle.port").count())]
        seen = set()
        for link in links:
            label = next(v for v in labels.values() if link["aria"].startswith(v + ", "))
            seen.add(label)
            where = f"{link['kind']} {label!r}: {link}"
            # the text stays inside the box, the box inside the drawing
            assert _within(link["label"], link["rect"]), where
            assert _within(link["summary"], link["rect"]), where
            assert _within(link["rect"], svg), where
            assert "…" not in link["summary_text"], where
            # at most three lines (two for a loop's heading), an ellipsis when cut short,
            # every character shown as it is (nothing garbled, a grapheme never split)
            assert 1 <= len(link["lines"]) <= (3 if link["kind"] == "block" else 2), where
            shown = _squeeze("".join(link["lines"]))
            whole = _squeeze(label if link["kind"] == "block" else "✓" + label)
            if shown.endswith("…"):
                assert whole.startswith(shown[:-1]) and len(shown) - 1 < len(whole), where
                assert len(link["lines"]) == (3 if link["kind"] == "block" else 2), where
            else:
                assert shown == whole, where
            # the whole label stays available: the tooltip and the accessible name
            assert link["title"].startswith(label + " ("), where
            if link["kind"] == "block":  # 130 to 240 px, and the 2 px stroke
                assert 132 <= link["rect"]["width"] <= 242, where
            else:  # a loop's heading leaves its body alone
                heading = {"x": link["label"]["x"], "y": link["label"]["y"],
                           "width": max(link["label"]["width"], link["summary"]["width"]),
                           "height": link["summary"]["y"] + link["summary"]["height"]
                           - link["label"]["y"]}
                inner = [r for r in blocks + ports + [c["rect"] for c in links]
                         if r is not link["rect"] and _within(r, link["rect"])]
                assert not any(_overlap(heading, r) for r in inner), where
        assert seen == set(labels.values())
        # blocks never overlap each other
        for i, a in enumerate(blocks):
            assert not any(_overlap(a, b) for b in blocks[i + 1:]), a
        by_label = {next(v for v in labels.values() if link["aria"].startswith(v + ", ")): link
                    for link in links}
        assert by_label[WIDE]["lines"][-1].endswith("…")  # 60 wide letters: cut
        assert len(by_label[ID]["lines"]) == 2  # an unbroken id: wrapped, whole
        assert by_label[ID]["lines"][0].endswith("_")  # after one of its underscores
        assert len(by_label[LONG["Orders"]]["lines"]) == 2  # 60 characters: two lines
        assert page.evaluate(EDGES_OUTSIDE_THE_VIEW) == []


def test_short_labels_keep_one_line_in_boxes_no_wider_than_needed(chromium: str,
                                                                   tmp_path: Path) -> None:
    run_id = _run(tmp_path / "short.db", {})
    with serve(tmp_path / "short.db") as url, browser_page(chromium) as page:
        page.goto(f"{url}/runs/{run_id}")
        page.locator("#graph svg a.block").first.wait_for()
        links = _links(page)
        assert len(links) == 12
        for link in links:
            label = next(s for s in SHORT_LABELS if link["aria"].startswith(s + ", "))
            where = f"{label!r}: {link}"
            assert _within(link["label"], link["rect"]) and _within(link["summary"], link["rect"])
            if link["kind"] == "cluster":
                assert link["lines"] == ["✓ " + label], where
                continue
            assert link["lines"] == [label], where
            assert link["rect"]["height"] == 46 + 2, where
            # as wide as its text and padding, at least 130 px
            needed = max(link["label"]["width"], link["summary"]["width"]) + 16
            assert link["rect"]["width"] <= max(130, needed + 1) + 2, where  # 2: the stroke
            assert link["rect"]["width"] >= 132, where


