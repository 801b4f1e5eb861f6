"""Benchmark: merchant webhooks, delivered by a Celery worker to receivers on loopback.

Part of ``python -m bench`` (``--only webhooks``; see bench/__main__.py); on its own:

    python -m bench.webhooks [--deliveries 10000] [--runs 1] [--worker-concurrency N] [--quick]

Two phases, each on a fresh ``orders_bench`` database with production settings (plus loopback
targets), the worker stopped while the events are published and started when the clock starts:

1. **healthy**: ten endpoints answering 200 at once, ``--deliveries`` deliveries in all (a tenth
   to each: orders of four events each, reserved, paid, shipped, completed); deliveries per second
   until every one has succeeded.
2. **hostile**: the same, but one endpoint of the ten never answers (it holds the connection
   past the attempt deadline) and one answers 500; the eight healthy endpoints' deliveries per
   second until theirs have all succeeded, against their share of phase 1's rate (goal: at least
   90 %), and whether each healthy endpoint received every order's events in sequence.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench import system

ENDPOINTS = 10
EVENTS_PER_ORDER = ("order.reserved", "order.paid", "order.shipped", "order.completed")
# The hanging endpoint holds each request this long: past any attempt deadline.
HANG_SECONDS = 60.0
GOAL = 0.9


@dataclass
class Receiver:
    """One merchant endpoint on loopback: answers ``mode`` (ok, hang, fail) and records arrivals."""

    mode: str
    arrivals: list[tuple[int, int]] = field(default_factory=list)  # (order id, sequence), first answers only
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.mode == "hang":
                    time.sleep(HANG_SECONDS)
                    return
                if receiver.mode == "ok":
                    event = json.loads(body)
                    with receiver.lock:
                        receiver.arrivals.append((event["data"]["id"], event["sequence"]))
                status = 200 if receiver.mode == "ok" else 500
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def in_sequence(self) -> bool:
        """Whether each order's events arrived in increasing sequence (repeats of one ignored)."""
        last: dict[int, int] = defaultdict(int)
        with self.lock:
            for order_id, sequence in self.arrivals:
                if sequence < last[order_id]:
                    return False
                last[order_id] = sequence
        return True


@dataclass(frozen=True)
class PhaseResult:
    deliveries: int  # measured: every delivery (healthy) or the healthy endpoints' (hostile)
    seconds: float
    in_sequence: bool

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds


def _publish(orders: int) -> None:
    from django.db import transaction

    from notifications.services import Notification, notifications_publish

    for order_id in range(1, orders + 1):
        for event_type in EVENTS_PER_ORDER:
            with transaction.atomic():  # one transition's transaction each, as the service does
                payload = {"id": order_id, "status": event_type.removeprefix("order.")}
                notifications_publish(notifications=[Notification(event_type, payload, None)])


def one_phase(*, deliveries: int, modes: list[str], concurrency: int, timeout: float) -> PhaseResult:
    """Publish ``deliveries`` deliveries' events with the worker stopped, start it, and time the
    healthy endpoints' deliveries until they have all succeeded."""
    import django
    from django.db import connections

    django.setup()
    from notifications.models import WebhookDelivery
    from notifications.services import webhook_endpoint_create

    connections.close_all()
    system.recreate_database()
    system.empty_queues()
    receivers = [Receiver(mode) for mode in modes]
    try:
        healthy = []
        for receiver in receivers:
            endpoint = webhook_endpoint_create(url=receiver.start(), events=list(EVENTS_PER_ORDER))
            if receiver.mode == "ok":
                healthy.append(endpoint.pk)
        orders = max(1, deliveries // (len(modes) * len(EVENTS_PER_ORDER)))
        _publish(orders)
        expected = orders * len(EVENTS_PER_ORDER) * len(healthy)
        worker = system.System(web_workers=0, worker_concurrency=concurrency)
        worker.start("worker")
        started = time.perf_counter()
        try:
            done = 0
            while time.perf_counter() - started < timeout:
                done = WebhookDelivery.objects.filter(endpoint_id__in=healthy, status="succeeded").count()
                if done >= expected:
                    break
                time.sleep(0.2)
            elapsed = time.perf_counter() - started
        finally:
            worker.stop()
        if done < expected:
            raise RuntimeError(f"only {done} of {expected} healthy deliveries succeeded in {timeout:.0f} s")
        in_sequence = all(r.in_sequence() for r in receivers if r.mode == "ok")
        return PhaseResult(deliveries=expected, seconds=elapsed, in_sequence=in_sequence)
    finally:
        for receiver in receivers:
            receiver.stop()
        connections.close_all()


@dataclass(frozen=True)
class Figures:
    healthy: list[PhaseResult]
    hostile: list[PhaseResult]

    @property
    def ratio(self) -> float:
        """The healthy endpoints' rate beside the hostile two, against the same endpoints' share of
        the all-healthy rate (each endpoint gets a tenth of the deliveries in both phases)."""
        their_share = (ENDPOINTS - 2) / ENDPOINTS * statistics.median(r.rate for r in self.healthy)
        return statistics.median(r.rate for r in self.hostile) / their_share

    @property
    def in_sequence(self) -> bool:
        return all(r.in_sequence for r in self.healthy + self.hostile)


def run(*, deliveries: int, runs: int, concurrency: int, timeout: float = 900) -> Figures:
    """Both phases, ``runs`` times each, with progress on stdout (after ``system.prepare_environment``)."""
    healthy, hostile = [], []
    for run_number in range(1, runs + 1):
        result = one_phase(deliveries=deliveries, modes=["ok"] * ENDPOINTS, concurrency=concurrency, timeout=timeout)
        print(
            f"[bench] webhooks run {run_number}: {result.deliveries:,} deliveries to {ENDPOINTS} healthy endpoints "
            f"in {result.seconds:.1f} s ({result.rate:,.0f}/s)",
            flush=True,
        )
        healthy.append(result)
        modes = ["ok"] * (ENDPOINTS - 2) + ["hang", "fail"]
        result = one_phase(deliveries=deliveries, modes=modes, concurrency=concurrency, timeout=timeout)
        print(
            f"[bench] webhooks run {run_number}: with one endpoint hanging and one answering 500, the "
            f"{ENDPOINTS - 2} healthy ones got {result.deliveries:,} in {result.seconds:.1f} s ({result.rate:,.0f}/s)",
            flush=True,
        )
        hostile.append(result)
    return Figures(healthy=healthy, hostile=hostile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--worker-concurrency", type=int, default=2 * (os.cpu_count() or 1))
    parser.add_argument("--quick", action="store_true", help="1,000 deliveries, one run")
    args = parser.parse_args()
    if args.quick:
        args.deliveries, args.runs = 1_000, 1
    system.prepare_environment()
    figures = run(deliveries=args.deliveries, runs=args.runs, concurrency=args.worker_concurrency)
    print(
        f"healthy: {statistics.median(r.rate for r in figures.healthy):,.0f} deliveries/s; "
        f"with one endpoint hanging and one failing, the healthy ones keep {figures.ratio:.0%} "
        f"(goal >= {GOAL:.0%}); in sequence: {'yes' if figures.in_sequence else 'NO'}"
    )


if __name__ == "__main__":
    main()
