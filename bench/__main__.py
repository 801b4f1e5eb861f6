"""Run every benchmark against the system under production settings and print one table.

    bash scripts/bench.sh [--quick] [--runs 3] [--only create,read,...]

(``scripts/bench.sh`` installs wrk if it is missing, makes the services ready, then runs
``python -m bench`` with the same arguments.) Brings up gunicorn (``--web-workers``, default
2 x cores) and a Celery worker (``--worker-concurrency``, default 2 x cores: its tasks mostly
wait for PostgreSQL and RabbitMQ) and
beat on a fresh ``orders_bench`` database, measures each benchmark and its baseline side by side
in the same run, with the same server, and reports medians with min-max. The expiry benchmark
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

BENCHMARKS = ("create", "read", "pipeline", "flash", "memory", "expiry", "growth")
# The growth benchmark loads millions of orders (about 12 GB of tables at 10 million):
# it runs when asked for (--only growth), not by default.
DEFAULT_BENCHMARKS = tuple(name for name in BENCHMARKS if name != "growth")
CONNECTIONS = 16
PIPELINE_SKUS = 20


@dataclass
class Row:
    name: str
    result: str
    baseline: str
    ratio: str
    target: str
    met: bool
    generator_cpu: str = "-"
    detail: dict[str, Any] = field(default_factory=dict)


def spread(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


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
        from rest_framework.authtoken.models import Token

        customer = User.objects.create_user("bench-customer", "customer@bench.example", "bench-password")
        self.customer = customer
        self.token = Token.objects.create(user=customer).key
        self.skus = [self.product(stock=1_000_000).sku for _ in range(PIPELINE_SKUS)]

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
        """The create endpoint alone, as its baseline's publish has no consumer: the worker is
        stopped while both run, and works off their orders before the next run. (The pipeline
        benchmark creates orders with the worker running.)"""
        ours, base = [], []
        for _ in range(self.args.runs):
            self.wait_idle()
            self.system.stop("worker")
            base.append(self.wrk("write", [], connections=CONNECTIONS, duration=self.args.duration))
            ours.append(
                self.wrk("order", self.skus, connections=CONNECTIONS, duration=self.args.duration, profile="create")
            )
            self.system.start("worker")
        self.add_throughput_row("create order", ours, base, ratio_target=0.5, p99_target=100)

    def bench_read(self) -> None:
        from bench.models import BenchRow
        from orders.models import Order

        self.wait_idle()
        order_ids = Order.objects.filter(customer=self.customer).values_list("pk", flat=True)
        row_ids = BenchRow.objects.values_list("pk", flat=True)
        if not order_ids or not row_ids:
            raise RuntimeError("the read benchmark reads what the create benchmark wrote: run both")
        orders = ["/api/v1/orders/", str(min(order_ids)), str(max(order_ids))]
        rows = ["/bench/read/", str(min(row_ids)), str(max(row_ids))]
        ours, base = [], []
        for _ in range(self.args.runs):
            base.append(self.wrk("read", rows, connections=CONNECTIONS, duration=self.args.duration))
            ours.append(self.wrk("read", orders, connections=CONNECTIONS, duration=self.args.duration, profile="read"))
        self.add_throughput_row("read one order", ours, base, ratio_target=0.6, p99_target=50)

    def add_throughput_row(
        self, name: str, ours: list[LoadResult], base: list[LoadResult], *, ratio_target: float, p99_target: float
    ) -> None:
        ratio = statistics.median(r.throughput for r in ours) / statistics.median(r.throughput for r in base)
        p99 = statistics.median(r.p99_ms for r in ours)
        failures = sum(r.failed + r.socket_errors for r in ours + base)
        self.rows.append(
            Row(
                name=f"{name}, {CONNECTIONS} connections",
                result=f"{spread([r.throughput for r in ours])} req/s; p99 {spread([r.p99_ms for r in ours])} ms",
                baseline=f"{spread([r.throughput for r in base])} req/s; p99 {spread([r.p99_ms for r in base])} ms",
                ratio=f"{ratio:.2f}",
                target=f">= {ratio_target} x baseline; p99 <= {p99_target} ms",
                met=ratio >= ratio_target and p99 <= p99_target and failures == 0,
                generator_cpu=cpu_text(ours + base),
                detail={"failures": failures},
            )
        )
        # A closed loop of C connections has a mean latency of C / throughput (Little's law), and
        # a p99 no lower than that mean: the p99 target sets a floor on the throughput.
        floor = CONNECTIONS / (p99_target / 1000)
        base_median = statistics.median(r.throughput for r in base)
        self.notes.append(
            f"{name}: a p99 of {p99_target} ms over {CONNECTIONS} connections needs at least {floor:,.0f} req/s "
            f"(mean latency = connections / throughput), {floor / base_median:.2f} x this run's baseline."
        )

    def orders_created_since(self, since: Any) -> Any:
        from orders.models import Order

        return Order.objects.filter(created_at__gte=since)

    def bench_pipeline(self) -> None:
        from django.utils import timezone

        from orders.models import OrderStatus

        ratios, create_s, all_s, loads = [], [], [], []
        rss_start: dict[str, int] = {}
        rss_peak_change: dict[str, float] = {}
        for run in range(self.args.runs):
            self.wait_idle()
            if run == 0:
                rss_start = self.system.rss()  # the earlier benchmarks were the warm-up
            since = timezone.now()
            started = time.perf_counter()
            load = self.wrk(
                "order", self.skus, connections=CONNECTIONS, quota=self.args.pipeline_orders, profile="pipeline"
            )
            created = time.perf_counter() - started
            while self.orders_created_since(since).filter(status=OrderStatus.PENDING).exists():
                self.sample_rss(rss_start, rss_peak_change)
                time.sleep(0.2)
            done = time.perf_counter() - started
            self.sample_rss(rss_start, rss_peak_change)
            reserved = self.orders_created_since(since).filter(status=OrderStatus.RESERVED).count()
            if reserved != self.orders_created_since(since).count() or reserved < 0.99 * self.args.pipeline_orders:
                raise RuntimeError(f"pipeline: {reserved} of {self.args.pipeline_orders} reserved, {load}")
            ratios.append(done / created)
            create_s.append(created)
            all_s.append(done)
            loads.append(load)
        n = self.args.pipeline_orders
        self.rows.append(
            Row(
                name=f"pipeline: {n:,} orders created",
                result=f"all reserved after {spread(all_s, '{:.1f}')} s",
                baseline=f"created in {spread(create_s, '{:.1f}')} s "
                f"({spread([n / secs for secs in create_s])} orders/s, worker running)",
                ratio=f"{statistics.median(ratios):.2f}",
                target="<= 1.5 x creation time",
                met=statistics.median(ratios) <= 1.5,
                generator_cpu=cpu_text(loads),
            )
        )
        worst = max(rss_peak_change.values())
        self.rows.append(
            Row(
                name=f"memory over {n * self.args.runs:,} orders",
                result=f"largest RSS change {worst * 100:+.1f}% ({len(rss_start)} processes)",
                baseline="RSS after warm-up: "
                + ", ".join(f"{name} {kib / 1024:.0f} MiB" for name, kib in rss_start.items()),
                ratio="-",
                target="every process within +/-10%",
                met=abs(worst) <= 0.10,
                detail={"change": rss_peak_change},
            )
        )

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
        lost = 0  # attempts lost to socket errors or answered with an error (each is a customer who retries)
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
            lost += attempts - created - load.refused
            accepted.append(created)
            loads.append(load)
        self.rows.append(
            Row(
                name=f"flash sale: {attempts:,} attempts, 1 SKU, {stock:,} units, "
                f"{self.args.flash_connections} connections",
                result=f"all final {spread(tails, '{:.1f}')} s after the last 202"
                + ("; exactly the stock reserved" if ok else "; WRONG COUNTS")
                + f"; {spread(accepted, '{:,.0f}')} accepted (202), the rest refused as sold out (409)"
                + (f"; {lost} attempt(s) lost to errors" if lost else ""),
                baseline=f"all {attempts:,} answered in {spread(answered_in, '{:.1f}')} s",
                ratio="-",
                target=f"exactly {stock:,} reserved; final within 15 s",
                met=ok and statistics.median(tails) <= 15,
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
                baseline="-",
                ratio="-",
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
        served = [
            b
            for b in ("create", "read", "pipeline", "flash")
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
        if "growth" in wanted:
            began = time.perf_counter()
            self.bench_growth()
            print(f"[bench] growth done in {time.perf_counter() - began:.0f} s", flush=True)

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
                baseline=f"the same on {self.growth[0].size:,} orders",
                ratio="-",
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
    header = ("benchmark", "result: median (min-max)", "baseline", "ratio", "target", "met", "load gen CPU")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in bench.rows:
        cells = (
            row.name,
            row.result,
            row.baseline,
            row.ratio,
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
    parser.add_argument("--flash-attempts", type=int, default=5_000)
    parser.add_argument("--flash-stock", type=int, default=1_000)
    parser.add_argument("--flash-connections", type=int, default=256)
    parser.add_argument("--expiry-orders", type=int, default=20_000)
    parser.add_argument("--growth-sizes", default="1000000,10000000", help="orders, comma separated")
    parser.add_argument("--keep-growth-data", action="store_true", help="leave the growth data in orders_bench")
    parser.add_argument("--profile", metavar="DIR", help="record web and worker with py-spy during our runs, into DIR")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.duration = 1, 8
        args.pipeline_orders, args.flash_attempts, args.flash_stock, args.expiry_orders = 2_000, 1_000, 200, 5_000
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
