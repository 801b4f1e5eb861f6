"""A merchant's webhook endpoint for tests: a threaded HTTP server on 127.0.0.1.

It checks every request's Standard Webhooks signature with its own implementation of the scheme
(hmac, hashlib, base64 and a constant-time compare), not with the library the service signs
with, so a test passes only if the two agree on the published scheme.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TIMESTAMP_TOLERANCE_SECONDS = 300


def standard_webhooks_verify(*, secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> bool:
    """True if ``headers`` carry a valid, fresh v1 signature of ``body`` under ``secret``."""
    try:
        msg_id = headers["webhook-id"]
        timestamp = headers["webhook-timestamp"]
        signatures = headers["webhook-signature"]
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        sent_at = int(timestamp)
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent_at) > TIMESTAMP_TOLERANCE_SECONDS:
        return False
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    for versioned in signatures.split(" "):
        version, _, signature = versioned.partition(",")
        if version == "v1" and hmac.compare_digest(expected, signature.encode()):
            return True
    return False


@dataclass(frozen=True)
class Response:
    status: int = 200
    body: bytes = b"ok"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering


@dataclass(frozen=True)
class ReceivedRequest:
    received_at: float
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    signature_valid: bool
    status: int


class WebhookReceiver:
    """Answers scripted responses in order, then ``default``; records every request."""

    def __init__(self) -> None:
        self.secret = ""
        self.default = Response()
        self._script: list[Response] = []
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                response = receiver._next()
                with receiver._lock:
                    receiver.requests.append(
                        ReceivedRequest(
                            received_at=time.time(),
                            path=self.path,
                            headers=headers,
                            body=body,
                            signature_valid=standard_webhooks_verify(
                                secret=receiver.secret, headers=headers, body=body
                            ),
                            status=response.status,
                        )
                    )
                if response.delay:
                    time.sleep(response.delay)
                try:
                    self.send_response(response.status)
                    for name, value in response.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(response.body)))
                    self.end_headers()
                    self.wfile.write(response.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def respond(self, *responses: Response, then: Response | None = None) -> None:
        with self._lock:
            self._script = list(responses)
            if then is not None:
                self.default = then

    def _next(self) -> Response:
        with self._lock:
            return self._script.pop(0) if self._script else self.default

    def statuses(self) -> list[int]:
        with self._lock:
            return [r.status for r in self.requests]


class TricklingReceiver:
    """A hostile endpoint: reads the request, then sends its answer one byte every ``interval``
    seconds for ``lasting`` seconds, then hangs up (``in_headers``: the status line and headers
    too; else a complete header block announcing a large body, then the trickle). Records when
    each connection came and went."""

    def __init__(self, *, interval: float, in_headers: bool = True, lasting: float = 6.0) -> None:
        self.interval = interval
        self.lasting = lasting
        self.in_headers = in_headers
        self.connections: list[tuple[float, float | None]] = []
        self._lock = threading.Lock()
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.port = self._socket.getsockname()[1]
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> TricklingReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with self._lock:
            index = len(self.connections)
            self.connections.append((time.time(), None))
        until = time.monotonic() + self.lasting
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
        stream = head + b"x" * 100000 if self.in_headers else b"x" * 100000
        try:
            conn.settimeout(5)
            conn.recv(65536)  # the request (small enough for one read)
            if not self.in_headers:
                conn.sendall(head)
            for byte in stream:
                if self._stopped.wait(self.interval) or time.monotonic() > until:
                    break
                conn.sendall(bytes([byte]))
        except OSError:
            pass  # the client gave up: what the test wants
        finally:
            conn.close()
            with self._lock:
                self.connections[index] = (self.connections[index][0], time.time())

    def durations(self) -> list[float]:
        """Seconds each finished connection lasted."""
        with self._lock:
            return [end - start for start, end in self.connections if end is not None]
