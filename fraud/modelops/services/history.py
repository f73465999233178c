"""History with outcomes, for training, evaluation and backtests: imported from a CSV (ours or the
public benchmark's layout), generated, or generated and replayed through live scoring."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import IO, Any

from django.conf import settings
from rest_framework import serializers

from accounts.models import User
from cipherguard.api import StrictSerializer
from cipherguard.bulk import insert_new
from fraud.features import definitions as fx
from fraud.features.store import refresh_statistics
from fraud.modelops.generator import Generated, generate
from fraud.models import Channel, Label, LabelSource, Transaction
from fraud.scoring.services import transactions_score_many
from fraud.transactions.builder import transaction_from_body
from fraud.transactions.validation import (
    AmountField,
    AmountPrecisionError,
    AwareTimestampField,
    CountryField,
    CurrencyField,
    IdentifierField,
    amount_from_float_text,
    country_codes,
    currency_codes,
    currency_decimals,
    fast_amount,
    fast_identifier,
    fast_timestamp,
    places_message,
)

IMPORT_REQUIRED = ("transaction_id", "timestamp", "customer_id", "merchant_id", "amount")
IMPORT_OPTIONAL = ("currency", "country", "channel", "label", "label_time")
DEFAULT_CURRENCY = "EUR"
# Items per call when replaying through the batch path: the synchronous batch endpoint's size.
REPLAY_BATCH = 1000
# The public simulated card-fraud benchmark (Le Borgne et al., *Reproducible Machine Learning for
# Credit Card Fraud Detection*) is read as it is published: its columns map onto ours, its naive
# times are UTC, and its scenario column (the generator's answer key) and day/second counters are
# ignored. A pandas index column ("" or "Unnamed: 0") is ignored too. Its amounts are float64s as
# pandas prints them, so float noise is rounded away (``amount_from_float_text``).
BENCHMARK_COLUMNS = {
    "TRANSACTION_ID": "transaction_id",
    "TX_DATETIME": "timestamp",
    "CUSTOMER_ID": "customer_id",
    "TERMINAL_ID": "merchant_id",
    "TX_AMOUNT": "amount",
    "TX_FRAUD": "label",
}
BENCHMARK_IGNORED = ("TX_TIME_SECONDS", "TX_TIME_DAYS", "TX_FRAUD_SCENARIO", "", "Unnamed: 0")
NAIVE_TIME_RE = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)")
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
            raise serializers.ValidationError({"amount": [places_message(currency)]})
        if "label_time" in attrs and "label" not in attrs:
            raise serializers.ValidationError({"label_time": ["A label time needs a label."]})
        if "label_time" in attrs and attrs["label_time"] < attrs["timestamp"]:
            raise serializers.ValidationError({"label_time": ["A label cannot be known before the transaction."]})
        return attrs


_CHANNELS = frozenset(Channel.values)
_COLUMNS = frozenset(IMPORT_REQUIRED + IMPORT_OPTIONAL)


def _fast_row(raw: dict[str, str]) -> dict[str, Any] | None:
    """``ImportRowSerializer``'s validated data for a well-formed row, by plain checks (a
    property test holds them to the serializer); None otherwise, and the serializer explains.
    DRF cost ~800 µs a row: most of an import."""
    if not raw.keys() <= _COLUMNS or not all(name in raw for name in IMPORT_REQUIRED):
        return None
    out: dict[str, Any] = {}
    for name in ("transaction_id", "customer_id", "merchant_id"):
        if (identifier := fast_identifier(raw[name])) is None:
            return None
        out[name] = identifier
    currency = raw.get("currency", DEFAULT_CURRENCY)
    if currency not in currency_codes() or (amount := fast_amount(raw["amount"], currency)) is None:
        return None
    out["amount"], out["currency"] = amount, currency
    if (moment := fast_timestamp(raw["timestamp"])) is None:
        return None
    out["timestamp"] = moment
    if "country" in raw:
        if raw["country"] not in country_codes():
            return None
        out["country"] = raw["country"]
    if "channel" in raw:
        if raw["channel"] not in _CHANNELS:
            return None
        out["channel"] = raw["channel"]
    if "label" in raw:
        if (label := LABEL_VALUES.get(raw["label"].strip().lower())) is None:
            return None
        out["label"] = label
    if "label_time" in raw:
        label_time = fast_timestamp(raw["label_time"])
        if label_time is None or "label" not in out or label_time < moment:
            return None
        out["label_time"] = label_time
    return out


def validate_import_row(raw: dict[str, str]) -> tuple[dict[str, Any] | None, dict[str, list[str]] | None]:
    """(validated data, None) or (None, errors by field)."""
    data = _fast_row(raw)
    if data is not None:
        return data, None
    serializer = ImportRowSerializer(data=raw)
    if serializer.is_valid():
        return dict(serializer.validated_data), None
    return None, {k: [str(m) for m in v] for k, v in serializer.errors.items()}


Errors = dict[str, list[str]]


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    already_present: int = 0
    bad: list[tuple[int, Errors]] = field(default_factory=list)

    def bad_by_reason(self) -> Counter[str]:
        """How many bad rows each ``field: message`` refused (a row with two errors counts twice)."""
        return Counter(
            f"{name}: {message}" for _, errors in self.bad for name, messages in errors.items() for message in messages
        )


class ImportFileError(ValueError):
    pass


def _benchmark_row(raw: dict[str, str]) -> tuple[dict[str, str], Errors | None]:
    row = {BENCHMARK_COLUMNS[k]: v for k, v in raw.items() if k in BENCHMARK_COLUMNS}
    naive = NAIVE_TIME_RE.fullmatch(row.get("timestamp", ""))
    if naive:
        row["timestamp"] = f"{naive[1]}T{naive[2]}+00:00"
    if "amount" in row:
        try:
            amount = amount_from_float_text(row["amount"], DEFAULT_CURRENCY)
        except AmountPrecisionError as exc:
            return row, {"amount": [str(exc)]}
        if amount is not None:
            row["amount"] = format(amount, "f")
    return row, None


def _rows(file: IO[bytes]) -> Iterator[tuple[int, dict[str, str], Errors | None]]:
    """(line, cells by our column names, errors found before validation) for each row."""
    reader = csv.DictReader(io.TextIOWrapper(file, encoding="utf-8-sig", newline=""))
    header = reader.fieldnames or []
    benchmark = "TX_DATETIME" in header
    if benchmark:
        missing = [c for c in BENCHMARK_COLUMNS if c not in header]
        unknown = [c for c in header if c not in BENCHMARK_COLUMNS and c not in BENCHMARK_IGNORED]
    else:
        missing = [c for c in IMPORT_REQUIRED if c not in header]
        unknown = [c for c in header if c not in IMPORT_REQUIRED + IMPORT_OPTIONAL]
    if missing or unknown:
        raise ImportFileError(f"missing columns: {missing}; unknown columns: {unknown}")
    for line, raw in enumerate(reader, start=2):  # line 1 is the header
        cells = {k: v for k, v in raw.items() if k is not None and v not in ("", None)}
        if None in raw:
            yield line, cells, {"non_field_errors": ["More cells than the header."]}
        elif benchmark:
            yield line, *_benchmark_row(cells)
        else:
            yield line, cells, None


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
        for line, raw, early in _rows(file):
            report.rows += 1
            if early:
                report.bad.append((line, early))
                continue
            d, errors = validate_import_row(raw)
            if d is None:
                report.bad.append((line, errors or {}))
                continue
            if d["transaction_id"] in seen:
                report.bad.append((line, {"transaction_id": ["Repeats an earlier row of this file."]}))
                continue
            seen.add(d["transaction_id"])
            body = {**d, "country": d.get("country", "")}  # the builder and the hash default the channel
            label_time: datetime | None = d.get("label_time") or (d["timestamp"] + delay if "label" in d else None)
            batch.append(
                transaction_from_body(
                    owner=owner,
                    data=body,
                    label=d.get("label", ""),
                    label_source=LabelSource.IMPORT if "label" in d else "",
                    label_time=label_time,
                )
            )
            if len(batch) >= batch_size:
                insert_new(Transaction, batch)
                batch.clear()
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ImportFileError(f"not a UTF-8 CSV file: {exc}") from None
    insert_new(Transaction, batch)
    refresh_statistics()
    report.imported = Transaction.objects.owned_by(owner.pk).count() - existing
    report.already_present = report.rows - len(report.bad) - report.imported
    return report


def _generated_body(data: Generated, i: int) -> dict[str, Any]:
    return {
        "transaction_id": data.transaction_id[i],
        "customer_id": data.customer_id[i],
        "merchant_id": data.merchant_id[i],
        "amount": Decimal(str(data.amount[i])),
        "currency": data.currency[i],
        "country": data.country[i],
        "channel": data.channel[i],
        "timestamp": fx.from_epoch_us(data.ts_us[i]),
    }


def history_generate(
    *, owner: User, days: int, customers: int, merchants: int, seed: int, start: datetime, until: datetime | None = None
) -> int:
    """Write a synthetic labelled history for ``owner`` (see ``fraud.modelops.generator``), optionally
    only the rows before ``until``. Returns how many rows are new; rows that already exist (same
    owner and id) are skipped, so the same command twice writes nothing the second time."""
    data = generate(start=start, days=days, customers=customers, merchants=merchants, seed=seed)
    return history_write(owner=owner, data=data, until=until)


def history_write(*, owner: User, data: Generated, until: datetime | None = None) -> int:
    """``history_generate`` for a caller that already has the generator's output."""
    limit = fx.to_epoch_us(until) if until else None
    existing = Transaction.objects.owned_by(owner.pk).count()
    batch: list[Transaction] = []
    for i in range(len(data)):
        if limit is not None and data.ts_us[i] >= limit:
            break  # rows are in time order
        body = _generated_body(data, i)
        fraud = bool(data.scenario[i])
        batch.append(
            transaction_from_body(
                owner=owner,
                data=body,
                label=Label.FRAUD if fraud else "",
                label_source=LabelSource.GENERATOR if fraud else "",
                label_time=fx.from_epoch_us(data.label_time_us[i]) if fraud else None,
            )
        )
        if len(batch) >= 10_000:
            insert_new(Transaction, batch)
            batch.clear()
    insert_new(Transaction, batch)
    refresh_statistics()
    return Transaction.objects.owned_by(owner.pk).count() - existing


def history_replay(
    *, owner: User, days: int, customers: int, merchants: int, seed: int, start: datetime, since: datetime
) -> int:
    """Score the generated rows from ``since`` on through the batch scoring path (as a client's
    batch calls would send them, 1,000 at a time in time order), labels withheld: they are for
    analysts to find. The demo uses it so the console starts with real cases. Returns how many
    were newly scored."""
    data = generate(start=start, days=days, customers=customers, merchants=merchants, seed=seed)
    return history_score(owner=owner, data=data, since=since)


def history_score(*, owner: User, data: Generated, since: datetime) -> int:
    """``history_replay`` for a caller that already has the generator's output."""
    first = fx.to_epoch_us(since)
    bodies = [_generated_body(data, i) for i in range(len(data)) if data.ts_us[i] >= first]
    scored = 0
    for at in range(0, len(bodies), REPLAY_BATCH):
        # The past replayed for the demo's console: no client is told (no webhook events).
        outcomes = transactions_score_many(
            client=owner, items=bodies[at : at + REPLAY_BATCH], path="batch", source=None
        )
        scored += sum(1 for o in outcomes if o.status == 201)
    return scored
