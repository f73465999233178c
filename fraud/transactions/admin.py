"""Django admin for stored transactions: read-only, the card masked."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from fraud.models import Transaction


@admin.register(Transaction)
class TransactionAdmin(admin.ModelAdmin):
    list_display = (
        "transaction_id",
        "owner",
        "customer_id",
        "merchant_id",
        "amount",
        "currency",
        "fraud_score",
        "decision",
        "label",
        "timestamp",
    )
    list_filter = ("decision", "label", "channel")
    search_fields = ("transaction_id", "customer_id", "merchant_id")
    list_select_related = ("owner",)
    show_full_result_count = False  # no COUNT(*) over millions of rows on every page
    exclude = ("card_ciphertext", "card_fingerprint")  # the card shows masked only

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Transaction._meta.fields if f.name not in self.exclude]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
