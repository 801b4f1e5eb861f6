from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from core.admin_tools import BoundedCountAdmin, ReadOnlyAdmin
from core.audit import audit_record
from core.errors import DomainError
from core.permissions import staff_may
from inventory.models import Product, StockLedgerEntry
from inventory.services import product_sale_changed, stock_adjust

RECENT_LEDGER_ROWS = 20


class StockAdjustmentForm(forms.Form):
    delta = forms.IntegerField(help_text="Units to add (positive) or remove (negative).")
    reason = forms.CharField(max_length=255)

    def clean_delta(self) -> int:
        delta: int = self.cleaned_data["delta"]
        if delta == 0:
            raise forms.ValidationError("A stock adjustment must change the stock.")
        return delta


@admin.register(Product)
class ProductAdmin(BoundedCountAdmin):
    list_display = ["sku", "name", "price", "currency", "available", "claimed", "active", "updated_at"]
    list_filter = ["active", "currency"]
    search_fields = ["sku", "name"]
    readonly_fields = ["available", "claimed", "created_at", "updated_at", "recent_ledger"]
    fields = [
        "sku", "name", "price", "currency", "active",
        "available", "claimed", "recent_ledger", "created_at", "updated_at",
    ]  # fmt: skip

    def get_readonly_fields(self, request: HttpRequest, obj: Product | None = None) -> list[str]:
        # Stock changes go through the adjustment form (which writes the ledger), never by hand.
        return [*self.readonly_fields, "sku"] if obj else list(self.readonly_fields)

    @admin.display(description=f"latest {RECENT_LEDGER_ROWS} ledger entries")
    def recent_ledger(self, product: Product) -> str:
        # A busy product has thousands of ledger rows: show the latest and link to the rest.
        entries = product.ledger_entries.order_by("-pk")[:RECENT_LEDGER_ROWS]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (f"{e.created_at:%Y-%m-%d %H:%M:%S}", e.kind, f"{e.delta:+d}", e.order_id or "", e.reason)
                for e in entries
            ),
        )
        url = reverse("admin:inventory_stockledgerentry_changelist") + f"?product__id__exact={product.pk}"
        return format_html(
            "<table><tr><th>time</th><th>kind</th><th>delta</th><th>order</th><th>reason</th></tr>{}</table>"
            '<p><a href="{}">Full ledger</a></p>',
            rows,
            url,
        )

    def save_model(self, request: HttpRequest, obj: Product, form: Any, change: bool) -> None:
        # Only the fields the form changed: a full-row save would write back the stock and claims
        # as they were read, undoing reservations made meanwhile.
        editable = [name for name in form.changed_data if name not in self.get_readonly_fields(request, obj)]
        if editable:
            obj.save(update_fields=[*editable, "updated_at"])
            audit_record(
                actor=request.user,
                action="product.change",
                target_type="product",
                target_id=obj.sku,
                before={name: form.initial.get(name) for name in editable},
                after={name: getattr(obj, name) for name in editable},
            )
            if {"active", "currency"} & set(editable):
                product_sale_changed(product_ids=[obj.pk])

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # products are created with their initial stock through the API

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<int:product_id>/adjust-stock/",
                self.admin_site.admin_view(self.adjust_stock_view),
                name="inventory_product_adjust_stock",
            )
        ]
        return custom + super().get_urls()

    def adjust_stock_view(self, request: HttpRequest, product_id: int) -> HttpResponse:
        product = get_object_or_404(Product, pk=product_id)
        if not staff_may(request.user, "stock.adjust"):
            messages.error(request, "You do not have permission to adjust stock.")
            return HttpResponseRedirect(reverse("admin:inventory_product_change", args=[product.pk]))
        form = StockAdjustmentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                actor = request.user if isinstance(request.user, User) else None
                stock_adjust(product=product, **form.cleaned_data, actor=actor)
            except DomainError as exc:
                form.add_error("delta", exc.message)
            else:
                messages.success(
                    request,
                    f"Stock of {product.sku} adjusted by {form.cleaned_data['delta']:+d}: now {product.available}.",
                )
                return HttpResponseRedirect(reverse("admin:inventory_product_change", args=[product.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Adjust stock of {product.sku}",
            "product": product,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/inventory/product/adjust_stock.html", context)


@admin.register(StockLedgerEntry)
class StockLedgerEntryAdmin(BoundedCountAdmin, ReadOnlyAdmin):
    list_display = ["created_at", "product", "kind", "delta", "order_id", "reason", "actor"]
    list_filter = ["kind", "product"]
    search_fields = ["product__sku", "=order_id"]
    list_select_related = ["product", "actor"]
