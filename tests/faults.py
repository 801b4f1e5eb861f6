"""Faults to inject into flow tests without touching the shared services.

PostgreSQL, Redis and RabbitMQ on this machine serve other test runs too, so an outage is never
simulated by stopping a service: the processes under test are pointed at a :class:`TcpProxy`
in front of it, and the proxy is cut.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from types import TracebackType

logger = logging.getLogger(__name__)

BUFFER_SIZE = 65536


def free_port() -> int:
    """An ephemeral port nobody listens on right now (the kernel's choice, never 8000-8199)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _close(sock: socket.socket) -> None:
    # shutdown() wakes a thread blocked in recv()/accept() on this socket; close() alone does not.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream``, with an off switch.

    ``cut()`` closes every proxied connection and closes the listening socket, so new connections
    are refused at once (as they are when the service is down); ``restore()`` listens again on the
    same port. Each connection is pumped by two daemon threads, one per direction.
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, port: int | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port or free_port()
        self.connections_accepted = 0
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()

    @property
    def is_up(self) -> bool:
        return self._listener is not None

    def start(self) -> TcpProxy:
        with self._lock:
            if self._listener is not None:
                return self
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(128)
            self._listener = listener
        threading.Thread(target=self._accept_loop, args=(listener,), name=f"proxy-{self.port}", daemon=True).start()
        return self

    restore = start

    def cut(self) -> None:
        """Close every connection through the proxy and refuse new ones until ``restore()``."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            _close(listener)
        for sock in sockets:
            _close(sock)

    def close(self) -> None:
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # the listener was closed by cut()
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=3)
                upstream.settimeout(None)
            except OSError as exc:
                logger.warning("Proxy %s could not reach %s: %s", self.port, self.upstream, exc)
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    _close(client)
                    _close(upstream)
                    return
                self.connections_accepted += 1
                self._sockets.update((client, upstream))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(BUFFER_SIZE):
                target.sendall(data)
        except OSError:
            pass
        finally:
            # Either side closing ends the connection both ways, as a dead peer would.
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(target)
            _close(source)
            _close(target)
