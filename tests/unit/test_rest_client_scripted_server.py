"""A tiny scripted HTTP server on 127.0.0.1 for the client tests (the edge of the world at unit scope).

Each POST consumes the next scripted step: reply with a status/body/headers, close the connection
without answering, or hold the request past the client's timeout. Requests are recorded so tests
can assert on exactly what was sent. Imported by the rest and exchange client tests.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = None  # bytes/str sent as is; anything else JSON-encoded
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Close:
    """Read the request, then close the socket without writing a byte (a lost response)."""


@dataclass(frozen=True)
class Hang:
    """Hold the request until released (test teardown) or `secs` pass, then close without answering."""

    secs: float = 5.0


Step = Reply | Close | Hang


@dataclass(frozen=True)
class Recorded:
    path: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class ScriptedServer:
    """Serve scripted steps; when the script runs out, repeat `default` (HTTP 500 unless set)."""

    def __init__(self) -> None:
        self.steps: deque[Step] = deque()
        self.default: Step = Reply(500, b"script exhausted")
        self.requests: list[Recorded] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with server._lock:
                    server.requests.append(Recorded(self.path, body))
                    step = server.steps.popleft() if server.steps else server.default
                if isinstance(step, Hang):
                    server.release.wait(step.secs)
                if isinstance(step, Close | Hang):
                    self.close_connection = True
                    return
                payload = step.body
                if not isinstance(payload, bytes | str):
                    payload = json.dumps(payload)
                data = payload.encode() if isinstance(payload, str) else payload
                self.send_response(step.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in step.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, *steps: Step) -> None:
        with self._lock:
            self.steps.extend(steps)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def scripted_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_scripted_server_replays_steps_in_order(scripted_server: ScriptedServer) -> None:
    scripted_server.script(Reply(429, {"x": 1}), Reply(200, {"ok": True}))
    url = scripted_server.base_url + "/info"
    first = requests.post(url, json={"a": 1}, timeout=5)
    second = requests.post(url, json={"a": 2}, timeout=5)
    assert (first.status_code, second.status_code, second.json()) == (429, 200, {"ok": True})
    assert [r.json() for r in scripted_server.requests] == [{"a": 1}, {"a": 2}]


def test_scripted_server_close_step_loses_the_response(scripted_server: ScriptedServer) -> None:
    scripted_server.script(Close())
    with pytest.raises(requests.ConnectionError):
        requests.post(scripted_server.base_url + "/exchange", json={}, timeout=5)
    assert len(scripted_server.requests) == 1
