from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from core.admin_tools import ReadOnlyAdmin
from notifications.models import (
    DeliveryAttempt,
    EmailNotification,
    EventType,
    NotificationEvent,
    WebhookDelivery,
    WebhookEndpoint,
)
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


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["id", "url", "active", "events", "created_at"]
    list_filter = ["active"]
    search_fields = ["url"]
    readonly_fields = ["created_at"]

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool) -> None:
        if not change:
            obj.secret = webhook_secret_generate()
        super().save_model(request, obj, form, change)
        if not change:
            messages.warning(request, f"Signing secret of {obj.url} (shown once, copy it now): {obj.secret}")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deliveries keep their endpoint: deactivate it instead


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ["number", "attempted_at", "status_code", "duration_ms", "error", "retry_delay_seconds"]
    readonly_fields = ["number", "attempted_at", "status_code", "duration_ms", "error", "retry_delay_seconds"]
    extra = 0
    can_delete = False
    ordering = ["number"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "id", "event_type", "endpoint", "status", "attempt_count", "last_response_code",
        "created_at", "last_attempt_at", "next_attempt_at",
    ]  # fmt: skip
    list_filter = ["status"]
    list_select_related = ["event", "endpoint"]
    search_fields = ["event__id", "endpoint__url"]
    inlines = [DeliveryAttemptInline]

    @admin.display(description="event type")
    def event_type(self, obj: WebhookDelivery) -> str:
        return obj.event.event_type


@admin.register(EmailNotification)
class EmailNotificationAdmin(ReadOnlyAdmin):
    list_display = ["id", "event_type", "recipient", "status", "attempt_count", "created_at", "sent_at"]
    list_filter = ["status"]
    list_select_related = ["event"]
    search_fields = ["recipient", "event__id"]

    @admin.display(description="event type")
    def event_type(self, obj: EmailNotification) -> str:
        return obj.event.event_type


@admin.register(NotificationEvent)
class NotificationEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "event_type", "created_at"]
    list_filter = ["event_type"]
    search_fields = ["id"]
