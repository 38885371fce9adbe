"""docs/http.md lists every method of the installed SDK's ``client.workflows`` and
``client.files``, each with a status, and the server answers each as the table says.

The methods are enumerated from the SDK's resource classes. Each one's request is built
by the SDK itself (its ``prepare_*`` twin, with placeholder arguments) and sent to an
app: every request must reach a route made for it (never 404 ``ROUTE_NOT_FOUND`` or 405),
and exactly the methods the table marks 501 answer 501.
"""

from __future__ import annotations

import enum
import inspect
import re
import types
import typing
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from pydantic import BaseModel
from retab import Retab

from engine.server import create_app

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


def documented() -> dict[str, str]:
    """docs/http.md's table: SDK method -> ``works`` or ``501``."""
    return dict(re.findall(r"^\| `([a-z_.]+)` \| (works|501)", DOC.read_text(), re.MULTILINE))


def placeholder(name: str, annotation: Any) -> Any:
    """A value of ``annotation`` for a required argument (ids name no stored object)."""
    if annotation is str:
        return f"{name}_unknown"
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return placeholder(name, typing.get_args(annotation)[0])
    if annotation is dict or typing.get_origin(annotation) is dict:
        return {}
    if annotation is list or typing.get_origin(annotation) is list:
        return []
    if inspect.isclass(annotation) and issubclass(annotation, enum.Enum):
        return next(iter(annotation))
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation.model_construct()
    if annotation is int:
        return 1
    raise AssertionError(f"no placeholder for {name}: {annotation!r}")


def prepared(client: Retab, method: str) -> Any:
    """The request the SDK sends for ``method`` (``a.b.name``), with placeholders."""
    resource: Any = client
    *path, name = method.split(".")
    for part in path:
        resource = getattr(resource, part)
    prepare = getattr(resource, f"prepare_{name}")
    hints = typing.get_type_hints(prepare)
    required = {p.name: placeholder(p.name, hints[p.name])
                for p in inspect.signature(prepare).parameters.values()
                if p.default is inspect.Parameter.empty
                and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return prepare(**required)


def test_every_sdk_method_has_a_status_in_the_docs() -> None:
    client = Retab(api_key="sk_unused", base_url="http://127.0.0.1:9")
    methods = sdk_methods(client.workflows, "workflows") + sdk_methods(client.files, "files")
    assert len(methods) >= 80
    table = documented()
    missing = [m for m in methods if m not in table]
    assert not missing, f"docs/http.md lists no status for: {', '.join(missing)}"
    not_served = sorted(m for m, status in table.items() if status == "501")
    assert all(".experiments." in m or "blueprint" in m for m in not_served), not_served


def test_every_sdk_method_reaches_its_route_and_only_experiments_answer_501(
        tmp_path: Path) -> None:
    key = "sk_routes_" + "3d" * 16
    client = Retab(api_key=key, base_url="http://127.0.0.1:9")
    methods = sdk_methods(client.workflows, "workflows") + sdk_methods(client.files, "files")
    answered: dict[str, tuple[int, str | None]] = {}
    with TestClient(create_app(tmp_path / "routes.db", api_keys={key: "org_a"})) as http:
        for method in methods:
            request = prepared(client, method)
            assert not request.files and not request.form_data, method  # JSON bodies only
            response = http.request(request.method, request.url, params=request.params,
                                    headers={"Api-Key": key}, json=request.data)
            body = response.json() if "json" in response.headers.get("content-type", "") else {}
            detail = body.get("detail") if isinstance(body, dict) else None
            answered[method] = (response.status_code,
                                detail.get("code") if isinstance(detail, dict) else None)
    unrouted = {m: a for m, a in answered.items() if a[0] == 405 or a[1] == "ROUTE_NOT_FOUND"}
    assert not unrouted, unrouted
    refused = sorted(m for m, (status, _code) in answered.items() if status == 501)
    assert refused == sorted(m for m, status in documented().items() if status == "501")
    assert [m for m in refused if m.startswith("workflows.")] == sorted(
        m for m in methods if m.startswith("workflows.experiments."))
    assert {answered[m][1] for m in refused} == {"NOT_IMPLEMENTED"}
