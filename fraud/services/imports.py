"""Loading historical transactions (with outcomes) for training and backtests."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO, Any

from django.conf import settings
from rest_framework import serializers

from accounts.models import User
from fraud.feature_store import refresh_statistics
from fraud.models import Channel, Label, LabelSource, Transaction
from fraud.services.transactions import canonical_hash
from fraud.validation import (
    AmountField,
    AwareTimestampField,
    CountryField,
    CurrencyField,
    IdentifierField,
    StrictSerializer,
    currency_decimals,
)

IMPORT_REQUIRED = ("transaction_id", "timestamp", "customer_id", "merchant_id", "amount")
IMPORT_OPTIONAL = ("currency", "country", "channel", "label", "label_time")
DEFAULT_CURRENCY = "EUR"
LABEL_VALUES = {"1": Label.FRAUD, "fraud": Label.FRAUD, "0": Label.LEGITIMATE, "legitimate": Label.LEGITIMATE}


class ImportRowSerializer(StrictSerializer):
    transaction_id = IdentifierField()
    timestamp = AwareTimestampField()
    customer_id = IdentifierField()
    merchant_id = IdentifierField()
    amount = AmountField()
    currency = CurrencyField(required=False)
    country = CountryField(required=False)
    channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    label = serializers.CharField(required=False)
    label_time = AwareTimestampField(required=False)

    def validate_label(self, value: str) -> str:
        label = LABEL_VALUES.get(value.strip().lower())
        if label is None:
            raise serializers.ValidationError("Use 1/0 or fraud/legitimate.")
        return label

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        currency = attrs.setdefault("currency", DEFAULT_CURRENCY)
        exponent = attrs["amount"].normalize().as_tuple().exponent
        if isinstance(exponent, int) and -exponent > currency_decimals(currency):
            raise serializers.ValidationError(
                {"amount": [f"{currency} allows at most {currency_decimals(currency)} decimal places."]}
            )
        if "label_time" in attrs and "label" not in attrs:
            raise serializers.ValidationError({"label_time": ["A label time needs a label."]})
        if "label_time" in attrs and attrs["label_time"] < attrs["timestamp"]:
            raise serializers.ValidationError({"label_time": ["A label cannot be known before the transaction."]})
        return attrs


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    already_present: int = 0
    bad: list[tuple[int, dict[str, list[str]]]] = field(default_factory=list)


class ImportFileError(ValueError):
    pass


def _rows(file: IO[bytes]) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.TextIOWrapper(file, encoding="utf-8-sig", newline=""))
    header = reader.fieldnames or []
    missing = [c for c in IMPORT_REQUIRED if c not in header]
    unknown = [c for c in header if c not in IMPORT_REQUIRED + IMPORT_OPTIONAL]
    if missing or unknown:
        raise ImportFileError(f"missing columns: {missing}; unknown columns: {unknown}")
    for line, raw in enumerate(reader, start=2):  # line 1 is the header
        yield (
            line,
            {k: v for k, v in raw.items() if k is not None and v not in ("", None)}
            | ({"_extra": "1"} if None in raw else {}),
        )


def history_import_csv(*, owner: User, file: IO[bytes], batch_size: int = 5000) -> ImportReport:
    """Bulk-load a CSV of past transactions for ``owner``. Bad rows are reported with their line
    and fields and skipped; ids already present are left as they are (a re-run adds nothing).
    A label without a time is taken as known ``FRAUD_LABEL_DELAY_DAYS`` after the transaction."""
    report = ImportReport()
    delay = timedelta(days=settings.FRAUD_LABEL_DELAY_DAYS)
    existing = Transaction.objects.owned_by(owner.pk).count()
    batch: list[Transaction] = []
    seen: set[str] = set()
    try:
        for line, raw in _rows(file):
            report.rows += 1
            if "_extra" in raw:
                report.bad.append((line, {"non_field_errors": ["More cells than the header."]}))
                continue
            serializer = ImportRowSerializer(data=raw)
            if not serializer.is_valid():
                report.bad.append((line, {k: [str(m) for m in v] for k, v in serializer.errors.items()}))
                continue
            d = serializer.validated_data
            if d["transaction_id"] in seen:
                report.bad.append((line, {"transaction_id": ["Repeats an earlier row of this file."]}))
                continue
            seen.add(d["transaction_id"])
            body = {**d, "country": d.get("country", ""), "channel": d.get("channel", "")}
            label_time: datetime | None = d.get("label_time") or (d["timestamp"] + delay if "label" in d else None)
            batch.append(
                Transaction(
                    owner=owner,
                    transaction_id=d["transaction_id"],
                    customer_id=d["customer_id"],
                    merchant_id=d["merchant_id"],
                    amount=d["amount"],
                    currency=d["currency"],
                    country=body["country"],
                    channel=body["channel"],
                    timestamp=d["timestamp"],
                    request_hash=canonical_hash(body),
                    label=d.get("label", ""),
                    label_source=LabelSource.IMPORT if "label" in d else "",
                    label_time=label_time,
                )
            )
            if len(batch) >= batch_size:
                Transaction.objects.bulk_create(batch, batch_size=2000, ignore_conflicts=True)
                batch.clear()
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ImportFileError(f"not a UTF-8 CSV file: {exc}") from None
    Transaction.objects.bulk_create(batch, batch_size=2000, ignore_conflicts=True)
    refresh_statistics()
    report.imported = Transaction.objects.owned_by(owner.pk).count() - existing
    report.already_present = report.rows - len(report.bad) - report.imported
    return report
