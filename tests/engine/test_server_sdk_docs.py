"""docs/http.md lists every method of the installed SDK's ``client.workflows`` and
``client.files``, each with a status."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

from retab import Retab

DOC = Path(__file__).resolve().parents[2] / "docs" / "http.md"


def sdk_methods(resource: Any, path: str) -> list[str]:
    """Public methods of a resource and its sub-resources, as ``a.b.method``."""
    found: list[str] = []
    for name in sorted(dir(resource)):
        if name.startswith(("_", "prepare_")) or name == "request_page":
            continue
        attr = getattr(resource, name)
        if inspect.ismethod(attr):
            found.append(f"{path}.{name}")
        elif type(attr).__module__.startswith("retab.resources"):
            found.extend(sdk_methods(attr, f"{path}.{name}"))
    return found


def test_every_sdk_method_has_a_status_in_the_docs() -> None:
    client = Retab(api_key="sk_unused", base_url="http://127.0.0.1:9")
    methods = sdk_methods(client.workflows, "workflows") + sdk_methods(client.files, "files")
    assert len(methods) >= 80
    table = dict(re.findall(r"^\| `([a-z_.]+)` \| (works|501)", DOC.read_text(), re.MULTILINE))
    missing = [m for m in methods if m not in table]
    assert not missing, f"docs/http.md lists no status for: {', '.join(missing)}"
    not_served = sorted(m for m, status in table.items() if status == "501")
    assert all(".experiments." in m or "blueprint" in m for m in not_served), not_served
