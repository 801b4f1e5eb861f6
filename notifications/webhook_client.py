"""One webhook request over HTTP, and its verdict (notifications/attempts.py).

A total deadline per attempt (``WEBHOOK_DEADLINE_SECONDS``): connecting, the TLS handshake,
sending the request, and reading the headers and the body all share it, because every socket
operation is given what is left of it (``_DeadlineBackend``). A receiver that trickles one byte
at a time, each within the per-read timeout, is cut off at the deadline all the same. No
redirects followed (a 3xx is a permanent failure: the merchant
must configure the final URL), at most ``MAX_RESPONSE_BYTES`` of the answer read and kept, and
the SSRF guard of ``notifications.ssrf`` (connect to the vetted address, send the original
Host and TLS server name). Proxies from the environment are ignored: they would defeat the guard.
"""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings

from core.tracing import client_span, span_outcome
from notifications.attempts import Verdict, classify_status
from notifications.ssrf import Target, UnresolvableTarget, UnsafeTarget, resolve_target

# Caps on one step within the attempt's deadline (which bounds them all together).
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 4096
# Addresses of one name tried in turn when a connection cannot be made (e.g. an IPv6 answer
# first, a server listening on IPv4 only), as any client does; bounded so that a name with many
# dead addresses cannot hold the worker for long.
MAX_ADDRESSES_TRIED = 3
USER_AGENT = "order-service-webhooks/1.0"


@dataclass(frozen=True)
class WebhookResponse:
    verdict: Verdict
    duration_ms: int
    status_code: int | None = None
    body: str = ""
    error: str = ""


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read, write and TLS handshake ends by ``deadline``."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    def _left(self, timeout: float | None, error: type[Exception]) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise error("the attempt's deadline has passed")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, timeout=self._left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout=self._left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        stream = self._stream.start_tls(
            ssl_context, server_hostname=server_hostname, timeout=self._left(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(stream, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's socket backend, with every connection bound by one monotonic ``deadline``."""

    def __init__(self, deadline: float) -> None:
        self._backend = httpcore.SyncBackend()
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ConnectTimeout("the attempt's deadline has passed")
        stream = self._backend.connect_tcp(
            host,
            port,
            timeout=left if timeout is None else min(timeout, left),
            local_address=local_address,
            socket_options=socket_options,
        )
        return _DeadlineStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One verifying context per process (certifi's certificates): building one reads the whole
    bundle, about 15 ms of CPU, too much to spend on every attempt. Contexts are safe to share."""
    return httpx.create_ssl_context(trust_env=False)


class _DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport over ``_DeadlineBackend``; no proxy, no retries, certificates from certifi."""

    def __init__(self, deadline: float) -> None:
        # httpx takes no network backend: its transport is given a connection pool that has ours
        # (its own __init__ would only build a pool, and an SSL context, to be thrown away).
        self._pool = httpcore.ConnectionPool(ssl_context=_ssl_context(), network_backend=_DeadlineBackend(deadline))


def _read_bounded(response: httpx.Response) -> bytes:
    received = b""
    for chunk in response.iter_raw(chunk_size=1024):
        received += chunk
        if len(received) >= MAX_RESPONSE_BYTES:
            break
    return received[:MAX_RESPONSE_BYTES]


def _send_to_first_reachable(
    client: httpx.Client, *, target: Target, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    """Send to the vetted addresses in turn until one accepts the connection."""
    addresses = target.addresses[:MAX_ADDRESSES_TRIED]
    for index, address in enumerate(addresses):
        request = client.build_request(
            "POST",
            target.pinned_url(address),
            content=body,
            headers=headers,
            extensions={"sni_hostname": target.server_name},
        )
        try:
            return client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            if index == len(addresses) - 1:
                raise
    raise AssertionError("a target has at least one address")


def webhook_post(*, url: str, body: str, headers: Mapping[str, str]) -> WebhookResponse:
    """POST ``body`` to ``url``; never raises for anything the network or the receiver does, and
    returns within ``WEBHOOK_DEADLINE_SECONDS`` (plus the name lookup of the SSRF guard).

    Traced as an HTTP client span (core/tracing.py), with the URL less its query, which may hold
    the merchant's credentials; no ``traceparent`` is sent to the merchant.
    """
    parts = urlsplit(url)
    attributes: dict[str, str | int] = {
        "http.request.method": "POST",
        "server.address": parts.hostname or "",
        "url.full": f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}",
    }
    with client_span("POST", attributes) as span:
        response = _webhook_post(url=url, body=body, headers=headers)
        span_outcome(
            span,
            attributes={"http.response.status_code": response.status_code} if response.status_code else None,
            error="" if response.verdict is Verdict.SUCCEEDED else response.error,
        )
    return response


def _webhook_post(*, url: str, body: str, headers: Mapping[str, str]) -> WebhookResponse:
    started = time.monotonic()

    def elapsed_ms() -> int:
        return round((time.monotonic() - started) * 1000)

    deadline = started + settings.WEBHOOK_DEADLINE_SECONDS
    try:
        target = resolve_target(url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS)
    except UnsafeTarget as exc:
        return WebhookResponse(Verdict.PERMANENT, elapsed_ms(), error=f"refused: {exc}")
    except UnresolvableTarget as exc:
        return WebhookResponse(Verdict.RETRY, elapsed_ms(), error=str(exc))

    timeout = httpx.Timeout(READ_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
    request_headers = {
        **headers,
        "Host": target.host_header,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        # Raw bytes only: a compressed answer could expand far beyond the bounded read.
        "Accept-Encoding": "identity",
    }
    try:
        with httpx.Client(
            timeout=timeout, follow_redirects=False, trust_env=False, transport=_DeadlineTransport(deadline)
        ) as client:
            response = _send_to_first_reachable(
                client, target=target, body=body.encode("utf-8"), headers=request_headers
            )
            try:
                received = _read_bounded(response)
            finally:
                response.close()
    except httpx.TimeoutException as exc:
        return WebhookResponse(Verdict.RETRY, elapsed_ms(), error=f"timeout: {type(exc).__name__} {exc}")
    except httpx.HTTPError as exc:  # connection refused or reset, TLS failure, protocol error
        return WebhookResponse(Verdict.RETRY, elapsed_ms(), error=f"{type(exc).__name__}: {exc}")

    verdict = classify_status(response.status_code)
    error = "" if verdict is Verdict.SUCCEEDED else f"HTTP {response.status_code}"
    if 300 <= response.status_code < 400:
        error += f" redirect to {response.headers.get('location', '?')!r}, not followed"
    return WebhookResponse(
        verdict,
        elapsed_ms(),
        status_code=response.status_code,
        body=received.decode("utf-8", errors="replace"),
        error=error,
    )
