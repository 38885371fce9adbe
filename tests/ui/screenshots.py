"""Screenshots of the web UI's pages for the documentation.

    python -m tests.ui.screenshots docs/

seeds a database (:func:`tests.ui.workflows.seed`), serves it with ``stepwell serve`` and
saves ``ui-runs.png``, ``ui-run.png``, ``ui-step.png``, ``ui-review.png`` and
``ui-logs.png`` (the logs of a step retried once) with the headless Chromium of the
browser tests, each reduced to a 256-colour palette (Pillow,
which fpdf2 brings) to keep the documentation small.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.ui.browser import browser_page, chromium_path, serve
from tests.ui.workflows import seed


def palette(path: Path) -> None:
    """Rewrite a screenshot as a 256-colour PNG (text stays sharp, the file shrinks)."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def take(target: Path) -> list[Path]:
    """Write the five screenshots into ``target``; returns their paths."""
    chromium = chromium_path()
    if chromium is None:
        raise SystemExit("Install Chromium first (apt-get install chromium).")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = seed(Path(tmp) / "ui.db")
        with serve(Path(tmp) / "ui.db") as url, browser_page(chromium, 1280, 860) as page:
            shots = {
                "ui-runs.png": "/",
                "ui-run.png": f"/runs/{runs.items}",
                "ui-step.png": f"/runs/{runs.review}/steps/read_invoice",
                "ui-review.png": "/reviews",
            }
            for name, path in shots.items():
                page.goto(url + path)
                if name == "ui-run.png":
                    page.locator("summary", has_text="Iterations of").click()
                    page.locator("tr.failed").first.wait_for()
                if name == "ui-review.png":
                    page.locator("td a[href^='/reviews/rev_']").first.click()
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(target / name), full_page=True)
                palette(target / name)
                written.append(target / name)
            page.goto(f"{url}/runs/{runs.chatty}/steps/talk")
            page.locator("#log-attempt-0 summary").click()
            page.locator("#logs").screenshot(path=str(target / "ui-logs.png"))
            palette(target / "ui-logs.png")
            written.append(target / "ui-logs.png")
    return written


if __name__ == "__main__":
    for path in take(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")):
        print(path)
