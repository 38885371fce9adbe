"""In-process targets that print and log, for the step-log tests."""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger("tests.pricing")


def chatty(input_data: Any) -> dict[str, Any]:
    print("pricing", input_data["sku"])
    sys.stderr.write("no discount table, using list price\n")
    log.warning("sku %s has no discount", input_data["sku"])
    return {"total": 10}


def chatty_then_fails(input_data: Any) -> dict[str, Any]:
    print("about to fail")
    raise ValueError("no price for " + input_data["sku"])
