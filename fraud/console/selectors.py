"""Reads that only the console's pages make, across jobs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db.models import Count, F, Q
from django.db.models.functions import Floor, TruncDate

from fraud.models import Case, Label, Transaction


def dashboard_stats(*, now: datetime, days: int = 30) -> dict[str, Any]:
    """Platform-wide figures for the dashboard. Cached for a minute: a room of analysts
    refreshing it must not turn into a stream of aggregate scans on the primary."""

    def compute() -> dict[str, Any]:
        since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
        recent = Transaction.objects.filter(timestamp__gte=since, timestamp__lte=now)
        per_day = {
            row["day"]: row
            for row in recent.annotate(day=TruncDate("timestamp"))
            .values("day")
            .annotate(n=Count("id"), fraud=Count("id", filter=Q(label=Label.FRAUD)))
            .order_by()
        }
        day_list = [(since + timedelta(days=i)).date() for i in range(days)]
        decisions = {
            row["decision"] or "unscored": row["n"]
            for row in recent.values("decision").annotate(n=Count("id")).order_by()
        }
        bins = [0] * 10
        for row in (
            recent.filter(fraud_score__isnull=False)
            .annotate(b=Floor(F("fraud_score") * 10))
            .values("b")
            .annotate(n=Count("id"))
            .order_by()
        ):
            bins[min(int(row["b"]), 9)] += row["n"]
        active = Case.objects.active()
        return {
            "days": [d.isoformat() for d in day_list],
            "volume": [per_day[d]["n"] if d in per_day else 0 for d in day_list],
            "fraud": [per_day[d]["fraud"] if d in per_day else 0 for d in day_list],
            "decisions": decisions,
            "score_bins": bins,
            # Confirmed fraud by the day of the payment (labels from analysts, clients' chargebacks
            # and imports), over all that day's payments: most are never labelled, and no label
            # means no one reported fraud. Closed cases alone are too few to draw a line from,
            # and a closing day says when an analyst worked, not when fraud happened.
            "fraud_rate": [
                per_day[d]["fraud"] / per_day[d]["n"] if d in per_day and per_day[d]["n"] else None for d in day_list
            ],
            "open_cases": active.count(),
            "overdue_cases": active.filter(due_at__lt=now).count(),
            "unassigned_cases": active.filter(assignee__isnull=True).count(),
        }

    return cache.get_or_set(f"console:dashboard:{days}:{now:%Y%m%d%H%M}", compute, timeout=60)
