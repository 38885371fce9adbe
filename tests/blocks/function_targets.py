"""In-process targets for `python: "tests.blocks.function_targets:<name>"` function blocks."""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import BaseModel

from engine.contracts.errors import TransientError


class Total(BaseModel):
    total: float


def double(input_data: Any) -> dict[str, Any]:
    return {"value": input_data.value * 2}


async def async_total(input_data: Any) -> Total:
    return Total(total=sum(item["qty"] for item in input_data))


def raises(input_data: Any) -> None:
    raise ValueError("bad value")


def retry_me(input_data: Any) -> None:
    raise TransientError("upstream busy", code="BUSY")


def slow(input_data: Any) -> dict[str, Any]:
    time.sleep(5)
    return {}


def returns_a_set(input_data: Any) -> dict[str, Any]:
    return {"sku": "A", "tags": [1, {"red", "blue"}]}


not_callable = 42


def split_characters(input_data: Any) -> dict[str, Any]:
    """Prints, logs and returns strings holding lone UTF-16 surrogates (as text decoded
    from escapes may), which UTF-8 cannot encode."""
    print("lone \ud83e here")
    logging.getLogger("split").warning("warn \udc00")
    return {"out\ud83e": "v\udfff", "pair": "\ud83e\uddfe"}
