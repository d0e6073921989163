"""Test helpers: a scriptable loopback Nexus (and provider) on http.server, a fake clock, log capture."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple

Reply = Tuple[int, Dict[str, str], bytes]

#: A route that returns this closes the connection without answering (after reading the request).
HANG_UP: Any = None


def js(status: int, body: Any, headers: Optional[Dict[str, str]] = None) -> Reply:
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return status, h, json.dumps(body).encode()


def problem(http_status: int, code: str, headers: Optional[Dict[str, str]] = None, **extra: Any) -> Reply:
    body = {"type": "urn:nexus:problem:" + code, "title": "t", "status": http_status, "code": code}
    body.update(extra)
    h = {"Content-Type": "application/problem+json"}
    h.update(headers or {})
    return http_status, h, json.dumps(body).encode()


class Seen:
    __slots__ = ("method", "path", "headers", "body")

    def __init__(self, method: str, path: str, headers: Dict[str, str], body: bytes) -> None:
        self.method, self.path, self.headers, self.body = method, path, headers, body


class FakeServer:
    """Routes are (method, regex) -> fn(Seen, match) -> Reply. Every request is recorded."""

    def __init__(self) -> None:
        self.routes: List[Tuple[str, "re.Pattern[str]", Callable[[Seen, "re.Match[str]"], Reply]]] = []
        self.seen: List[Seen] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    body = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            break
                        body += self.rfile.read(size)
                        self.rfile.readline()
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with outer.lock:
                    outer.seen.append(seen)
                reply: Reply = (404, {"Content-Type": "text/plain"}, b"no route")
                for method, pattern, fn in list(outer.routes):
                    m = pattern.fullmatch(self.path)
                    if m and method == self.command:
                        reply = fn(seen, m)
                        break
                if reply is HANG_UP:
                    self.close_connection = True
                    return
                status, headers, data = reply
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client left (its timeout) before the answer

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle

        class Server(ThreadingHTTPServer):
            request_queue_size = 1024
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def route(self, method: str, pattern: str, fn: Callable[[Seen, "re.Match[str]"], Reply]) -> None:
        self.routes.insert(0, (method, re.compile(pattern), fn))

    def count(self, method: str, prefix: str) -> int:
        with self.lock:
            return sum(1 for s in self.seen if s.method == method and s.path.startswith(prefix))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Clock:
    def __init__(self, now: Optional[float] = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


class Sleeps:
    """A sleep that records and returns at once."""

    def __init__(self) -> None:
        self.calls: List[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class CapturedLogs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: List[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def __enter__(self) -> "CapturedLogs":
        root = logging.getLogger()
        self._old = root.level
        root.setLevel(logging.DEBUG)
        root.addHandler(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        root.setLevel(self._old)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)
