"""Dead letters: task messages RabbitMQ moved to ``<queue>.dlq`` (config/queues.py).

A message is dead-lettered when a worker rejects it without requeue (the task failed for good,
or the message could not be decoded) or when it exceeds the work queue's delivery limit (it kept
crashing its worker). The broker adds an ``x-death`` header saying where, why and how often.

Reading never loses a message: each one is fetched with ``basic.get`` without acknowledgement
and held by our channel; whatever is not explicitly acknowledged (replayed or purged) goes back
to the dead-letter queue when the channel closes, even if this process dies. While a command
holds them, another command does not see them. Reads are bounded: a listing holds at most the
number asked for (``LIST_LIMIT`` by default), a replay or purge at most ``SCAN_LIMIT`` (the
oldest, queue by queue), so a queue of a million dead letters never has to fit in memory here.

Replay publishes the message again, with broker confirms, to exchange ``tasks`` with the
original queue's name as routing key (the routing key of every work queue is its name), and only
then acknowledges the dead letter. A crash between the two leaves a copy in both places: tasks
are idempotent, so the second run changes nothing. The replayed copy keeps its body, properties,
task id and ``x-death`` history, and starts with a fresh retry budget (``retries`` 0, no ``eta``
or ``expires``): a replay is a new run of the task, as if just sent.

A task named in the ``DEAD_LETTER_REPLAY_HANDLERS`` setting is replayed by its app's service
instead (a notification's send is recovered as the admin's *Resend* recovers it): the handler
does the work in its own transaction, then the dead letter is acknowledged. ``ReplayRefused``
from it leaves the letter where it is, with the reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import amqp
from django.conf import settings
from django.utils.module_loading import import_string
from kombu import Connection

from config import queues
from config.celery_app import app
from core.audit import audit_record
from core.models import TaskFailure

_REASONS = {
    "rejected": "rejected by a worker",
    "delivery_limit": (
        f"delivered more than {queues.DELIVERY_LIMIT} times without being acknowledged: "
        "it kept crashing or losing its worker"
    ),
    "expired": "expired in its queue",
    "maxlen": "dropped from a full queue",
}


# Dead letters a listing (``dlq list``, the admin page) reads by default.
LIST_LIMIT = 100
# Dead letters one replay or purge reads at most, to find the ids asked for or to act on all;
# what lies beyond is left for the next run (the commands say so).
SCAN_LIMIT = 10_000


class DeadLetterError(Exception):
    """A request about dead letters that cannot be carried out (unknown queue, unroutable replay)."""


class ReplayRefused(Exception):
    """Raised by a replay handler: the letter cannot be replayed now and stays in its queue."""


@dataclass(frozen=True)
class DeadLetteredMessage:
    """One dead-lettered message, as operators see it."""

    id: str  # the Celery task id, or "sha256-..." of the body for a message without one
    queue: str  # the work queue it died in, and goes back to on replay
    dead_letter_queue: str
    task: str | None
    args: Any
    kwargs: Any
    error: str
    reason: str  # x-death reason of its latest death
    death_count: int
    died_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "queue": self.queue,
            "dead_letter_queue": self.dead_letter_queue,
            "task": self.task,
            "args": self.args,
            "kwargs": self.kwargs,
            "error": self.error,
            "reason": self.reason,
            "death_count": self.death_count,
            "died_at": self.died_at.isoformat() if self.died_at else None,
        }


class DeadLetterList(list[DeadLetteredMessage]):
    """Dead letters as read (oldest first), with how many the queues held when they were read."""

    def __init__(self, letters: Sequence[DeadLetteredMessage] = (), *, total: int = 0) -> None:
        super().__init__(letters)
        self.total = max(total, len(letters))

    @property
    def more(self) -> int:
        """Dead letters in the queues that were not read (beyond the limit)."""
        return self.total - len(self)


@dataclass
class DeadLetterResult:
    """What a replay or purge did (or, for a dry run, would do)."""

    done: list[DeadLetteredMessage] = field(default_factory=list)
    # How each replayed letter was replayed, by id: "to <queue>", or what its handler did.
    notes: dict[str, str] = field(default_factory=dict)
    skipped: list[tuple[DeadLetteredMessage, str]] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    cancelled: bool = False
    # Dead letters that were in the queues but not read (beyond ``SCAN_LIMIT``).
    unread: int = 0


@dataclass(frozen=True)
class _Held:
    message: amqp.Message
    letter: DeadLetteredMessage


def dead_letter_queues(queue: str | None = None) -> list[str]:
    """Names of the dead-letter queues to look at: all, or one given as ``notifications`` or
    ``notifications.dlq``."""
    if queue is None:
        return [q.name for q in queues.DEAD_LETTER_QUEUES]
    name = queue.removesuffix(".dlq")
    if name not in queues.WORK_QUEUE_NAMES:
        known = ", ".join(queues.WORK_QUEUE_NAMES)
        raise DeadLetterError(f"Unknown queue {queue!r}; the queues are {known}.")
    return [queues.dead_letter_queue_name(name)]


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _aware(value: Any) -> datetime | None:
    """x-death times are AMQP timestamps: whole seconds, UTC, decoded as naive datetimes."""
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _decoded_arguments(message: amqp.Message, headers: dict[str, Any]) -> tuple[Any, Any]:
    if message.properties.get("content_type") == "application/json":
        try:
            body = json.loads(message.body)
        except (ValueError, UnicodeDecodeError):
            body = None
        # Celery's message protocol 2: [args, kwargs, embed].
        if isinstance(body, list) and len(body) == 3:
            return body[0], body[1]
    return headers.get("argsrepr"), headers.get("kwargsrepr")


def _parse(message: amqp.Message, *, dead_letter_queue: str) -> DeadLetteredMessage:
    headers: dict[str, Any] = dict(message.headers or {})
    # x-death has one entry per (queue, reason), the latest first. Retries with a countdown
    # pass through Celery's delay queues, which add "expired" entries: not deaths of the task.
    deaths = [d for d in headers.get("x-death") or [] if _text(d.get("queue", "")) in queues.WORK_QUEUE_NAMES]
    latest = deaths[0] if deaths else {}
    body = message.body if isinstance(message.body, bytes) else _text(message.body).encode()
    task_id = headers.get("id")
    task = headers.get("task")
    args, kwargs = _decoded_arguments(message, headers) if task else (None, None)
    reason = _text(latest.get("reason", "unknown"))
    if not task:
        content_type = message.properties.get("content_type")
        error = f"not a task message, or not decodable (content type {content_type!r}); {_REASONS.get(reason, reason)}"
    else:
        error = _REASONS.get(reason, reason)
    return DeadLetteredMessage(
        id=_text(task_id) if task_id else f"sha256-{hashlib.sha256(body).hexdigest()[:24]}",
        # Each work queue dead-letters to its own .dlq, so the name says where it came from.
        queue=_text(latest["queue"]) if latest else dead_letter_queue.removesuffix(".dlq"),
        dead_letter_queue=dead_letter_queue,
        task=_text(task) if task else None,
        args=args,
        kwargs=kwargs,
        error=error,
        reason=reason,
        death_count=sum(int(death.get("count", 1)) for death in deaths) or 1,
        died_at=_aware(latest.get("time")),
    )


def _with_recorded_errors(held: list[_Held]) -> list[_Held]:
    """Use the recorded failure (core.failures) as the error of letters a task rejected."""
    task_ids = {h.letter.id for h in held if h.letter.task and h.letter.reason == "rejected"}
    latest: dict[str, TaskFailure] = {}
    for failure in TaskFailure.objects.filter(task_id__in=task_ids).order_by("task_id", "-failed_at"):
        latest.setdefault(failure.task_id, failure)
    result = []
    for h in held:
        recorded = latest.get(h.letter.id)
        if recorded is not None and h.letter.reason == "rejected":
            h = _Held(h.message, dataclasses.replace(h.letter, error=recorded.error))
        result.append(h)
    return result


@contextmanager
def _broker() -> Iterator[tuple[Connection, Any]]:
    """A connection with publisher confirms (the app's transport options) and one channel."""
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=3)
        queues.declare_dead_letter_topology(connection)
        channel: Any = connection.channel()  # a py-amqp channel: basic_get, basic_publish, ...
        try:
            yield connection, channel
        finally:
            # Returns every message fetched and not acknowledged to its dead-letter queue.
            channel.close()


def _ready_messages(channel: Any, dead_letter_queues: Sequence[str]) -> int:
    """Messages waiting in the queues (not those held): a passive declare reads the count."""
    return sum(channel.queue_declare(queue=name, passive=True)[1] for name in dead_letter_queues)


def _hold(channel: Any, dead_letter_queues: Sequence[str], *, limit: int) -> tuple[list[_Held], int]:
    """Hold up to ``limit`` dead letters, oldest first, queue by queue; returns them and how
    many were left unread in the queues."""
    waiting = _ready_messages(channel, dead_letter_queues)
    held: list[_Held] = []
    for name in dead_letter_queues:
        while len(held) < limit:
            message = channel.basic_get(queue=name, no_ack=False)
            if message is None:
                break
            held.append(_Held(message, _parse(message, dead_letter_queue=name)))
    return _with_recorded_errors(held), max(0, waiting - len(held))


def dead_letter_list(*, queue: str | None = None, limit: int = LIST_LIMIT) -> DeadLetterList:
    """The oldest ``limit`` dead letters (of one queue, or all); none is removed."""
    if limit < 1:
        raise DeadLetterError("The limit must be at least 1.")
    names = dead_letter_queues(queue)
    with _broker() as (_, channel):
        held, unread = _hold(channel, names, limit=limit)
        return DeadLetterList([h.letter for h in held], total=len(held) + unread)


def _select(held: list[_Held], ids: Collection[str] | None, result: DeadLetterResult) -> list[_Held]:
    if ids is None:
        return held
    wanted = set(ids)
    chosen = [h for h in held if h.letter.id in wanted]
    found = {h.letter.id for h in chosen}
    result.not_found = [i for i in ids if i not in found]
    return chosen


def _replay_message(channel: Any, held: _Held) -> None:
    message = held.message
    properties = dict(message.properties)
    headers = dict(properties.get("application_headers") or {})
    headers.pop("x-delivery-count", None)  # the broker's count of the previous life
    if held.letter.task:  # a fresh retry budget
        headers.update({"retries": 0, "eta": None, "expires": None})
    properties.update(application_headers=headers, delivery_mode=2)
    # With the app's confirm_publish this waits for the broker's confirm; mandatory makes an
    # unroutable publish fail instead of vanishing.
    channel.basic_publish(
        amqp.Message(message.body, **properties),
        exchange=queues.TASK_EXCHANGE.name,
        routing_key=held.letter.queue,
        mandatory=True,
    )
    channel.basic_ack(message.delivery_tag)


ReplayHandler = Callable[[DeadLetteredMessage], str]


def _replay_handler(task: str | None) -> ReplayHandler | None:
    path = settings.DEAD_LETTER_REPLAY_HANDLERS.get(task or "")
    return import_string(path) if path else None


def _replay_plan(held: _Held) -> tuple[ReplayHandler | None, str]:
    """How a letter would be replayed: its handler (None: published back as it is) and a note."""
    handler = _replay_handler(held.letter.task)
    if handler is None:
        return None, f"to {held.letter.queue}"
    return handler, f"by {settings.DEAD_LETTER_REPLAY_HANDLERS[held.letter.task or '']}"


def dead_letter_replay(
    *,
    ids: Collection[str] | None,
    queue: str | None = None,
    on_done: Callable[[DeadLetteredMessage, str], None] | None = None,
    dry_run: bool = False,
    actor: Any = None,
    actor_name: str = "",
) -> DeadLetterResult:
    """Replay dead letters (those with ``ids``, or all when None) among the oldest ``SCAN_LIMIT``:
    back to their original queues, or through their task's replay handler. ``on_done`` gets each
    letter and how it was replayed. With ``dry_run`` nothing is published, handled or removed:
    the result says what would be replayed and how (a handler may still refuse it then)."""
    names = dead_letter_queues(queue)
    result = DeadLetterResult()
    with _broker() as (_, channel):
        held_letters, result.unread = _hold(channel, names, limit=SCAN_LIMIT)
        for held in _select(held_letters, ids, result):
            if held.letter.queue not in queues.WORK_QUEUE_NAMES:
                result.skipped.append((held.letter, f"unknown original queue {held.letter.queue!r}"))
                continue
            handler, note = _replay_plan(held)
            if dry_run:
                pass
            elif handler is None:
                _replay_message(channel, held)
            else:
                try:
                    note = handler(held.letter)
                except ReplayRefused as exc:
                    result.skipped.append((held.letter, str(exc)))
                    continue
                channel.basic_ack(held.message.delivery_tag)
            result.done.append(held.letter)
            result.notes[held.letter.id] = note
            if on_done is not None:
                on_done(held.letter, note)
    if result.done and not dry_run:
        _audit("dead_letter.replay", result, actor=actor, actor_name=actor_name)
    return result


def _audit(action: str, result: DeadLetterResult, *, actor: Any, actor_name: str) -> None:
    """Record a replay or purge in the audit trail: which letters (their task, queue and error)."""
    letters = [
        {"id": letter.id, "task": letter.task, "queue": letter.queue, "notes": result.notes.get(letter.id, "")}
        for letter in result.done
    ]
    audit_record(
        actor=actor,
        actor_name=actor_name,
        action=action,
        target_type="dead_letter",
        target_id=",".join(letter.id for letter in result.done),
        before={"letters": letters},
    )


def dead_letters_settle(*, queue: str, matching: Callable[[DeadLetteredMessage], bool]) -> list[DeadLetteredMessage]:
    """Remove the dead letters of ``queue`` (among the oldest ``SCAN_LIMIT``) that ``matching``
    picks, because their work was done another way (a notification recovered from the admin);
    returns them. The others stay."""
    settled: list[DeadLetteredMessage] = []
    with _broker() as (_, channel):
        held_letters, _ = _hold(channel, dead_letter_queues(queue), limit=SCAN_LIMIT)
        for held in held_letters:
            if matching(held.letter):
                channel.basic_ack(held.message.delivery_tag)
                settled.append(held.letter)
    return settled


def dead_letter_purge(
    *,
    ids: Collection[str] | None,
    queue: str | None = None,
    confirm: Callable[[Sequence[DeadLetteredMessage]], bool] | None = None,
    actor: Any = None,
    actor_name: str = "",
) -> DeadLetterResult:
    """Delete dead letters (those with ``ids``, or all when None) among the oldest ``SCAN_LIMIT``
    for good.

    ``confirm`` is shown the letters about to be deleted and may refuse; they are held, so
    exactly those are deleted.
    """
    names = dead_letter_queues(queue)
    result = DeadLetterResult()
    with _broker() as (_, channel):
        held_letters, result.unread = _hold(channel, names, limit=SCAN_LIMIT)
        chosen = _select(held_letters, ids, result)
        if not chosen:
            return result
        if confirm is not None and not confirm([h.letter for h in chosen]):
            result.cancelled = True
            return result
        for held in chosen:
            channel.basic_ack(held.message.delivery_tag)
            result.done.append(held.letter)
    if result.done:
        _audit("dead_letter.purge", result, actor=actor, actor_name=actor_name)
    return result
