"""A real HTTP server on 127.0.0.1 for tests: answers from a queue, records requests.

    with LoopbackServer([Reply(429, {"error": "slow"}, {"Retry-After": "0.2"}),
                         Reply(200, {...})]) as server:
        ... server.url ...
        server.requests[0].json
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One canned answer: status, body (JSON-encoded unless bytes/str), headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return b"" if self.body is None else json.dumps(self.body).encode()


@dataclass
class Seen:
    """One received request."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class LoopbackServer:
    """Serves ``replies`` in order (the last one repeats) on an ephemeral port."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.requests: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append(Seen(self.command, self.path, dict(self.headers), body,
                                            time.monotonic()))
                index = min(len(server.requests), len(server.replies)) - 1
                reply = server.replies[index]
                if reply.delay:
                    time.sleep(reply.delay)
                data = reply.encoded()
                headers = {"Content-Type": "application/json", **reply.headers,
                           "Content-Length": str(len(data))}
                try:
                    self.send_response(reply.status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def chat_reply(content: Any, prompt: int = 120, completion: int = 30,
               model: str = "gpt-4o-mini") -> Reply:
    """A chat-completions answer whose message content is ``content`` (JSON-encoded
    unless a string)."""
    text = content if isinstance(content, str) else json.dumps(content)
    return Reply(200, {"id": "chatcmpl-1", "object": "chat.completion", "model": model,
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": text}}],
                       "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                 "total_tokens": prompt + completion}})
