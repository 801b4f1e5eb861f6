"""The system on a 3-node RabbitMQ cluster: nodes are killed (``kill -9``) while orders keep coming.

Three private RabbitMQ nodes on loopback (tests/reliability/services.py, ``RabbitMQCluster``),
joined with ``rabbitmqctl join_cluster``; every process of the system is given the failover URL
listing all three. The work and dead-letter queues are quorum queues with a replica on each node,
so a majority (two of three) keeps every queue available. The first scenario loses one node at a
time, and twice: the node leading the ``inventory`` queue, which every process connected to first,
and, once it is back, the node leading it then. Both times the API keeps answering 202, the
workers and the publishers (web, relays, workers) carry on through the surviving nodes, and
nothing is lost or done twice.

Two of three nodes down at once is no majority: no queue takes or gives messages until a second
node is back. A 3-node cluster is not built to work through that, and the last scenario shows what
it costs instead: orders are still accepted (202), their messages wait in the outbox, no work is
done; once a second node is back everything flows, and again nothing is lost or done twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from kombu import Connection

from config import queues
from tests.processes import wait_until
from tests.reliability.services import RabbitMQCluster
from tests.reliability.stack import VHOST, OrderStream, Stack, assert_invariants, codes

logger = logging.getLogger(__name__)

pytestmark = [pytest.mark.flow, pytest.mark.reliability]

REPLICATED_QUEUES = (*queues.WORK_QUEUE_NAMES, *(queues.dead_letter_queue_name(q) for q in queues.WORK_QUEUE_NAMES))
# The web process stops publishing after commit for this long after a failed publish (leaving the
# rows to the relay), then reconnects: an order placed later than this after a node died was
# published by the web through a surviving node.
WEB_PUBLISH_BACKOFF_SECONDS = 5.0
# How long the scenario keeps two of the three nodes down.
MAJORITY_LOST_SECONDS = 10
PENDING_SQL = "SELECT count(*) FROM orders_order WHERE id = ANY(%s) AND status = 'pending'"
RESERVED_BY_WEB_SQL = """
SELECT count(*) FROM orders_order o
JOIN core_outboxmessage m ON m.task_name = 'orders.tasks.order_reserve_task' AND m.args = jsonb_build_array(o.id)
WHERE o.id = ANY(%s) AND o.status <> 'pending' AND m.published_at IS NOT NULL AND m.attempts = 0
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("cluster-stack")
    cluster = RabbitMQCluster(base)
    system = Stack(base, broker=cluster)
    try:
        system.start_services()
        # The queues are declared before any process starts, so the node leading inventory is
        # known: the URL lists it first, every process connects to it, and its loss takes every
        # connection (the web's, the relays', the workers') down with it.
        with Connection(cluster.url(VHOST)) as connection:
            queues.declare_topology(connection)
        cluster.first = cluster.replicas(VHOST)["inventory"].leader
        system.start_processes()
        yield system
    finally:
        system.stop()


class LogMarks:
    """How often a line appeared in the web's and the workers' logs since the mark was taken."""

    WEB_LOST = "deferred to the relay"  # the web's publisher met a dead connection
    WORKER_LOST = "Connection to broker lost"

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.before = self.counts()

    def counts(self) -> dict[str, int]:
        assert self.stack.web is not None
        workers = "".join(worker.log() for worker in self.stack.workers)
        return {"web": self.stack.web.log().count(self.WEB_LOST), "workers": workers.count(self.WORKER_LOST)}

    def since(self) -> dict[str, int]:
        return {name: count - self.before[name] for name, count in self.counts().items()}


def consumers(stack: Stack, queue: str) -> int:
    listed = stack.cluster.ctl("list_queues", "-p", VHOST, "--no-table-headers", "name", "consumers").stdout
    # A queue left out of the listing (a node that has just lost its leader) has no consumer yet.
    return dict((name, int(count)) for name, count in (line.split() for line in listed.splitlines())).get(queue, 0)


def inventory_leader(cluster: RabbitMQCluster) -> str | None:
    """The node leading the inventory queue; None while the queue is not listed (a node that has
    just lost the leader may leave it out of ``list_queues`` until a new one is elected)."""
    replica = cluster.replicas(VHOST).get("inventory")
    return replica.leader if replica is not None else None


def lose_the_node_leading_inventory(stack: Stack, stream: OrderStream) -> dict[str, object]:
    """Kill -9 the node leading the inventory queue; while it is down, see the system carry on
    through the other two; start it again and wait until it holds its replicas again."""
    cluster = stack.cluster
    leader = cluster.replicas(VHOST)["inventory"].leader
    node = cluster.node_named(leader)
    placed_before = len(stream.answers)
    marks = LogMarks(stack)
    node.kill()
    killed_at = time.monotonic()

    # a surviving replica leads the queue
    wait_until(lambda: inventory_leader(cluster) not in (None, leader), timeout=60, message="a new leader")
    elected_in = time.monotonic() - killed_at
    # both workers consume it again, from the surviving nodes
    wait_until(lambda: consumers(stack, "inventory") == len(stack.workers), timeout=90, message="workers back")
    consuming_in = time.monotonic() - killed_at
    # an order placed once the web's publisher had given up on the dead node is published by the
    # web (not left to the relay) and reserved, all while the node is still down
    time.sleep(max(0.0, WEB_PUBLISH_BACKOFF_SECONDS + 1 - (time.monotonic() - killed_at)))
    placed_after = len(stream.answers)

    def reserved_by_web() -> bool:
        later = [a.order_id for a in stream.answers[placed_after:] if a.order_id is not None]
        return bool(later) and stack.sql(RESERVED_BY_WEB_SQL, [later])[0] > 0

    wait_until(reserved_by_web, timeout=60, message="an order published by the web and reserved")
    carried_on_in = time.monotonic() - killed_at
    assert not node.running
    down_for = time.monotonic() - killed_at
    lost = marks.since()

    node.start()
    wait_until(
        lambda: all(len(r.online) == len(cluster.nodes) for r in cluster.replicas(VHOST).values()),
        timeout=90,
        message="every replica online again",
    )
    return {
        "node": leader,
        "orders placed while it was down": len(stream.answers) - placed_before,
        "new leader after s": round(elected_in, 1),
        "both workers consuming after s": round(consuming_in, 1),
        "an order published by the web and reserved after s": round(carried_on_in, 1),
        "down for s": round(down_for, 1),
        "connections lost": lost,
    }


def test_the_queues_are_quorum_queues_with_a_replica_on_every_node(stack: Stack):
    nodes = sorted(node.node for node in stack.cluster.nodes)
    replicas = stack.cluster.replicas(VHOST)
    for name in REPLICATED_QUEUES:
        assert replicas[name].members == nodes, (name, replicas[name])
        assert replicas[name].online == nodes, (name, replicas[name])
    # and every process was given every node, as a failover URL
    assert stack.env["CELERY_BROKER_URL"].count(";") == len(nodes) - 1


def test_killing_the_node_leading_inventory_then_a_second_node_loses_and_repeats_nothing(stack: Stack):
    # given orders arriving steadily, ten a second
    with OrderStream(stack) as stream:
        time.sleep(3)
        # when the node leading the inventory queue is killed, and started again once the other
        # two have carried on without it
        first = lose_the_node_leading_inventory(stack, stream)
        # (every process had connected to it first: the web's publisher and both workers lost
        # their connection, and carried on through the other nodes)
        lost = first["connections lost"]
        assert isinstance(lost, dict) and lost["web"] > 0 and lost["workers"] >= len(stack.workers), lost
        # and then the node leading it now, another one, the same way
        second = lose_the_node_leading_inventory(stack, stream)
        time.sleep(3)

    # then the API answered 202 throughout
    assert second["node"] != first["node"]
    assert codes(stream.answers) == {202: len(stream.answers)}, codes(stream.answers)
    # and every order settles, each effect once: no order lost, no ledger row, transition,
    # e-mail or webhook delivery twice, no dead letter
    waited = stack.settle()
    figures = assert_invariants(stack, "cluster nodes killed")
    assert figures["resent after a crash"] == []
    logger.warning(
        "cluster: %d orders, all 202; first loss %s; second loss %s; settled %.1fs after",
        len(stream.answers), first, second, waited,
    )  # fmt: skip


def test_two_nodes_down_at_once_stops_the_work_not_the_orders_and_it_resumes_with_a_majority(stack: Stack):
    # given orders arriving steadily, ten a second
    cluster = stack.cluster
    with OrderStream(stack) as stream:
        time.sleep(3)
        # when two of the three nodes are killed at once: no queue has a majority of its replicas
        leader = cluster.node_named(cluster.replicas(VHOST)["inventory"].leader)
        other = next(node for node in cluster.nodes if node is not leader)
        leader.kill()
        other.kill()
        time.sleep(1)  # orders whose messages were already in the queues may still be reserved
        placed_at_loss = len(stream.answers)
        time.sleep(MAJORITY_LOST_SECONDS)
        placed_without_majority = [a.order_id for a in stream.answers[placed_at_loss:] if a.order_id is not None]

        # then the API still accepts every order, and none placed meanwhile is worked on: their
        # messages wait in the outbox (the broker does not confirm them)
        assert placed_without_majority
        assert stack.sql(PENDING_SQL, [placed_without_majority]) == (len(placed_without_majority),)
        unpublished = stack.sql("SELECT count(*) FROM core_outboxmessage WHERE published_at IS NULL")[0]
        assert unpublished >= len(placed_without_majority)

        # when one of them is back: a majority again
        leader.start()
        back = time.monotonic()
        # then the waiting orders are worked on, while the third node is still down
        wait_until(lambda: stack.sql(PENDING_SQL, [placed_without_majority]) == (0,), timeout=120,
                   message="the orders placed without a majority to be worked on")  # fmt: skip
        resumed_in = time.monotonic() - back
        other.start()
        time.sleep(3)

    assert codes(stream.answers) == {202: len(stream.answers)}, codes(stream.answers)
    waited = stack.settle()
    figures = assert_invariants(stack, "two cluster nodes down at once")
    assert figures["resent after a crash"] == []
    logger.warning(
        "cluster, two nodes down: %d orders, all 202; %d placed in %d s without a majority (%d outbox rows "
        "unpublished), all worked on %.1fs after a second node was back; settled %.1fs after",
        len(stream.answers), len(placed_without_majority), MAJORITY_LOST_SECONDS, unpublished, resumed_in, waited,
    )  # fmt: skip
