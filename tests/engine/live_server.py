"""A real uvicorn server on a free loopback port, in a background thread (for tests)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any, Self


class LiveServer:
    """Serve ``app`` on ``127.0.0.1:<free port>`` for the duration of a ``with`` block.

    Args:
        app: an ASGI app (from :func:`engine.server.create_app`).

    Attributes:
        url: ``http://127.0.0.1:<port>``.
    """

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True, name="live-server")

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()
