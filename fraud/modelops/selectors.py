"""Reads of the model lifecycle's results."""

from __future__ import annotations

from typing import Any

from django.db.models import Avg, Count, Q

from fraud.models import Label, Transaction
from fraud.rules.selectors import thresholds_row


def shadow_comparison(*, version_id: int, limit: int = 20) -> dict[str, Any]:
    """The shadow challenger beside the live model on the same transactions: how often their
    decisions would differ under today's thresholds, and the most recent pairs."""
    thresholds = thresholds_row()
    pairs = Transaction.objects.filter(shadow_model_id=version_id, fraud_score__isnull=False)

    def band(field: str) -> Q:
        return Q(**{f"{field}__gte": thresholds.review_threshold})

    stats = pairs.aggregate(
        n=Count("id"),
        live_mean=Avg("fraud_score"),
        shadow_mean=Avg("shadow_score"),
        live_flags=Count("id", filter=band("fraud_score")),
        shadow_flags=Count("id", filter=band("shadow_score")),
        disagree=Count("id", filter=band("fraud_score") ^ band("shadow_score")),
        fraud=Count("id", filter=Q(label=Label.FRAUD)),
        live_caught=Count("id", filter=Q(label=Label.FRAUD) & band("fraud_score")),
        shadow_caught=Count("id", filter=Q(label=Label.FRAUD) & band("shadow_score")),
    )
    recent = list(
        pairs.select_related("model_version")
        .order_by("-scored_at")[:limit]
        .values("transaction_id", "fraud_score", "shadow_score", "decision", "label", "scored_at")
    )
    return {"stats": stats, "recent": recent, "review_threshold": thresholds.review_threshold}
