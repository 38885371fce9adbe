"""A real uvicorn server on loopback for example tests, and a Server-Sent Events reader."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on 127.0.0.1 (a free port) in a thread; yield its base URL.

    The server (and the app's lifespan) is shut down on exit.
    """
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="example-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start; see the log above")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One Server-Sent Event: ``id``, ``event`` name and decoded JSON ``data``."""

    id: str | None
    event: str
    data: Any


def read_sse(http: Any, path: str, headers: dict[str, str] | None = None) -> list[SseEvent]:
    """GET ``path`` and parse the ``text/event-stream`` body until the server closes it."""
    events: list[SseEvent] = []
    fields: dict[str, list[str]] = {}
    with http.stream("GET", path, headers=headers) as response:
        response.raise_for_status()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line == "":
                if fields:
                    events.append(SseEvent(
                        id=(fields.get("id") or [None])[-1],
                        event=(fields.get("event") or ["message"])[-1],
                        data=json.loads("\n".join(fields.get("data", [])))))
                fields = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))
    return events
