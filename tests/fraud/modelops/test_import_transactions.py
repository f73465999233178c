from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from fraud.models import Label, LabelSource, Transaction

HEADER = "transaction_id,timestamp,customer_id,merchant_id,amount,currency,country,channel,label,label_time"


def write(tmp_path, lines: list[str], header: str = HEADER):
    path = tmp_path / "history.csv"
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def run(path, owner, *extra) -> tuple[dict, str]:
    out, err = StringIO(), StringIO()
    call_command("import_transactions", str(path), "--owner", owner.username, *extra, stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue()


def test_it_imports_rows_with_labels_and_documented_defaults(tmp_path, alice, settings):
    path = write(
        tmp_path,
        [
            "h1,2026-03-01T10:00:00Z,C1,M1,12.50,GBP,GB,pos,,",
            "h2,2026-03-02T10:00:00+02:00,C1,M2,99,,,,fraud,",
            "h3,2026-03-03T10:00:00Z,C2,M2,5.00,EUR,FR,online,0,2026-03-05T00:00:00Z",
            "h4,2026-03-03T11:00:00Z,C2,M2,5.00,EUR,FR,online,1,2026-03-10T00:00:00Z",
        ],
    )
    summary, errors = run(path, alice)
    assert summary == {"rows": 4, "imported": 4, "already_present": 0, "bad": 0} and errors == ""
    h1, h2, h3, h4 = (Transaction.objects.get(owner=alice, transaction_id=f"h{i}") for i in range(1, 5))
    assert (h1.currency, h1.country, h1.label) == ("GBP", "GB", "")
    assert (h2.currency, h2.country, h2.channel, h2.label, h2.label_source) == (
        "EUR",
        "",
        "",
        Label.FRAUD,
        LabelSource.IMPORT,
    )
    assert h2.label_time == h2.timestamp + timedelta(days=settings.FRAUD_LABEL_DELAY_DAYS)
    assert h3.label == Label.LEGITIMATE and h4.label == Label.FRAUD and h4.label_time.day == 10


def test_bad_rows_are_reported_by_line_and_field_and_skipped(tmp_path, alice):
    path = write(
        tmp_path,
        [
            "ok1,2026-03-01T10:00:00Z,C1,M1,10.00,EUR,FR,pos,,",
            "b1,2026-03-01T10:00:00,C1,M1,10.00,EUR,FR,pos,,",
            "b2,2026-03-01T10:00:00Z,C1,M1,-3,EUR,FR,pos,,",
            "b3,2026-03-01T10:00:00Z,C1,M1,10.00,EUR,FR,pos,maybe,",
            "b4,2026-03-05T10:00:00Z,C1,M1,10.00,EUR,FR,pos,fraud,2026-03-01T00:00:00Z",
            "ok1,2026-03-01T10:00:00Z,C1,M1,10.00,EUR,FR,pos,,",
            "b6,2026-03-01T10:00:00Z,C1,M1,10.00,EUR,FR,pos,,,surplus",
        ],
    )
    summary, errors = run(path, alice)
    assert summary == {"rows": 7, "imported": 1, "already_present": 0, "bad": 6}
    for line, field in [
        (3, "timestamp"),
        (4, "amount"),
        (5, "label"),
        (6, "label_time"),
        (7, "transaction_id"),
        (8, "non_field_errors"),
    ]:
        assert f"line {line}: {field}" in errors
    with pytest.raises(CommandError, match="6 bad rows"):
        run(path, alice, "--strict")


def test_a_second_import_adds_nothing(tmp_path, alice):
    path = write(tmp_path, [f"r{i},2026-03-01T10:00:{i:02d}Z,C1,M1,10.00,EUR,FR,pos,," for i in range(30)])
    assert run(path, alice)[0]["imported"] == 30
    assert run(path, alice)[0] == {"rows": 30, "imported": 0, "already_present": 30, "bad": 0}


def test_a_file_with_wrong_columns_is_refused(tmp_path, alice):
    with pytest.raises(CommandError, match="missing columns"):
        run(write(tmp_path, ["x,1"], header="id,amount"), alice)


BENCHMARK_HEADER = ",TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_TIME_SECONDS,TX_TIME_DAYS,TX_FRAUD,TX_FRAUD_SCENARIO"


def test_the_public_benchmarks_own_layout_is_read_as_published(tmp_path, alice, settings):
    path = write(
        tmp_path,
        [
            "0,0,2018-04-01 00:00:31,596,3156,57.16,31,0,0,0",
            "1,1,2018-04-01 00:02:10,4961,3412,81.51,130,0,1,2",
            "2,2,2018-04-01 00:07:56,2,1365,0.00,476,0,0,0",
        ],
        header=BENCHMARK_HEADER,
    )
    summary, errors = run(path, alice)
    assert summary == {"rows": 3, "imported": 2, "already_present": 0, "bad": 1}
    assert "line 4: amount:" in errors  # a zero amount is refused like any other, naming the field
    first, second = Transaction.objects.order_by("transaction_id")
    assert (first.customer_id, first.merchant_id, first.amount) == ("596", "3156", Decimal("57.16"))
    assert first.timestamp.isoformat() == "2018-04-01T00:00:31+00:00"  # naive benchmark times are UTC
    assert first.label == Label.LEGITIMATE and second.label == Label.FRAUD
    assert second.label_time == second.timestamp + timedelta(days=settings.FRAUD_LABEL_DELAY_DAYS)


def test_the_benchmark_layout_needs_its_columns_and_nothing_unknown(tmp_path, alice):
    missing = write(
        tmp_path,
        ["0,2018-04-01 00:00:31,596,3156,0"],
        header="TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_FRAUD",
    )
    with pytest.raises(CommandError, match="missing columns: \\['TX_AMOUNT'\\]"):
        run(missing, alice)
    unknown = write(tmp_path, ["0,2018-04-01 00:00:31,596,3156,1.00,0,x"],
                    header="TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD,SURPRISE")  # fmt: skip
    with pytest.raises(CommandError, match="unknown columns: \\['SURPRISE'\\]"):
        run(unknown, alice)
    assert not Transaction.objects.exists()
