"""What is unusual about a payment for its customer, judged against the payments before it."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from fraud.cases.habits import unusual_payments


def pay(amount: str = "40", *, country: str = "FR", currency: str = "EUR", merchant: str = "M1", channel: str = "pos"):
    return SimpleNamespace(
        amount=Decimal(amount), country=country, currency=currency, merchant_id=merchant, channel=channel
    )


def test_the_first_payment_has_nothing_to_differ_from():
    [first] = unusual_payments([pay(country="NG", channel="online")])
    assert not first and first.earlier == 0


def test_a_country_currency_merchant_or_channel_not_used_before_is_new():
    signals = unusual_payments(
        [
            pay(),
            pay(merchant="M2"),
            pay(country="DE", currency="USD", channel="online"),
            pay(merchant="M2", country="DE"),  # both seen by now
        ]
    )
    assert [sorted(s.new) for s in signals] == [
        [],
        ["merchant"],
        ["channel", "country", "currency"],
        [],
    ]
    assert signals[2].new_country and signals[2].new_currency and signals[2].new_channel
    assert not signals[2].new_merchant


def test_a_missing_channel_is_never_new():
    assert not unusual_payments([pay(), pay(channel="")])[1].new


def test_an_amount_far_above_the_customers_median_is_marked_once_there_is_a_median():
    signals = unusual_payments([pay("40"), pay("500"), pay("30"), pay("50"), pay("200"), pay("100")])
    assert signals[1].amount_ratio is None  # one earlier amount is no habit yet
    # 200 against 30, 40, 50 and 500: the median (45) is the habit, the one big payment is not
    assert signals[4].usual_amount == Decimal("45") and signals[4].amount_ratio == float(Decimal(200) / 45)
    assert signals[5].amount_ratio is None  # 100 is not 3× the median of 30, 40, 50, 200, 500 (50)
    assert signals[4] and not signals[5]


def test_amounts_are_compared_within_their_currency():
    signals = unusual_payments([pay("40"), pay("45"), pay("50"), pay("6000", currency="JPY")])
    assert signals[3].amount_ratio is None and signals[3].new_currency
