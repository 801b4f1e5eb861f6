"""Run every benchmark against the system under production settings and print one table.

    bash scripts/bench.sh [--quick] [--runs 3] [--only create,read,refusal,...,webhooks]

(``scripts/bench.sh`` installs wrk if it is missing, makes the services ready, then runs
``python -m bench`` with the same arguments.) Brings up gunicorn (``--web-workers``, default
2 x cores) and a Celery worker (``--worker-concurrency``, default 2 x cores: its tasks mostly
wait for PostgreSQL and RabbitMQ) and
beat on a fresh ``orders_bench`` database, measures each benchmark and its baselines side by side
in the same run, with the same server, and reports medians with min-max: the framework baseline
(a DRF view with the project's middleware and token authentication, bench/views.py) and the bare
one (a Django view with no middleware and no authentication, bench/bare.py), and our ratio to each. The expiry benchmark
runs in this process, after the servers have stopped. The growth benchmark (bench/growth.py) runs
only when asked for (``--only growth``), last: it loads millions of orders.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import system
from bench.load import LoadResult, run_wrk

BENCHMARKS = ("create", "read", "refusal", "pipeline", "flash", "memory", "expiry", "webhooks", "growth")
# The growth benchmark loads millions of orders (about 12 GB of tables at 10 million):
# it runs when asked for (--only growth), not by default.
DEFAULT_BENCHMARKS = tuple(name for name in BENCHMARKS if name != "growth")
CONNECTIONS = 16
# The read benchmark's orders (the customer's latest), and how long they are read before a run.
READ_ORDERS = 1_000
READ_WARM_UP_SECONDS = 3.0
PIPELINE_SKUS = 20
# Orders per second of the pipeline (created and reserved, end to end) before the cached reads,
# Redis refusals and batched reservations. The README's table of that round gave 79 orders/s:
# 10,000 orders in 126.6 s, of which about 35 s the load script spent waiting for a request it
# had counted but wrk never sent (see bench/wrk/load.lua); without that wait, about 110.
PIPELINE_REFERENCE = 110.0
# Orders placed one at a time to measure what a lone customer waits for the reservation.
AT_REST_ORDERS = 10
BARE_JSON = "/bare/json/"
BARE_WRITE = "/bare/write/"
FRAMEWORK_WRITE = "/bench/write/"
FRAMEWORK_CONSTANT = "/bench/constant/"


@dataclass
class Row:
    """One line of the table: ours, the framework baseline and the bare baseline of the same run."""

    name: str
    result: str
    framework: str
    bare: str
    framework_ratio: str
    bare_ratio: str
    target: str
    met: bool
    generator_cpu: str = "-"
    detail: dict[str, Any] = field(default_factory=dict)


def spread(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def reservation_waits_ms(orders: Any) -> list[float]:
    """Placement to reservation of each of ``orders`` (all reserved), in milliseconds."""
    return [
        (reserved - created).total_seconds() * 1000
        for created, reserved in orders.values_list("created_at", "reserved_at")
    ]


def quantiles_text(waits_ms: Sequence[float]) -> str:
    p99 = statistics.quantiles(waits_ms, n=100)[98] if len(waits_ms) > 1 else waits_ms[0]
    return f"median {statistics.median(waits_ms):,.0f} ms, p99 {p99:,.0f} ms"


def database_transactions() -> int:
    """Transactions committed and rolled back in the bench database so far (every statement
    outside a transaction is one). PostgreSQL publishes them within a second or so: waited for."""
    from django.db import connection

    time.sleep(1.5)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
        (count,) = cursor.fetchone()
    return int(count)


def cpu_text(results: list[LoadResult]) -> str:
    return f"{max(r.generator_cpu for r in results) * 100:.0f}%"


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.growth: list[Any] = []
        self.system = system.System(web_workers=args.web_workers, worker_concurrency=args.worker_concurrency)
        self.rows: list[Row] = []
        self.notes: list[str] = []

    # --- data ------------------------------------------------------------------------------
    def seed(self) -> None:
        from django.contrib.auth.models import User

        from core.tokens import api_token_issue

        customer = User.objects.create_user("bench-customer", "customer@bench.example", "bench-password")
        self.customer = customer
        self.token = api_token_issue(user=customer).token
        self.skus = [self.product(stock=1_000_000).sku for _ in range(PIPELINE_SKUS)]
        self.sold_out_sku = self.product(stock=0).sku
        self.bare_write: list[LoadResult] = []

    _products = 0

    def product(self, *, stock: int) -> Any:
        from decimal import Decimal

        from inventory.services import product_create

        Bench._products += 1
        return product_create(
            sku=f"BENCH-{Bench._products}", name="Bench product", price=Decimal("9.50"), currency="USD", stock=stock
        )

    def queue_depths(self) -> int:
        from kombu import Connection

        from config import queues

        with Connection(os.environ["CELERY_BROKER_URL"]) as connection:
            channel = connection.default_channel
            declared: list[Any] = [q.bind(channel).queue_declare(passive=True) for q in queues.WORK_QUEUES]
            return sum(d.message_count for d in declared)

    def wait_idle(self, timeout: float = 300) -> None:
        """Until the worker has caught up (no pending order, empty queues), so runs do not overlap."""
        from orders.models import Order, OrderStatus

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not Order.objects.filter(status=OrderStatus.PENDING).exists() and self.queue_depths() == 0:
                return
            time.sleep(0.5)
        raise RuntimeError("the worker did not catch up")

    def wrk(self, kind: str, values: list[str], *, profile: str = "", **kwargs: Any) -> LoadResult:
        """Run the load; with ``--profile DIR``, py-spy records web and worker meanwhile (``profile`` names it)."""
        if not (self.args.profile and profile):
            return run_wrk(self.system.url, token=self.token, kind=kind, values=values, **kwargs)
        out = Path(self.args.profile)
        out.mkdir(parents=True, exist_ok=True)
        spies = []
        for proc in self.system.procs.keys() & {"web", "worker"}:
            pid = str(self.system.procs[proc].pid)
            py_spy = str(Path(sys.executable).parent / "py-spy")
            argv = [*system.DIE_WITH_PARENT, py_spy, "record", "--pid", pid, "--subprocesses", "--nonblocking"]
            argv += ["--format", "raw", "--output", str(out / f"{profile}-{proc}.txt")]
            with (out / f"{profile}-{proc}.log").open("wb") as log:
                spies.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
        try:
            return run_wrk(self.system.url, token=self.token, kind=kind, values=values, **kwargs)
        finally:
            for spy in spies:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                spy.wait()

    # --- benchmarks --------------------------------------------------------------------------
    def bench_create(self) -> None:
        """The create endpoint alone, as its baselines' publishes have no consumer: the worker is
        stopped while those three run, and works off their orders before the next run. Then the
        same endpoint with the worker reserving alongside (sharing the cores, as in production)."""
        ours, framework, bare, busy = [], [], [], []
        duration = self.args.duration
        for _ in range(self.args.runs):
            self.wait_idle()
            self.system.stop("worker")
            bare.append(self.wrk("write", [BARE_WRITE], connections=CONNECTIONS, duration=duration))
            framework.append(self.wrk("write", [FRAMEWORK_WRITE], connections=CONNECTIONS, duration=duration))
            ours.append(self.wrk("order", self.skus, connections=CONNECTIONS, duration=duration, profile="create"))
            self.system.start("worker")
            self.wait_idle()
            busy.append(
                self.wrk("order", self.skus, connections=CONNECTIONS, duration=duration, profile="create-reserving")
            )
        self.bare_write = bare
        self.add_throughput_row("create order, worker stopped", ours, framework, bare, ratio_target=0.5, p99_target=60)
        self.add_throughput_row("create order, worker reserving alongside", busy, framework, bare, ratio_target=0.3)

    def bench_read(self) -> None:
        from bench.models import BenchRow
        from orders.models import Order

        self.wait_idle()
        order_ids = Order.objects.filter(customer=self.customer).values_list("pk", flat=True)
        row_ids = BenchRow.objects.values_list("pk", flat=True)
        if not order_ids or not row_ids:
            raise RuntimeError("the read benchmark reads what the create benchmark wrote: run both")
        # The customer's latest orders, as a storefront polls them: each read once just before the
        # measured run, as that polling would have (copies of live orders last 30 s).
        latest = max(order_ids)
        orders = ["/api/v1/orders/", str(max(min(order_ids), latest - READ_ORDERS + 1)), str(latest)]
        rows = ["/bench/read/", str(min(row_ids)), str(max(row_ids))]
        ours, framework, bare = [], [], []
        for _ in range(self.args.runs):
            bare.append(self.wrk("paths", [BARE_JSON], connections=CONNECTIONS, duration=self.args.duration))
            framework.append(self.wrk("read", rows, connections=CONNECTIONS, duration=self.args.duration))
            self.wrk("read", orders, connections=CONNECTIONS, duration=READ_WARM_UP_SECONDS)
            ours.append(self.wrk("read", orders, connections=CONNECTIONS, duration=self.args.duration, profile="read"))
        self.add_throughput_row("read one order", ours, framework, bare, ratio_target=0.5, p99_target=30)

    def bench_refusal(self) -> None:
        """Orders for a SKU with no stock: every answer a 409 ``sold_out``, and no PostgreSQL
        transaction for it (counted over the run from ``pg_stat_database``; beat's periodic
        work is in the count, so a few per second are not the refusals')."""
        ours, framework, bare, per_refusal = [], [], [], []
        duration = self.args.duration
        for _ in range(self.args.runs):
            self.wait_idle()
            bare.append(self.wrk("paths", [BARE_JSON], connections=CONNECTIONS, duration=duration))
            framework.append(self.wrk("paths", [FRAMEWORK_CONSTANT], connections=CONNECTIONS, duration=duration))
            before = database_transactions()
            load = self.wrk(
                "order", [self.sold_out_sku], connections=CONNECTIONS, duration=self.args.duration, profile="refusal"
            )
            per_refusal.append((database_transactions() - before) / max(load.refused, 1))
            ours.append(load)
        refused_all = all(r.refused == r.answered for r in ours)
        self.add_throughput_row(
            "sold-out refusal (409)",
            ours,
            framework,
            bare,
            ratio_target=0.5,
            p99_target=30,
            expect_refused=True,
            extra=f"; {statistics.median(per_refusal):.3f} PostgreSQL transactions per refusal"
            + ("" if refused_all else "; SOME NOT REFUSED"),
            extra_met=refused_all and statistics.median(per_refusal) < 0.05,
            extra_target="; < 0.05 PostgreSQL transactions per refusal (beat's included)",
        )

    def add_throughput_row(
        self,
        name: str,
        ours: list[LoadResult],
        framework: list[LoadResult],
        bare: list[LoadResult],
        *,
        ratio_target: float,
        p99_target: float | None = None,
        expect_refused: bool = False,
        extra: str = "",
        extra_met: bool = True,
        extra_target: str = "",
    ) -> None:
        def rate(results: list[LoadResult]) -> float:
            return statistics.median(r.throughput for r in results)

        def figures(results: list[LoadResult]) -> str:
            return f"{spread([r.throughput for r in results])} req/s; p99 {spread([r.p99_ms for r in results])} ms"

        bare_ratio = rate(ours) / rate(bare)
        p99 = statistics.median(r.p99_ms for r in ours)
        # Our answers are all 2xx, or all 409 for the refusal row; the baselines' all 2xx.
        wrong = sum((r.answered - r.refused if expect_refused else r.failed) + r.socket_errors for r in ours)
        wrong += sum(r.failed + r.socket_errors for r in framework + bare)
        target = f">= {ratio_target} x bare" + (f"; p99 <= {p99_target} ms" if p99_target else "") + extra_target
        self.rows.append(
            Row(
                name=f"{name}, {CONNECTIONS} connections",
                result=figures(ours) + extra + (f"; {wrong} unexpected answer(s) or socket error(s)" if wrong else ""),
                framework=figures(framework),
                bare=figures(bare),
                framework_ratio=f"{rate(ours) / rate(framework):.2f}",
                bare_ratio=f"{bare_ratio:.2f}",
                target=target,
                met=bare_ratio >= ratio_target
                and (p99_target is None or p99 <= p99_target)
                and not wrong
                and extra_met,
                generator_cpu=cpu_text(ours + framework + bare),
                detail={"unexpected": wrong},
            )
        )
        if p99_target:
            # A closed loop of C connections has a mean latency of C / throughput (Little's law),
            # and a p99 no lower than that mean: the p99 target sets a floor on the throughput.
            floor = CONNECTIONS / (p99_target / 1000)
            self.notes.append(
                f"{name}: a p99 of {p99_target} ms over {CONNECTIONS} connections needs at least {floor:,.0f} req/s "
                f"(mean latency = connections / throughput), {floor / rate(bare):.2f} x this run's bare baseline."
            )

    def orders_created_since(self, since: Any) -> Any:
        from orders.models import Order

        return Order.objects.filter(created_at__gte=since)

    def bench_pipeline(self) -> None:
        from django.utils import timezone

        from orders.models import OrderStatus

        rates, create_s, all_s, loads = [], [], [], []
        waits: list[float] = []
        cpu_per_order: list[dict[str, float]] = []
        idle: list[float] = []
        rss_start: dict[str, int] = {}
        rss_peak_change: dict[str, float] = {}
        if not self.bare_write:  # measured by the create benchmark when it ran
            self.wait_idle()
            self.system.stop("worker")
            self.bare_write = [self.wrk("write", [BARE_WRITE], connections=CONNECTIONS, duration=self.args.duration)]
            self.system.start("worker")
        for run in range(self.args.runs):
            self.wait_idle()
            if run == 0:
                rss_start = self.system.rss()  # the earlier benchmarks were the warm-up
            since = timezone.now()
            cpu_start = system.cpu_by_component()
            started = time.perf_counter()
            load = self.wrk(
                "order", self.skus, connections=CONNECTIONS, quota=self.args.pipeline_orders, profile="pipeline"
            )
            created = time.perf_counter() - started
            while self.orders_created_since(since).filter(status=OrderStatus.PENDING).exists():
                self.sample_rss(rss_start, rss_peak_change)
                time.sleep(0.2)
            done = time.perf_counter() - started
            cpu_end = system.cpu_by_component()
            self.sample_rss(rss_start, rss_peak_change)
            reserved = self.orders_created_since(since).filter(status=OrderStatus.RESERVED).count()
            if reserved != self.orders_created_since(since).count() or reserved < 0.99 * self.args.pipeline_orders:
                raise RuntimeError(f"pipeline: {reserved} of {self.args.pipeline_orders} reserved, {load}")
            rates.append(reserved / done)
            waits.extend(reservation_waits_ms(self.orders_created_since(since)))
            cpu_per_order.append({name: (cpu_end[name] - cpu_start.get(name, 0.0)) / reserved for name in cpu_end})
            used = sum(cpu_end.values()) - sum(cpu_start.values())
            idle.append(1 - used / (done * (os.cpu_count() or 1)))
            create_s.append(created)
            all_s.append(done)
            loads.append(load)
        n = self.args.pipeline_orders
        rate = statistics.median(rates)
        bare_rate = statistics.median(r.throughput for r in self.bare_write)
        reference = self.args.pipeline_reference
        self.rows.append(
            Row(
                name=f"pipeline: {n:,} orders created and reserved, end to end",
                result=f"{spread(rates)} orders/s (all reserved after {spread(all_s, '{:.1f}')} s; "
                f"created in {spread(create_s, '{:.1f}')} s)",
                framework=f"before this round: {reference:,.0f} orders/s",
                bare=f"{spread([r.throughput for r in self.bare_write])} inserts + publishes/s",
                framework_ratio=f"{rate / reference:.2f}",
                bare_ratio=f"{rate / bare_rate:.2f}",
                target=f">= 2 x {reference:,.0f} orders/s (before this round)",
                met=rate >= 2 * reference,
                generator_cpu=cpu_text(loads),
            )
        )
        parts = {name: statistics.median(run.get(name, 0.0) for run in cpu_per_order) for name in cpu_per_order[0]}
        self.notes.append(
            "pipeline: CPU per order (median of runs): "
            + ", ".join(f"{name} {ms * 1000:.1f} ms" for name, ms in sorted(parts.items(), key=lambda kv: -kv[1]))
            + f"; {sum(parts.values()) * 1000:.1f} ms in all; {statistics.median(idle) * 100:.0f} % of the "
            f"{os.cpu_count()} cores' time went to none of these (idle, or other processes)."
        )
        at_rest = self.reservation_waits_at_rest()
        self.notes.append(
            f"pipeline: placement to reservation {quantiles_text(waits)} over the runs' orders; one order at a "
            f"time, the system otherwise idle, {quantiles_text(at_rest)} ({len(at_rest)} orders)."
        )
        worst = max(rss_peak_change.values())
        self.rows.append(
            Row(
                name=f"memory over {n * self.args.runs:,} orders",
                result=f"largest RSS change {worst * 100:+.1f}% ({len(rss_start)} processes)",
                framework="RSS after warm-up: "
                + ", ".join(f"{name} {kib / 1024:.0f} MiB" for name, kib in rss_start.items()),
                bare="-",
                framework_ratio="-",
                bare_ratio="-",
                target="every process within +/-10%",
                met=abs(worst) <= 0.10,
                detail={"change": rss_peak_change},
            )
        )

    def reservation_waits_at_rest(self) -> list[float]:
        """Placement to reservation of orders placed one at a time through the API, each once the
        one before is reserved: what a lone customer waits, the gathering of a batch included."""
        import httpx

        from orders.models import Order

        self.wait_idle()
        body = {"items": [{"sku": self.skus[0], "quantity": 1}]}
        headers = {"Authorization": f"Token {self.token}"}
        ids = []
        with httpx.Client(base_url=self.system.url, headers=headers, timeout=10) as client:
            for _ in range(AT_REST_ORDERS):
                response = client.post("/api/v1/orders/", json=body)
                response.raise_for_status()
                ids.append(response.json()["id"])
                self.wait_idle()  # the waits are the orders' own timestamps, not this polling's
        return reservation_waits_ms(Order.objects.filter(pk__in=ids))

    def sample_rss(self, start: dict[str, int], peak: dict[str, float]) -> None:
        for name, kib in self.system.rss().items():
            change = kib / start[name] - 1 if name in start else float("inf")
            if abs(change) > abs(peak.get(name, 0.0)):
                peak[name] = change
            peak.setdefault(name, change)

    def bench_flash(self) -> None:
        from django.db.models import Count, Max

        from orders.models import Order, OrderStatus

        attempts, stock = self.args.flash_attempts, self.args.flash_stock
        tails, answered_in, accepted, loads = [], [], [], []
        ok = True
        socket_errors = errors = 0  # attempts never answered; answered with anything but 202 or 409
        error_kinds: dict[str, int] = {}  # wrk's socket errors by kind (connect, read, write, timeouts)
        for _ in range(self.args.runs):
            self.wait_idle()
            product = self.product(stock=stock)
            orders = Order.objects.filter(lines__product=product)
            started = time.perf_counter()
            load = self.wrk("order", [product.sku], connections=self.args.flash_connections, quota=attempts)
            answered_in.append(time.perf_counter() - started)
            while orders.filter(status=OrderStatus.PENDING).exists():
                time.sleep(0.1)
            # The last 202 is the last order's creation; an order is final at its last change.
            times = orders.aggregate(last_accepted=Max("created_at"), last_final=Max("updated_at"))
            tails.append((times["last_final"] - times["last_accepted"]).total_seconds())
            counts = dict(orders.order_by().values_list("status").annotate(n=Count("pk")))
            product.refresh_from_db()
            created = load.answered - load.failed
            ok &= counts.get(OrderStatus.RESERVED, 0) == stock and sum(counts.values()) == created
            ok &= product.available == 0
            socket_errors += load.socket_errors + (attempts - load.answered)
            for kind, count in load.socket_error_kinds.items():
                error_kinds[kind] = error_kinds.get(kind, 0) + count
            errors += load.failed - load.refused
            accepted.append(created)
            loads.append(load)
        window = self.args.flash_window
        kinds = f" ({', '.join(f'{kind} {n}' for kind, n in sorted(error_kinds.items()))})" if error_kinds else ""
        self.rows.append(
            Row(
                name=f"flash sale: {attempts:,} attempts, 1 SKU, {stock:,} units, "
                f"{self.args.flash_connections} connections",
                result=f"all final {spread(tails, '{:.1f}')} s after the last 202"
                + ("; exactly the stock reserved" if ok else "; WRONG COUNTS")
                + f"; {spread(accepted, '{:,.0f}')} accepted (202), the rest refused as sold out (409)"
                + f"; {socket_errors} socket error(s){kinds}, {errors} other error(s)",
                framework=f"all {attempts:,} answered in {spread(answered_in, '{:.1f}')} s",
                bare="-",
                framework_ratio="-",
                bare_ratio="-",
                target=f"exactly {stock:,} reserved; every attempt answered within {window:.0f} s, "
                "0 socket errors; final within 5 s",
                met=ok
                and not socket_errors
                and not errors
                and statistics.median(tails) <= 5
                and max(answered_in) <= window,
                generator_cpu=cpu_text(loads),
            )
        )

    def bench_expiry(self) -> None:
        from bench import expiry

        rates = [expiry.one_timed_run(self.args.expiry_orders) for _ in range(self.args.runs)]
        self.rows.append(
            Row(
                name=f"expiry: {self.args.expiry_orders:,} overdue orders",
                result=f"{spread(rates)} orders/s closed, stock released",
                framework="-",
                bare="-",
                framework_ratio="-",
                bare_ratio="-",
                target=">= 1,000 orders/s",
                met=statistics.median(rates) >= 1000,
            )
        )

    # --- the run -----------------------------------------------------------------------------
    def run(self) -> None:
        import django

        wanted = self.args.only
        django.setup()
        system.recreate_database()
        system.empty_queues()
        from inventory.stock_marks import stock_marks_clear
        from orders.cache import orders_cache_clear
        from orders.reservation_requests import reservation_requests_taken

        # The cached copies of the database just dropped (product and order ids start again),
        # and a reservation mark whose task went with the queues.
        stock_marks_clear()
        orders_cache_clear()
        reservation_requests_taken()
        served = [
            b
            for b in ("create", "read", "refusal", "pipeline", "flash")
            if b in wanted or (b == "pipeline" and "memory" in wanted)
        ]
        if served:
            self.seed()
            self.system.start()
            try:
                for name in served:
                    began = time.perf_counter()
                    getattr(self, f"bench_{name}")()
                    print(f"[bench] {name} done in {time.perf_counter() - began:.0f} s", flush=True)
            finally:
                self.system.stop()
        if "expiry" in wanted:
            began = time.perf_counter()
            self.bench_expiry()
            print(f"[bench] expiry done in {time.perf_counter() - began:.0f} s", flush=True)
        if "webhooks" in wanted:
            began = time.perf_counter()
            self.bench_webhooks()
            print(f"[bench] webhooks done in {time.perf_counter() - began:.0f} s", flush=True)
        if "growth" in wanted:
            began = time.perf_counter()
            self.bench_growth()
            print(f"[bench] growth done in {time.perf_counter() - began:.0f} s", flush=True)

    def bench_webhooks(self) -> None:
        from bench import webhooks

        figures = webhooks.run(
            deliveries=self.args.webhook_deliveries, runs=self.args.runs, concurrency=self.args.worker_concurrency
        )
        healthy = [r.rate for r in figures.healthy]
        hostile = [r.rate for r in figures.hostile]
        self.rows.append(
            Row(
                name=f"webhooks: {figures.healthy[0].deliveries:,} deliveries to {webhooks.ENDPOINTS} local endpoints",
                result=f"{spread(healthy)} deliveries/s; with one endpoint hanging and one answering 500, "
                f"the 8 healthy ones {spread(hostile)}/s ({figures.ratio:.0%} of their share of the first rate); "
                f"in sequence: {'yes' if figures.in_sequence else 'no'}",
                framework="-",
                bare="-",
                framework_ratio="-",
                bare_ratio="-",
                target=f">= {webhooks.GOAL:.0%} of the healthy rate kept; every order's events in sequence",
                met=figures.ratio >= webhooks.GOAL and figures.in_sequence,
            )
        )

    def bench_growth(self) -> None:
        from bench import growth

        self.growth = growth.run(
            sizes=self.args.growth_sizes,
            runs=self.args.runs,
            duration=self.args.duration,
            web_workers=self.args.web_workers,
            keep=self.args.keep_growth_data,
        )
        sizes = ", ".join(f"{figures.size:,}" for figures in self.growth[1:])
        self.rows.append(
            Row(
                name=f"growth: reads and the expiry sweep at {sizes} orders",
                result="see the growth table above",
                framework=f"the same on {self.growth[0].size:,} orders",
                bare="-",
                framework_ratio="-",
                bare_ratio="-",
                target="every figure within 1.25 x of the empty database",
                met=False,  # set by the growth table, printed last
            )
        )


def machine() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return f"{os.cpu_count()} cores ({model}), {mem_kib / 1024 / 1024:.0f} GiB RAM, Python {platform.python_version()}"


def print_table(bench: Bench, elapsed: float) -> None:
    args = bench.args
    if bench.growth:
        from bench import growth

        print("\nGrowth: each endpoint on the empty database, and at each size (x empty):")
        bench.rows[-1].met = growth.print_report(bench.growth)
    print()
    print(f"Machine: {machine()}")
    print(
        f"Server: gunicorn --workers {args.web_workers} (sync), celery worker --concurrency "
        f"{args.worker_concurrency} (prefork), beat; production settings. Load: wrk, 1 thread; "
        f"{args.runs} run(s) each, {args.duration:.0f} s per throughput run. Total {elapsed / 60:.1f} min."
    )
    print()
    header = (
        "benchmark",
        "ours: median (min-max)",
        "framework baseline",
        "bare baseline",
        "ours / framework",
        "ours / bare",
        "target",
        "met",
        "load gen CPU",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in bench.rows:
        cells = (
            row.name,
            row.result,
            row.framework,
            row.bare,
            row.framework_ratio,
            row.bare_ratio,
            row.target,
            "yes" if row.met else "NO",
            row.generator_cpu,
        )
        print("| " + " | ".join(cells) + " |")
    for note in bench.notes:
        print(f"\n{note}")
    results = system.LOG_DIR / "results.json"
    results.write_text(json.dumps([row.__dict__ for row in bench.rows], indent=2, default=str))
    print(f"\n(also in {results})")


def main() -> None:
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="one run each, small sizes (about 3 minutes; growth: 50,000 orders)"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=15, help="seconds per throughput run")
    parser.add_argument(
        "--only",
        default=",".join(DEFAULT_BENCHMARKS),
        help=f"comma separated, of {', '.join(BENCHMARKS)} (default: all but growth)",
    )
    # Two per core: a sync worker waits for PostgreSQL and RabbitMQ during part of each request,
    # and more (gunicorn's usual 2 x cores + 1) fight PostgreSQL, RabbitMQ, the Celery worker and
    # the load generator for the same cores (see the README).
    parser.add_argument("--web-workers", type=int, default=2 * cores)
    parser.add_argument("--worker-concurrency", type=int, default=2 * cores)
    parser.add_argument("--pipeline-orders", type=int, default=10_000)
    parser.add_argument(
        "--pipeline-reference",
        type=float,
        default=PIPELINE_REFERENCE,
        help="orders/s of the pipeline before this round's changes; the goal is twice it",
    )
    parser.add_argument("--flash-attempts", type=int, default=50_000)
    parser.add_argument("--flash-stock", type=int, default=1_000)
    parser.add_argument("--flash-connections", type=int, default=256)
    parser.add_argument("--flash-window", type=float, default=60, help="seconds in which every attempt is answered")
    parser.add_argument("--expiry-orders", type=int, default=20_000)
    parser.add_argument("--webhook-deliveries", type=int, default=10_000)
    parser.add_argument("--growth-sizes", default="1000000,10000000", help="orders, comma separated")
    parser.add_argument("--keep-growth-data", action="store_true", help="leave the growth data in orders_bench")
    parser.add_argument("--profile", metavar="DIR", help="record web and worker with py-spy during our runs, into DIR")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.duration = 1, 8
        args.pipeline_orders, args.flash_attempts, args.flash_stock, args.expiry_orders = 2_000, 5_000, 100, 5_000
        args.webhook_deliveries = 1_000
        # A tenth of the sale in a tenth of the time, over a quarter of the connections.
        args.flash_connections, args.flash_window = 64, 6
        args.growth_sizes = "50000"
    args.growth_sizes = sorted(int(size) for size in args.growth_sizes.split(","))
    args.only = {name.strip() for name in args.only.split(",")}
    unknown = args.only - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    system.prepare_environment()
    started = time.perf_counter()
    bench = Bench(args)
    bench.run()
    print_table(bench, time.perf_counter() - started)


if __name__ == "__main__":
    main()
