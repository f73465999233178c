"""Daily drift: live scores and features against the model's training data (PSI)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import numpy as np
from django.conf import settings
from django.db import transaction

from fraud.features import definitions as fx
from fraud.features.store import features_for_stored
from fraud.modelops import psi
from fraud.models import DriftReport, ModelVersion, Transaction

# One day is all weekday or all weekend by construction; its calendar flags always "drift".
CALENDAR_FEATURES = {"is_night", "is_weekend"}


def drift_report_compute(*, day: date) -> list[DriftReport]:
    """One report per model that scored traffic on ``day`` (UTC) and has reference
    distributions. Recomputing a day replaces its report."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    end = start + timedelta(days=1)
    reports = []
    scored = Transaction.objects.filter(timestamp__gte=start, timestamp__lt=end, fraud_score__isnull=False)
    for version in ModelVersion.objects.filter(pk__in=scored.values("model_version_id").distinct()):
        reference = version.metrics.get("reference")
        if not reference:
            continue
        rows = scored.filter(model_version=version)
        ids, x = features_for_stored(rows, label_delay_days=settings.FRAUD_LABEL_DELAY_DAYS)
        if len(ids) == 0:
            continue
        scores = np.array(
            list(rows.filter(pk__in=ids.tolist()).values_list("fraud_score", flat=True)), dtype=np.float64
        )
        score_ref = reference["score"]
        feature_psi = {
            name: round(psi.psi(ref["shares"], psi.shares(x[:, fx.FEATURE_INDEX[name]], ref["edges"])), 6)
            for name, ref in reference["features"].items()
            if name in fx.FEATURE_INDEX and name not in CALENDAR_FEATURES
        }
        with transaction.atomic():
            report, _ = DriftReport.objects.update_or_create(
                day=day,
                model_version=version,
                defaults={
                    "n": len(ids),
                    "score_psi": round(psi.psi(score_ref["shares"], psi.shares(scores, score_ref["edges"])), 6),
                    "feature_psi": feature_psi,
                },
            )
        reports.append(report)
    return reports
