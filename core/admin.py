from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from config import queues
from core import dead_letters
from core.admin_tools import BoundedCountAdmin, ReadOnlyAdmin, duration_display
from core.models import ApiToken, AuditEntry, DeadLetter, OutboxMessage, TaskFailure
from core.permissions import staff_may
from core.readings import outbox_backlog, queue_depths

logger = logging.getLogger(__name__)


@admin.register(TaskFailure)
class TaskFailureAdmin(BoundedCountAdmin):
    """Tasks that failed for good; their messages are in the dead-letter queues (manage.py dlq)."""

    list_display = ["failed_at", "task_name", "task_id", "queue", "retries", "error"]
    list_filter = ["queue", "task_name"]
    search_fields = ["task_id", "task_name", "error"]
    date_hierarchy = "failed_at"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OutboxStateFilter(admin.SimpleListFilter):
    """Unpublished rows by default: the backlog is what operators look for."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("unpublished", "unpublished"), ("published", "published")]

    def value(self) -> str:
        return "published" if super().value() == "published" else "unpublished"

    def choices(self, changelist: Any) -> Iterator[Any]:
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet[OutboxMessage]) -> QuerySet[OutboxMessage]:
        return queryset.filter(published_at__isnull=self.value() == "unpublished")


@admin.register(OutboxMessage)
class OutboxMessageAdmin(BoundedCountAdmin, ReadOnlyAdmin):
    """Tasks written with their business change; unpublished ones wait for the relay."""

    list_display = ["id", "task_name", "args", "created_at", "age", "published_at", "attempts", "last_error"]
    list_filter = [OutboxStateFilter]
    search_fields = ["=id", "task_name"]

    def get_ordering(self, request: HttpRequest) -> tuple[str, ...]:
        # Each state has its index: the partial one on unpublished rows, and published_at.
        if request.GET.get(OutboxStateFilter.parameter_name) == "published":
            return ("-published_at",)
        return ("created_at",)

    @admin.display(description="age (unpublished) or publish delay")
    def age(self, message: OutboxMessage) -> str:
        end = message.published_at or timezone.now()
        return duration_display(max(0.0, (end - message.created_at).total_seconds()))

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {**(extra_context or {}), "outbox_backlog": outbox_backlog()})


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    """The dead-letter queues, read from RabbitMQ (core/dead_letters.py, as ``manage.py dlq``).

    Listing holds the letters only while they are read, and returns them all to their queues;
    it shows the oldest ``LIST_LIMIT`` and says how many more there are.
    Replaying and purging need their own permissions; staff with only ``view`` see the list.
    """

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return staff_may(request.user, "dead_letter.replay")

    def has_purge_permission(self, request: HttpRequest) -> bool:
        return staff_may(request.user, "dead_letter.purge")

    def get_urls(self) -> list[URLPattern]:
        view = require_http_methods(["GET", "POST"])(self.dead_letters_view)
        return [path("", self.admin_site.admin_view(view), name="core_deadletter_changelist")]

    def dead_letters_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        queue = request.GET.get("queue") or None
        if queue is not None and queue not in queues.WORK_QUEUE_NAMES:
            queue = None
        if request.method == "POST":
            return self._act(request, queue)
        depths = [d for d in queue_depths() if d.dead_letter]
        letters = dead_letters.DeadLetterList()
        unavailable = ""
        if all(d.messages is None for d in depths):
            unavailable = "RabbitMQ is unavailable: the dead letters cannot be read now."
        else:
            try:
                # The oldest LIST_LIMIT only: each letter shown is held while the page is made.
                letters = dead_letters.dead_letter_list(queue=queue, limit=dead_letters.LIST_LIMIT)
            except Exception as exc:  # RabbitMQ went away since the depths were read
                logger.warning("Could not list dead letters", exc_info=True)
                unavailable = f"RabbitMQ is unavailable: the dead letters cannot be read now ({exc})."
        context = {
            **self.admin_site.each_context(request),
            "title": "Dead letters",
            "opts": self.opts,
            "letters": letters,
            "depths": depths,
            "queue": queue,
            "queue_names": queues.WORK_QUEUE_NAMES,
            "unavailable": unavailable,
            "can_replay": self.has_replay_permission(request),
            "can_purge": self.has_purge_permission(request),
        }
        return TemplateResponse(request, "admin/core/deadletter/dead_letters.html", context)

    def _act(self, request: HttpRequest, queue: str | None) -> HttpResponse:
        action = request.POST.get("action")
        ids = request.POST.getlist("ids")
        back = HttpResponseRedirect(request.get_full_path())
        if action == "replay":
            if not self.has_replay_permission(request):
                raise PermissionDenied
        elif action == "purge":
            if not self.has_purge_permission(request):
                raise PermissionDenied
        else:
            messages.error(request, "Unknown action.")
            return back
        if not ids:
            messages.warning(request, "Select one or more dead letters first.")
            return back
        if action == "purge" and request.POST.get("confirmed") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Purge dead letters for good?",
                "opts": self.opts,
                "ids": ids,
            }
            return TemplateResponse(request, "admin/core/deadletter/purge_confirmation.html", context)
        try:
            if action == "replay":
                result = dead_letters.dead_letter_replay(ids=ids, queue=queue, actor=request.user)
            else:
                result = dead_letters.dead_letter_purge(ids=ids, queue=queue, actor=request.user)
        except Exception as exc:
            logger.warning("Dead letter %s failed", action, exc_info=True)
            messages.error(request, f"Nothing was done: RabbitMQ is unavailable ({exc}).")
            return back
        self._report(request, action, result)
        return back

    def _report(self, request: HttpRequest, action: str, result: dead_letters.DeadLetterResult) -> None:
        for letter in result.done:
            if action == "replay":
                note = result.notes.get(letter.id, "")
                messages.success(request, f"{letter.id} ({letter.task or 'no task'}): replayed {note}.")
            else:
                messages.success(request, f"{letter.id} ({letter.task or 'no task'}): purged.")
        for letter, reason in result.skipped:
            messages.warning(request, f"{letter.id}: not replayed, {reason}.")
        for letter_id in result.not_found:
            messages.warning(request, f"{letter_id}: not found (already replayed or purged?).")


@admin.register(ApiToken)
class ApiTokenAdmin(BoundedCountAdmin, ReadOnlyAdmin):
    """Who holds API tokens and until when; never a token nor its digest. Deleting one revokes it."""

    list_display = ["user", "created", "expiry"]
    fields = ["user", "created", "expiry"]
    list_select_related = ["user"]
    search_fields = ["user__username"]
    ordering = ["-created"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("core.delete_apitoken"))


@admin.register(AuditEntry)
class AuditEntryAdmin(BoundedCountAdmin, ReadOnlyAdmin):
    """The audit trail of staff actions: read-only, for everyone with the view permission."""

    list_display = ["created_at", "actor_name", "action", "target_type", "target_id"]
    list_filter = ["action", "target_type"]
    search_fields = ["=actor_name", "=target_id"]
    fields = [
        "created_at",
        "actor",
        "actor_name",
        "action",
        "target_type",
        "target_id",
        "before",
        "after",
        "request_id",
    ]
    readonly_fields = ["created_at", "actor", "actor_name", "action", "target_type", "target_id", "before", "after"]
    readonly_fields += ["request_id"]
    ordering = ["-created_at", "-id"]
