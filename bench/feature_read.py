"""One transaction's aggregates, read the two ways the online path can: the merchant's raw history
in its windows, or its feature-store buckets (``FRAUD_FEATURE_READ``). Both are one round trip
with the customer's and the card's raw history; the features must come out identical.

Run by bench/run.py against the seed database (or by hand against any, e.g. a 10x history: see
docs/performance.md); prints JSON: per way, the median and p90 milliseconds of a read over the
same 400 transactions from the history's last days, and the merchants' mean payments per day."""

from __future__ import annotations

import json
import os
import random
import statistics
import time

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cipherguard.settings")
    django.setup()
    from django.conf import settings
    from django.db.models import Count, Max, Min

    from fraud.features.store import PendingTransaction, aggregates_online
    from fraud.models import Transaction

    delay = settings.FRAUD_LABEL_DELAY_DAYS
    recent = list(Transaction.objects.order_by("-timestamp")[:5000])
    sample = random.Random(1).sample(recent, min(400, len(recent)))
    pending = [
        PendingTransaction(
            owner_id=t.owner_id, customer_id=t.customer_id, merchant_id=t.merchant_id, country=t.country,
            currency=t.currency, channel=t.channel, timestamp=t.timestamp, amount=float(t.amount),
            card_fingerprint=t.card_fingerprint,
        )
        for t in sample
    ]  # fmt: skip
    span = Transaction.objects.aggregate(n=Count("id"), merchants=Count("merchant_id", distinct=True),
                                         first=Min("timestamp"), last=Max("timestamp"))  # fmt: skip
    days = max((span["last"] - span["first"]).total_seconds() / 86400, 1.0)
    out: dict[str, object] = {
        "transactions": span["n"],
        "merchant_payments_per_day": round(span["n"] / max(span["merchants"], 1) / days, 1),
    }
    results = {}
    for way in ("history", "store", "history", "store"):  # twice each, interleaved: the second pass counts
        settings.FRAUD_FEATURE_READ = way
        for p in pending[:50]:
            aggregates_online(p, label_delay_days=delay)
        times, rows = [], []
        for p in pending:
            started = time.perf_counter()
            rows.append(aggregates_online(p, label_delay_days=delay))
            times.append((time.perf_counter() - started) * 1e3)
        times.sort()
        out[way] = {"p50_ms": round(statistics.median(times), 3), "p90_ms": round(times[int(0.9 * len(times))], 3)}
        results[way] = rows
    out["identical"] = results["history"] == results["store"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
