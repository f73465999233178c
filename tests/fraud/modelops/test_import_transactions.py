from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from fraud.models import Label, LabelSource, Transaction
from fraud.transactions.validation import AmountPrecisionError, amount_from_float_text, validate_transaction
from tests.fraud.scoring.test_scoring_api import body

HEADER = "transaction_id,timestamp,customer_id,merchant_id,amount,currency,country,channel,label,label_time"


def write(tmp_path, lines: list[str], header: str = HEADER):
    path = tmp_path / "history.csv"
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def run(path, owner, *extra) -> tuple[dict, str]:
    out, err = StringIO(), StringIO()
    call_command("import_transactions", str(path), "--owner", owner.username, *extra, stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue()


def run_failing(path, owner, *extra) -> tuple[dict, str, str]:
    """(stdout's summary, stderr, the error) of an import that must fail."""
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as failure:
        call_command("import_transactions", str(path), "--owner", owner.username, *extra, stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue(), str(failure.value)


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
    assert summary == {"rows": 4, "imported": 4, "already_present": 0, "bad": 0, "bad_by_reason": {}}
    assert errors == ""
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
    summary, errors = run(path, alice, "--skip-bad")
    assert {k: summary[k] for k in ("rows", "imported", "already_present", "bad")} == {
        "rows": 7,
        "imported": 1,
        "already_present": 0,
        "bad": 6,
    }
    for line, field in [
        (3, "timestamp"),
        (4, "amount"),
        (5, "label"),
        (6, "label_time"),
        (7, "transaction_id"),
        (8, "non_field_errors"),
    ]:
        assert f"line {line}: {field}" in errors
    assert "left out 6 bad rows of 7 (--skip-bad)" in errors


def test_an_import_with_bad_rows_fails_with_a_summary_yet_keeps_the_good_rows(tmp_path, alice):
    path = write(
        tmp_path,
        [
            "ok1,2026-03-01T10:00:00Z,C1,M1,10.00,EUR,FR,pos,,",
            "b1,2026-03-01T10:00:00Z,C1,M1,10.001,EUR,FR,pos,,",
            "b2,2026-03-01T10:00:00Z,C1,M1,0,EUR,FR,pos,,",
            "b3,2026-03-01T10:00:00Z,C1,M1,7.123,EUR,FR,pos,,",
        ],
    )
    for flags in ((), ("--strict",)):  # --strict is the default behaviour, still accepted
        summary, errors, failure = run_failing(path, alice, *flags)
        assert summary["bad_by_reason"] == {"amount: EUR allows at most 2 decimal places.": 2,
                                            "amount: Must be greater than 0.": 1}  # fmt: skip
        assert failure.startswith("3 of 4 rows are bad and were not imported")
        assert "      2  amount: EUR allows at most 2 decimal places." in failure
        assert "line 3: amount: EUR allows at most 2 decimal places." in failure
        assert "line 5: amount: EUR allows at most 2 decimal places." in failure and "--skip-bad" in failure
    assert list(Transaction.objects.values_list("transaction_id", flat=True)) == ["ok1"]


def test_the_closing_summary_names_only_the_first_few_bad_rows(tmp_path, alice):
    path = write(tmp_path, [f"b{i},2026-03-01T10:00:00Z,C1,M1,-1,EUR,FR,pos,," for i in range(12)])
    summary, errors, failure = run_failing(path, alice)
    assert summary["bad"] == 12 and errors.count("line ") == 12  # every one on stderr
    assert "line 6:" in failure and "line 7:" not in failure
    assert "     12  amount: Must be greater than 0." in failure


def test_skip_bad_and_strict_contradict_each_other(tmp_path, alice):
    with pytest.raises(CommandError, match="not allowed with argument"):
        run(write(tmp_path, []), alice, "--skip-bad", "--strict")


def test_an_owner_that_does_not_exist_is_named_with_the_command_that_creates_it(tmp_path, db):
    with pytest.raises(CommandError) as failure:
        call_command("import_transactions", str(write(tmp_path, [])), "--owner", "acme", stdout=StringIO())
    assert str(failure.value) == (
        "no user 'acme' to own the history; create it with: python manage.py create_user acme --role api_client"
    )


def test_a_second_import_adds_nothing(tmp_path, alice):
    path = write(tmp_path, [f"r{i},2026-03-01T10:00:{i:02d}Z,C1,M1,10.00,EUR,FR,pos,," for i in range(30)])
    assert run(path, alice)[0]["imported"] == 30
    assert run(path, alice)[0] == {"rows": 30, "imported": 0, "already_present": 30, "bad": 0, "bad_by_reason": {}}


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
    summary, errors = run(path, alice, "--skip-bad")
    assert {k: summary[k] for k in ("rows", "imported", "bad")} == {"rows": 3, "imported": 2, "bad": 1}
    assert "line 4: amount: Must be greater than 0." in errors  # refused like any other, naming the field
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


def test_float_noise_in_benchmark_amounts_is_rounded_to_the_cent_and_every_fraud_is_kept(tmp_path, alice):
    # What pandas writes for cent amounts that went through float arithmetic: the benchmark
    # multiplies some fraud amounts by 5, and 19.96 * 5 is 99.80000000000001 in float64.
    cents = range(1001, 3001, 7)
    extra = {"99.80000000000001": "99.80", "1e2": "100", "100.0": "100", "0.30000000000000004": "0.3", "57.16": "57.16"}
    amounts = [repr(c / 100 * 5) for c in cents] + list(extra)
    lines = [f"{i},{i},2018-04-01 00:{i // 60 % 60:02d}:{i % 60:02d},C{i % 7},T{i % 11},{a},0,0,1,3"
             for i, a in enumerate(amounts)]  # fmt: skip
    noisy = sum(len(a.partition(".")[2]) > 2 for a in amounts)
    assert noisy == 72  # rows the import used to refuse
    summary, errors = run(write(tmp_path, lines, header=BENCHMARK_HEADER), alice)  # no failure, no --skip-bad
    assert summary["bad"] == 0 and errors == ""
    assert Transaction.objects.filter(label=Label.FRAUD).count() == summary["imported"] == len(amounts)
    stored = dict(Transaction.objects.values_list("transaction_id", "amount"))
    assert [stored[str(i)] for i in range(len(cents))] == [Decimal(c * 5) / 100 for c in cents]
    assert [stored[str(len(cents) + k)] for k in range(len(extra))] == [Decimal(v) for v in extra.values()]


def test_real_excess_precision_in_benchmark_amounts_is_refused_with_the_currencys_decimals(tmp_path, alice):
    lines = [
        "0,2018-04-01 00:00:01,C1,T1,99.80000000000001,1",
        "1,2018-04-01 00:00:02,C1,T1,99.805,1",
        "2,2018-04-01 00:00:03,C1,T1,99.80500000000001,1",
        "3,2018-04-01 00:00:04,C1,T1,1e-05,1",
        "4,2018-04-01 00:00:05,C1,T1,abc,1",
    ]
    path = write(tmp_path, lines, header="TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD")
    summary, errors, failure = run_failing(path, alice)
    assert summary["imported"] == 1 and summary["bad"] == 4
    for line in (3, 4, 5):
        assert f"line {line}: amount: EUR allows at most 2 decimal places." in errors
    assert "line 6: amount: Must be a positive decimal number" in errors
    assert "      3  amount: EUR allows at most 2 decimal places." in failure
    assert Transaction.objects.get().amount == Decimal("99.80")


def test_our_own_layout_and_the_api_never_round_an_amount(tmp_path, alice):
    path = write(tmp_path, ["h1,2026-03-01T10:00:00Z,C1,M1,99.80000000000001,EUR,,,,"])
    summary, errors, _ = run_failing(path, alice)
    assert "line 2: amount: Must be a positive decimal number" in errors and not Transaction.objects.exists()
    assert validate_transaction(body(amount="99.80000000000001"))[0] is None


@pytest.mark.parametrize(
    ("text", "currency", "amount"),
    [
        ("99.80000000000001", "EUR", Decimal("99.80")),
        ("99.79999999999998", "EUR", Decimal("99.80")),
        ("99.8", "EUR", Decimal("99.80")),
        ("1e2", "EUR", Decimal("100.00")),
        ("1E+2", "EUR", Decimal("100.00")),
        ("100.0", "EUR", Decimal("100.00")),
        ("1500.0000000000002", "JPY", Decimal("1500")),
        ("0.0", "EUR", Decimal("0.00")),  # sign and range are the amount validation's to refuse
        ("-3.0", "EUR", Decimal("-3.00")),
        ("abc", "EUR", None),
        ("٤٢", "EUR", None),  # float() reads Arabic-Indic digits; an amount never does
        ("nan", "EUR", None),
        ("inf", "EUR", None),
        ("1e999", "EUR", None),
        (" 5", "EUR", None),
    ],
)
def test_a_printed_float_within_noise_of_a_minor_unit_is_that_amount(text, currency, amount):
    assert amount_from_float_text(text, currency) == amount


@pytest.mark.parametrize(
    ("text", "currency"),
    [("99.805", "EUR"), ("99.80500000000001", "EUR"), ("99.8000001", "EUR"), ("999999.99000001", "EUR"),
     ("0.001", "EUR"), ("1e-05", "EUR"), ("1500.5", "JPY"), ("1.0001", "BHD")],
)  # fmt: skip
def test_a_printed_float_further_from_a_minor_unit_than_noise_is_refused_with_the_currencys_decimals(text, currency):
    with pytest.raises(AmountPrecisionError, match=f"^{currency} allows at most [0-9] decimal places.$"):
        amount_from_float_text(text, currency)
