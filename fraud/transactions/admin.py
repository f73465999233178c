"""Django admin for stored transactions: read-only, the card masked."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from cipherguard.admin_display import EMPTY, figure, truncated, two_lines, when
from fraud.models import MODEL_VERSION_BLOBS, Transaction


@admin.register(Transaction)
class TransactionAdmin(admin.ModelAdmin):
    # Short columns, so the list fits a laptop's width beside the admin's sidebars: ids of up to
    # 64 characters are cut (whole in the title), related values share a cell.
    list_display = ("reference", "client", "parties", "money", "score", "outcome", "moment")
    list_filter = ("decision", "label", "channel")
    search_fields = ("transaction_id", "customer_id", "merchant_id")
    list_select_related = ("owner",)
    show_full_result_count = False  # no COUNT(*) over millions of rows on every page
    exclude = ("card_ciphertext", "card_fingerprint")  # the card shows masked only

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Transaction._meta.fields if f.name not in self.exclude]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Transaction]:
        # The page names its model versions; their ONNX artifacts (megabytes) stay unread.
        return (
            super()
            .get_queryset(request)
            .select_related("model_version", "shadow_model")
            .defer(*MODEL_VERSION_BLOBS, "shadow_model__artifact")
        )

    @admin.display(description="Transaction", ordering="transaction_id")
    def reference(self, obj: Transaction) -> SafeString | str:
        return truncated(obj.transaction_id, 20)

    @admin.display(description="Client", ordering="owner__username")
    def client(self, obj: Transaction) -> SafeString | str:
        return truncated(obj.owner.get_username(), 16)

    @admin.display(description="Customer, merchant", ordering="customer_id")
    def parties(self, obj: Transaction) -> SafeString:
        return two_lines(truncated(obj.customer_id, 16), truncated(obj.merchant_id, 16))

    @admin.display(description="Amount", ordering="amount")
    def money(self, obj: Transaction) -> SafeString:
        return format_html('<span class="cg-nowrap">{} {}</span>', f"{obj.amount:,.2f}", obj.currency)

    @admin.display(description="Score", ordering="fraud_score")
    def score(self, obj: Transaction) -> str:
        return figure(obj.fraud_score)

    @admin.display(description="Decision, label", ordering="decision")
    def outcome(self, obj: Transaction) -> SafeString:
        return two_lines(obj.get_decision_display() or EMPTY, obj.get_label_display())

    @admin.display(description="Made", ordering="timestamp")
    def moment(self, obj: Transaction) -> SafeString | str:
        return when(obj.timestamp)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
