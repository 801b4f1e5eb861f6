"""Faults injected into the whole running system, each followed by the one invariant checker.

The system (tests/reliability/stack.py) runs on its own PostgreSQL, RabbitMQ and Redis, so they
can really be stopped, restarted and killed. Two beats run throughout: two relays and two
expiry sweepers are always at work (reserved orders expire a few seconds after reservation),
so "nothing done twice" is checked after every scenario. Scenarios run in this order on one
system; the invariants hold over everything done so far.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time

import httpx
import pytest
from redis import Redis

from orders.reservation_requests import REQUEST_KEY
from tests.processes import Worker, wait_until
from tests.reliability.stack import (
    HTTP_TIMEOUT,
    VHOST,
    Answer,
    OrderStream,
    Stack,
    accept_resends_caused_by_the_fault,
    assert_invariants,
    codes,
)

logger = logging.getLogger(__name__)

pytestmark = [pytest.mark.flow, pytest.mark.reliability]

# A killed pool process takes down the one task it runs; a killed worker, its pool's (concurrency 2).
KILLED_TASKS_AT_MOST = 1 + 2
# Tasks the two workers (concurrency 2 each) run at one time.
WORKER_TASKS_AT_ONCE = 4


def test_kill_9_of_a_pool_process_and_of_a_worker_during_hundreds_of_orders(stack: Stack):
    # given 300 orders arriving from 16 clients at once, 250 of them for an item with 50 in stock
    answers: list[Answer] = []
    placing = threading.Thread(
        target=lambda: answers.extend(stack.place_orders(150) + stack.place_orders(150, sku="SCARCE"))
    )
    placing.start()
    # when, with orders in flight, one worker's pool process and the other worker's main process are SIGKILLed
    wait_until(lambda: len(stack.accepted) >= 60, timeout=60, message="orders in flight")
    in_flight = [(stack.orders_in_flight(), stack.queued_messages())]
    stack.kill_pool_process(stack.workers[0])
    wait_until(lambda: len(stack.accepted) >= 200, timeout=60, message="more orders in flight")
    in_flight.append((stack.orders_in_flight(), stack.queued_messages()))
    stack.kill_main_process(stack.workers[1])  # and it is started again
    placing.join(timeout=120)

    # then every order was accepted, or refused at once as sold out once the scarce item's stock was
    # taken, and after the restart every accepted one settles
    assert set(codes(answers)) <= {202, 409}, codes(answers)
    assert codes(answers)[202] >= 200, codes(answers)
    assert all("sold_out" in answer.body for answer in answers if answer.status == 409)
    waited = stack.settle()
    accept_resends_caused_by_the_fault(stack, at_most=KILLED_TASKS_AT_MOST)
    figures = assert_invariants(stack, "kill -9")
    logger.warning(
        "kill -9: answers %s; (orders, messages) in flight at the kills %s; settled %.1fs after",
        dict(codes(answers)), in_flight, waited,
    )  # fmt: skip
    assert figures["stock"]["SCARCE"] == 50  # every scarce unit was reserved, then expired back


def readiness(stack: Stack) -> tuple[int, dict, float]:
    """What ``/readyz`` answers: status code, body, and seconds it took."""
    assert stack.web is not None
    started = time.monotonic()
    response = httpx.get(f"{stack.web.base_url}/readyz", timeout=HTTP_TIMEOUT)
    return response.status_code, response.json(), time.monotonic() - started


def await_readiness(stack: Stack, status: str) -> tuple[int, dict, float]:
    """Probe until ``/readyz`` reports ``status`` (each web process keeps a reading about a second)."""
    answers: list[tuple[int, dict, float]] = []

    def reports() -> bool:
        answers.append(readiness(stack))
        return answers[-1][1]["status"] == status

    wait_until(reports, timeout=30, interval=0.2, message=f"/readyz to report {status}")
    return answers[-1]


def test_a_rabbitmq_restart_during_a_steady_stream_of_orders(stack: Stack):
    # given orders arriving steadily, ten a second
    with OrderStream(stack) as stream:
        time.sleep(2)
        # when RabbitMQ stops for 5 seconds (every connection closed, new ones refused), then starts again
        stack.rabbitmq.stop_app()
        during = len(stream.answers)
        # then the web process stays ready (the outbox keeps the orders): 200, degraded, naming RabbitMQ
        code, ready, took = await_readiness(stack, "degraded")
        time.sleep(5)
        stack.rabbitmq.start_app()
        during = len(stream.answers) - during
        ok_again = await_readiness(stack, "ok")
        time.sleep(3)

    assert (code, ready["down"], ready["checks"]["rabbitmq"]["status"]) == (200, ["rabbitmq"], "unavailable"), ready
    assert took < 2.0, took  # within the second /readyz promises, with room for a loaded machine
    assert ok_again[0] == 200
    # and the API kept answering 202, and every order settles once the broker is back
    assert codes(stream.answers) == {202: len(stream.answers)}, codes(stream.answers)
    waited = stack.settle()
    assert_invariants(stack, "RabbitMQ restart")
    logger.warning("RabbitMQ restart: %d orders, %d while it was down; settled %.1fs after; /readyz while down: "
                   "%d %s down=%s in %.3fs", len(stream.answers), during, waited, code, ready["status"], ready["down"],
                   took)  # fmt: skip


def test_postgresql_stopped_for_10_seconds(stack: Stack):
    # given orders arriving steadily
    with OrderStream(stack) as stream:
        time.sleep(2)
        # when PostgreSQL stops (connections closed, new ones refused) for 10 seconds
        stack.postgres.stop()
        before = len(stream.answers)
        # then the web process is not ready: 503, unavailable, naming PostgreSQL
        not_ready = await_readiness(stack, "unavailable")
        time.sleep(10)
        stack.postgres.start()
        ready_again = await_readiness(stack, "ok")
        down = stream.answers[before:]
        # then the API comes back by itself: orders are accepted again, with no restart of anything
        back = time.monotonic()
        wait_until(lambda: stream.answers[-1].status == 202, timeout=60, message="the API to accept orders again")
        recovered_in = time.monotonic() - back
        time.sleep(2)

    code, ready, took = not_ready
    assert (code, ready["down"], ready["checks"]["postgresql"]["status"]) == (503, ["postgresql"], "unavailable"), ready
    assert took < 2.0, took
    assert ready_again[0] == 200
    # and every answer was a 202, or a 503 in the API's JSON error shape: never a 500, never HTML
    answers = stream.answers
    assert set(codes(answers)) <= {202, 503}, codes(answers)
    for answer in answers:
        if answer.status == 503:
            assert answer.content_type == "application/json", answer
            body = json.loads(answer.body)
            assert body["type"] == "server_error" and body["errors"][0]["code"] == "service_unavailable", body
    assert codes(down)[503] > 0, "no request saw the outage"
    # and no order is partial or lost, and everything settles
    waited = stack.settle()
    accept_resends_caused_by_the_fault(stack, at_most=WORKER_TASKS_AT_ONCE)
    assert_invariants(stack, "PostgreSQL stop")
    logger.warning("PostgreSQL stop: answers %s (%s while down); accepting again %.1fs after the restart; "
                   "settled %.1fs after; /readyz while down: %d %s down=%s in %.3fs", dict(codes(answers)),
                   dict(codes(down)), recovered_in, waited, code, ready["status"], ready["down"], took)  # fmt: skip


def test_orders_are_accepted_and_processed_while_redis_is_down(stack: Stack):
    # given Redis is down (the cache and the throttling counter)
    stack.redis.stop()
    try:
        # when orders are placed
        answers = stack.place_orders(30, concurrency=4)
        # then they are accepted and processed
        assert codes(answers) == {202: 30}, codes(answers)
        waited = stack.settle()
    finally:
        stack.redis.start()
    assert_invariants(stack, "Redis down")
    logger.warning("Redis down: 30 orders accepted, settled %.1fs after", waited)


def test_poison_messages_each_end_once_in_the_dead_letter_queue_and_the_queues_keep_flowing(stack: Stack, tmp_path):
    # given a message no worker can decode, a task that kills its worker every time and one that
    # fails for good, sent while orders keep coming
    raw = b"\x80\x04 not JSON {"
    sent = json.loads(stack.shell(SEND_POISON % {"raw": raw, "runs": str(tmp_path / "runs"), "tmp": str(tmp_path)}))
    with OrderStream(stack) as stream:
        time.sleep(5)

    # then each ends in a dead-letter queue, once, and the orders around them went through
    stack.dead_letters += [f"sha256-{hashlib.sha256(raw).hexdigest()[:24]}", sent["crash"], sent["fail"]]
    assert codes(stream.answers) == {202: len(stream.answers)}
    waited = stack.settle()
    wait_until(lambda: stack.invariant_report()["figures"]["dead letters"] == 3, timeout=60,
               message="three dead letters")  # fmt: skip
    assert_invariants(stack, "poison messages")
    logger.warning("poison: 3 dead letters; %d orders around them settled %.1fs after", len(stream.answers), waited)


def test_every_message_delivered_twice_has_each_effect_once(stack: Stack):
    # given a batch of orders, settled
    assert codes(stack.place_orders(50, concurrency=4)) == {202: 50}
    stack.settle()

    # when every message the system ever sent through its outbox is published and delivered a second time
    republished = int(stack.shell(REPUBLISH_ALL).strip())

    # then every effect is still there once
    waited = stack.settle()
    time.sleep(3)  # the second deliveries of messages whose effect was already there change nothing to wait for
    stack.settle()
    assert_invariants(stack, "every message twice")
    logger.warning("every message twice: %d messages published again; settled %.1fs after", republished, waited)


def test_two_beats_both_relayed_and_swept_throughout(stack: Stack):
    # (every scenario above ran with two beats: here is the proof that both were sending)
    for beat in stack.beats:
        log = beat.log()
        assert "Sending due task outbox-relay" in log, beat.log_path
        assert "Sending due task order-expiry-sweep" in log, beat.log_path
    figures = assert_invariants(stack, "two beats")
    assert figures["statuses"].get("expired", 0) > 0


SEND_POISON = """
import json
from kombu import Connection, Exchange, Producer
from config import queues
from config.celery_app import app
with Connection(app.conf.broker_url) as conn:
    Producer(conn.default_channel).publish(
        %(raw)r, exchange=Exchange(queues.TASK_EXCHANGE.name, type="topic"), routing_key=queues.WEBHOOKS,
        content_type="application/json", content_encoding="binary", delivery_mode=2,
    )
crash = app.send_task("tests.flows.poison_tasks.crash_worker_task", args=[%(runs)r], queue=queues.WEBHOOKS)
fail = app.send_task("tests.flows.poison_tasks.fail_until_fixed_task", args=[%(tmp)r + "/never", %(tmp)r + "/ran"],
                     queue=queues.WEBHOOKS)
print(json.dumps({"crash": crash.id, "fail": fail.id}))
"""

REPUBLISH_ALL = """
from core.models import OutboxMessage
print(OutboxMessage.objects.update(published_at=None))  # the beats' relays publish them all again
"""


REFUSE_WHEN_FULL = '{"max-length": 0, "overflow": "reject-publish"}'
RESERVE_ROW = (
    "SELECT published_at IS NOT NULL, attempts FROM core_outboxmessage "
    "WHERE task_name = 'orders.tasks.order_reserve_task' AND args = '[%d]'::jsonb"
)


def test_an_order_the_broker_refuses_stays_in_the_outbox_until_the_broker_takes_it(stack: Stack):
    # given nobody consumes the inventory queue (workers for the other queues only, so the relay
    # still runs), and the queue refuses (nacks) publishes once full: a quorum queue with
    # max-length 0 still takes one message when empty, so a first order fills it
    for worker in stack.workers:
        worker.stop()
    others = Worker(stack.env, log_dir=stack.logs, name="no-inventory")
    others.argv += ["-Q", "orders,email,webhooks"]
    others.start()
    stack.rabbitmq.ctl("set_policy", "-p", VHOST, "--apply-to", "queues", "refuse", "^inventory$", REFUSE_WHEN_FULL)
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT) as client:
            first = stack.place_order(client)
            wait_until(lambda: stack.sql(RESERVE_ROW % first.order_id)[0], timeout=30, message="the first publish")
            # when another order is placed once the mark of the first's task is gone (it expires
            # after a few seconds; removed here), so that this order sends a task of its own
            Redis.from_url(stack.redis.url(0)).delete(REQUEST_KEY)
            answer = stack.place_order(client)
        assert answer.status == 202, answer

        # then, however often the web and the relays try, its reservation task stays unpublished
        # (nothing is marked published that the broker did not confirm), and the order waits
        row = RESERVE_ROW % answer.order_id
        wait_until(lambda: stack.sql(row)[1] >= 3 or stack.sql(row)[0], timeout=60, message="three relay attempts")
        published, attempts = stack.sql(RESERVE_ROW % answer.order_id)
        assert not published and attempts >= 3, (published, attempts)
        assert stack.sql(f"SELECT status FROM orders_order WHERE id = {answer.order_id}") == ("pending",)
    finally:
        # when the broker takes messages again, and the inventory queue is consumed again
        stack.rabbitmq.ctl("clear_policy", "-p", VHOST, "refuse")
        others.stop()
        for worker in stack.workers:
            worker.start()

    # then the relay delivers it and the order is reserved
    wait_until(lambda: stack.sql(RESERVE_ROW % answer.order_id)[0], timeout=60, message="the relay to publish it")
    wait_until(
        lambda: stack.sql(f"SELECT status FROM orders_order WHERE id = {answer.order_id}") != ("pending",),
        timeout=60,
        message="the order to be worked on",
    )
    reserved = f"SELECT count(*) FROM orders_orderevent WHERE order_id = {answer.order_id} AND to_status = 'reserved'"
    assert stack.sql(reserved) == (1,)
    stack.settle()
    assert_invariants(stack, "broker refuses publishes")


def test_orders_are_accepted_while_a_broker_alarm_blocks_publishing(stack: Stack):
    # given RabbitMQ under a memory alarm: it keeps every connection open but stops reading from
    # any connection that publishes, so neither a publish nor its confirm ever completes
    stack.rabbitmq.ctl("set_vm_memory_high_watermark", "0")
    try:
        # when orders are placed
        with httpx.Client(timeout=HTTP_TIMEOUT) as client:
            answers = [stack.place_order(client) for _ in range(10)]
    finally:
        stack.rabbitmq.ctl("set_vm_memory_high_watermark", "0.4")

    # then each was accepted (a request gives up waiting for the broker instead of hanging), and
    # once the alarm clears the relay publishes what the requests could not, and all settle
    assert codes(answers) == {202: 10}, codes(answers)
    waited = stack.settle()
    assert_invariants(stack, "broker alarm")
    logger.warning("broker alarm: 10 orders accepted while publishing was blocked; settled %.1fs after", waited)
