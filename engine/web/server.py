"""The read-only web page: stdlib `ThreadingHTTPServer` in a daemon thread, GET only.

Why stdlib: no dependency, no event loop shared with the trading loop, and nothing the page can
reach besides `TradingDbReader.snapshot()` (a `mode=ro` SQLite connection). Every method except
GET/HEAD answers 405; requests whose Host header is not the bound address or `localhost` answer
421 (a web page elsewhere cannot use DNS rebinding to read the positions). The page's script is
served from the same origin under a Content-Security-Policy of `default-src 'self'`, so nothing
loads from the network at run time.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from engine.web.page import APP_CSS, APP_JS, INDEX_HTML
from engine.web.queries import TradingDbReader
from engine.web.settings import WebSettings

log = logging.getLogger("engine.web")

_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}
_LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})


def _host_name(header: str) -> str:
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "ai-quant-web"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("web %s %s", self.address_string(), format % args)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in _HEADERS.items():
            self.send_header(name, value)
        if status is HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", "GET, HEAD")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _refuse(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"read-only: GET only\n", "text/plain; charset=utf-8")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse

    def _host_ok(self) -> bool:
        name = _host_name(self.headers.get("Host", "")).lower()
        return name in _LOCAL_NAMES or name == self.server.settings.host

    def _answer(self, head: bool) -> None:
        if not self._host_ok():
            self._send(HTTPStatus.MISDIRECTED_REQUEST, b"unknown host\n", "text/plain; charset=utf-8", head)
            return
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, INDEX_HTML.encode(), "text/html; charset=utf-8", head)
        elif path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon", head)
        elif path == "/app.css":
            self._send(HTTPStatus.OK, APP_CSS.encode(), "text/css; charset=utf-8", head)
        elif path == "/app.js":
            self._send(HTTPStatus.OK, APP_JS.encode(), "text/javascript; charset=utf-8", head)
        elif path == "/api/snapshot":
            try:
                data = self.server.reader.snapshot().to_json()
                data["poll_secs"] = self.server.settings.poll_secs
                body, status = json.dumps(data).encode(), HTTPStatus.OK
            except Exception as exc:  # a busy or half-written DB: the page shows the error and retries
                log.warning("web snapshot failed error=%s", exc)
                body = json.dumps({"error": type(exc).__name__}).encode()
                status = HTTPStatus.SERVICE_UNAVAILABLE
            self._send(status, body, "application/json", head)
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8", head)

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, settings: WebSettings, reader: TradingDbReader) -> None:
        self.settings = settings
        self.reader = reader
        if ":" in settings.host:
            self.address_family = socket.AF_INET6
        super().__init__((settings.host, settings.port), _Handler)


class WebPage:
    """The running page; `start()` binds (raises OSError when the port is taken), `stop()` joins."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="web-page", daemon=True)

    @classmethod
    def start(cls, settings: WebSettings, reader: TradingDbReader) -> WebPage:
        """Bind and serve in a daemon thread; log the URL (the real port when AI_QUANT_WEB_PORT=0)."""
        page = cls(_Server(settings, reader))
        page._thread.start()
        log.info("web page listening url=%s (read-only)", page.url)
        return page

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/"

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
