from __future__ import annotations

from collections import defaultdict
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.admin_tools import BoundedCountAdmin, ReadOnlyAdmin
from core.audit import audit_record
from core.permissions import staff_may
from notifications.attempts import Channel
from notifications.models import (
    CircuitState,
    DeliveryAttempt,
    EmailNotification,
    EventType,
    NotificationEvent,
    WebhookDelivery,
    WebhookEndpoint,
)
from notifications.services.circuit import webhook_endpoint_circuit_set
from notifications.services.recovery import notifications_recover
from notifications.services.webhooks import webhook_url_refusal
from notifications.signing import webhook_secret_generate


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=2048, assume_scheme="https")
    events = forms.MultipleChoiceField(choices=EventType.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "events", "active"]

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        refusal = webhook_url_refusal(url)
        if refusal is not None:
            raise forms.ValidationError(f"This URL cannot receive webhooks: {refusal}.")
        return url


def _circuit_set(modeladmin: admin.ModelAdmin, request: HttpRequest, ids: list[int], state: str) -> None:
    for endpoint_id in ids:
        webhook_endpoint_circuit_set(endpoint_id=endpoint_id, state=state, actor=request.user)
    done = "closed: their deliveries go again" if state == CircuitState.CLOSED else "opened: their deliveries wait"
    modeladmin.message_user(request, f"Circuit of endpoint(s) {', '.join(map(str, ids))} {done}.", messages.SUCCESS)


@admin.action(description="Close the circuit of selected endpoints (send again now)", permissions=["change"])
def close_circuits(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
    _circuit_set(modeladmin, request, list(queryset.order_by("pk").values_list("pk", flat=True)), CircuitState.CLOSED)


@admin.action(description="Open the circuit of selected endpoints (pause their deliveries)", permissions=["change"])
def open_circuits(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
    _circuit_set(modeladmin, request, list(queryset.order_by("pk").values_list("pk", flat=True)), CircuitState.OPEN)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = [
        "id", "url", "active", "circuit_state", "consecutive_failures", "failing_since", "circuit_retry_at",
        "events", "created_at",
    ]  # fmt: skip
    list_filter = ["active", "circuit_state"]
    search_fields = ["url"]
    readonly_fields = [
        "created_at", "circuit_state", "consecutive_failures", "failing_since", "circuit_openings",
        "circuit_retry_at", "disabled_at",
    ]  # fmt: skip
    actions = [close_circuits, open_circuits]

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool) -> None:
        if not change:
            obj.secret = webhook_secret_generate()
        super().save_model(request, obj, form, change)
        # Never the secret: the fields staff edit.
        audit_record(
            actor=request.user,
            action="webhook_endpoint.change" if change else "webhook_endpoint.add",
            target_type="webhook_endpoint",
            target_id=obj.pk,
            before={name: form.initial.get(name) for name in form.changed_data} if change else None,
            after={name: form.cleaned_data.get(name) for name in (form.changed_data if change else form.fields)},
        )
        if not change:
            messages.warning(request, f"Signing secret of {obj.url} (shown once, copy it now): {obj.secret}")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deliveries keep their endpoint: deactivate it instead


def _resend(modeladmin: admin.ModelAdmin, request: HttpRequest, channel: Channel, ids: list[int], noun: str) -> None:
    """Recover the notifications through the one recovery service and report what happened to each."""
    recovery = notifications_recover(channel=channel, ids=ids, actor=request.user)
    refused: dict[str, list[str]] = defaultdict(list)
    for pk, exc in recovery.refused.items():
        refused[exc.message].append(str(pk))
    if recovery.recovered:
        queued = ", ".join(str(pk) for pk in recovery.recovered)
        modeladmin.message_user(request, f"Resend queued for {noun} {queued}.", messages.SUCCESS)
    if recovery.dead_letters_settled:
        settled = f"{recovery.dead_letters_settled} dead letter(s) they replace removed from the dead-letter queue."
        modeladmin.message_user(request, settled, messages.SUCCESS)
    if recovery.dead_letters_error:
        unsettled = f"Their dead letters were not removed: {recovery.dead_letters_error}; purge them later."
        modeladmin.message_user(request, unsettled, messages.WARNING)
    for reason, refused_ids in refused.items():
        modeladmin.message_user(request, f"Not resent, {reason}: {noun} {', '.join(refused_ids)}.", messages.WARNING)


class ResendableAdmin(ReadOnlyAdmin):
    """Records written by the system, which staff with the change permission may send again."""

    resend_action = ""  # its key in core.permissions.STAFF_ACTIONS

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return staff_may(request.user, self.resend_action)


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = readonly_fields = (
        "number", "attempted_at", "status_code", "duration_ms", "error", "response_body", "retry_delay_seconds",
    )  # fmt: skip
    extra = 0
    can_delete = False
    ordering = ["number"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.action(description="Resend selected deliveries", permissions=["resend"])
def resend_deliveries(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
    ids = list(queryset.order_by("pk").values_list("pk", flat=True))
    _resend(modeladmin, request, Channel.WEBHOOK, ids, "delivery(ies)")


@admin.action(description="Resend selected e-mails", permissions=["resend"])
def resend_emails(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[EmailNotification]) -> None:
    ids = list(queryset.order_by("pk").values_list("pk", flat=True))
    _resend(modeladmin, request, Channel.EMAIL, ids, "e-mail(s)")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(BoundedCountAdmin, ResendableAdmin):
    resend_action = "webhook_delivery.resend"
    list_display = [
        "id", "event_type", "endpoint", "status", "attempt_count", "last_response_code",
        "created_at", "last_attempt_at", "next_attempt_at",
    ]  # fmt: skip
    list_filter = ["status"]
    list_select_related = ["event", "endpoint"]
    search_fields = ["=event__id", "endpoint__url"]
    inlines = [DeliveryAttemptInline]
    actions = [resend_deliveries]

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookDelivery]:
        return super().get_queryset(request).select_related("event", "endpoint")

    @admin.display(description="event type")
    def event_type(self, obj: WebhookDelivery) -> str:
        return obj.event.event_type


@admin.register(EmailNotification)
class EmailNotificationAdmin(BoundedCountAdmin, ResendableAdmin):
    resend_action = "email_notification.resend"
    list_display = ["id", "event_type", "recipient", "status", "attempt_count", "last_error", "created_at", "sent_at"]
    list_filter = ["status"]
    list_select_related = ["event"]
    search_fields = ["recipient", "=event__id"]
    actions = [resend_emails]

    def get_queryset(self, request: HttpRequest) -> QuerySet[EmailNotification]:
        return super().get_queryset(request).select_related("event")

    @admin.display(description="event type")
    def event_type(self, obj: EmailNotification) -> str:
        return obj.event.event_type


@admin.register(NotificationEvent)
class NotificationEventAdmin(BoundedCountAdmin, ReadOnlyAdmin):
    list_display = ["id", "event_type", "created_at"]
    list_filter = ["event_type"]
    search_fields = ["=id"]
