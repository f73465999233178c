"""Reasons an analyst can act on: only what raised the score, each a risk set against the
customer's own habits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from fraud.features import definitions as fx
from fraud.modelops.generator import WHOLE_UNIT_CURRENCIES, generate
from fraud.modelops.services.history import history_generate
from fraud.models import Transaction
from fraud.scoring import reasons
from fraud.scoring.scorer import REASON_MIN_DELTA, Contribution
from tests.factories import TransactionFactory

URL = "/api/v1/transactions/"
NOON = datetime(2026, 4, 15, 12, 0, tzinfo=UTC)  # a Wednesday
GROUPS = {g.code: g for g in fx.REASON_GROUPS}


def row(*, amount: float = 40.0, at: datetime = NOON, channel: str = "pos", **aggregates: float) -> np.ndarray:
    """A feature row as the scoring path assembles it, from aggregates (0 unless given; no
    previous payment unless ``c_prev_ts``)."""
    agg = {name: np.array([0.0]) for name in fx.AGGREGATE_NAMES} | {"c_prev_ts": np.array([-1.0])}
    agg |= {name: np.array([float(value)]) for name, value in aggregates.items()}
    return fx.assemble(
        agg, amount=np.array([amount]), ts_us=np.array([fx.to_epoch_us(at)]), channel=np.array([channel]),
        has_card=np.array([False]),
    )[0]  # fmt: skip


# A steady customer: 37 payments in 30 days, 9 of them in the last 7 (1.3 a day, as in the 23 days
# before), about 40 EUR each, at their usual shops, in IT and in EUR; the last one 20 hours ago.
STEADY = {
    "c_n_1d": 1, "c_n_7d": 9, "c_n_30d": 37, "c_sum_1d": 40, "c_sum_7d": 360, "c_sum_30d": 1480,
    "c_sumsq_30d": 37 * 1700, "c_max_30d": 60, "c_prev_ts": fx.to_epoch_us(NOON - timedelta(hours=20)),
    "cm_n_30d": 6, "cc_n_30d": 37, "cu_n_30d": 37, "m_n_1d": 14, "m_n_7d": 84, "m_n_30d": 300,
}  # fmt: skip


def ctx(**fields: object) -> reasons.Context:
    base: dict = {"amount": Decimal("40.00"), "currency": "EUR", "country": "IT", "channel": "pos", "timestamp": NOON,
                  "typical_amount": 40.0}  # fmt: skip
    return reasons.Context(**(base | fields))


def every_group_raised(delta: float = 0.05) -> list[Contribution]:
    return [Contribution(g, delta) for g in fx.REASON_GROUPS]


def test_every_reason_group_has_a_message_and_every_message_a_group():
    assert set(reasons.MESSAGES) == set(GROUPS)


def test_a_customer_paying_as_usual_gets_no_reason_whatever_the_model_added():
    """The review's "this customer has 37 transactions in the last 30 days": a model scores
    combinations, so every group can add a little; none of these facts is a risk."""
    said = reasons.describe(every_group_raised(), row(**STEADY), ctx(), limit=len(fx.REASON_GROUPS))
    assert said == []


def test_a_burst_is_set_against_the_customers_usual_pace():
    burst = STEADY | {"c_n_7d": 30, "c_sum_7d": 1200}  # 30 in the last 7 days, 7 in the 23 before
    said = reasons.describe([Contribution(GROUPS["CUSTOMER_HISTORY"], 0.2)], row(**burst), ctx(), limit=3)
    assert said == [
        {
            "code": "CUSTOMER_HISTORY",
            "value": pytest.approx(14.0816, abs=1e-4),
            "contribution": 0.2,
            "message": "30 payments in the last 7 days, 14× this customer's usual pace (2.1 a week in the 23 days before)",
        }
    ]


def test_payments_within_the_hour_are_set_against_the_customers_day():
    busy = STEADY | {"c_n_1h": 4, "c_n_1d": 5}
    said = reasons.describe([Contribution(GROUPS["CUSTOMER_VELOCITY"], 0.1)], row(**busy), ctx(), limit=3)
    assert [r["message"] for r in said] == [
        "4 earlier payments by this customer in the last hour, more than they usually make in a day (1.2 a day)"
    ]


def test_a_customer_without_history_is_said_to_be_one_once():
    first = row(channel="atm", m_n_1d=14, m_n_7d=84, m_n_30d=300)
    order = ["NEW_COUNTRY_FOR_CUSTOMER", "CUSTOMER_HISTORY", "NEW_MERCHANT_FOR_CUSTOMER", "RAPID_SUCCESSION",
             "NEW_CURRENCY_FOR_CUSTOMER", "AMOUNT_HIGH_FOR_CUSTOMER", "CHANNEL"]  # fmt: skip
    contributions = [Contribution(GROUPS[code], 0.3 - 0.01 * i) for i, code in enumerate(order)]
    said = reasons.describe(contributions, first, ctx(channel="atm"), limit=3)
    assert [(r["code"], r["message"]) for r in said] == [
        ("NEW_COUNTRY_FOR_CUSTOMER", "first payment we have seen from this customer in 30 days: no history to compare it with"),
        ("CHANNEL", "a cash withdrawal at an ATM"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("amount", "level", "for_customer"),
    [
        ("1850.00", "a high amount: 1,850.00 EUR, 46× a typical payment",
         "1,850.00 EUR, 7.4× this customer's 30-day average and above their largest payment in 30 days"),
        ("99.99", None, None),  # the review's "in a range where fraud is more common": no sentence
        ("1.00", "a small amount typical of card testing: 1.00 EUR",
         "a small amount for this customer: 1.00 EUR, under a tenth of their 30-day average (card testers try small "
         "amounts first)"),
    ],
)  # fmt: skip
def test_amounts_are_reasons_only_when_high_or_a_probe(amount, level, for_customer):
    spender = STEADY | {"c_sum_7d": 2250, "c_sum_30d": 9250, "c_max_30d": 400}  # 250 EUR a payment
    features = row(amount=float(amount), **spender)
    contributions = [Contribution(GROUPS["AMOUNT_LEVEL"], 0.2), Contribution(GROUPS["AMOUNT_HIGH_FOR_CUSTOMER"], 0.1)]
    said = {
        r["code"]: r["message"] for r in reasons.describe(contributions, features, ctx(amount=Decimal(amount)), limit=3)
    }
    assert said.get("AMOUNT_LEVEL") == level
    assert said.get("AMOUNT_HIGH_FOR_CUSTOMER") == for_customer


def test_a_first_country_and_currency_name_the_customers_usual_ones():
    """The review's NG/USD online payment from an IT/EUR customer."""
    features = row(amount=99.99, channel="online", **(STEADY | {"cc_n_30d": 0, "cu_n_30d": 0}))
    contributions = [Contribution(GROUPS["NEW_COUNTRY_FOR_CUSTOMER"], 0.3), Contribution(GROUPS["NEW_CURRENCY_FOR_CUSTOMER"], 0.1)]  # fmt: skip
    usual = ctx(country="NG", currency="USD", customer_countries={"IT"}, customer_currencies={"EUR"})
    assert [r["message"] for r in reasons.describe(contributions, features, usual, limit=3)] == [
        "first payment in NG for this customer (all 37 earlier payments in 30 days were in IT)",
        "first payment in USD for this customer (all 37 earlier payments in 30 days were in EUR)",
    ]
    # The batch path does not collect the customer's countries: the same reasons, said without them.
    unnamed = ctx(country="NG", currency="USD")
    assert [r["message"] for r in reasons.describe(contributions, features, unnamed, limit=3)] == [
        "first payment in NG for this customer (all 37 earlier payments in 30 days were elsewhere)",
        "first payment in USD for this customer (all 37 earlier payments in 30 days were elsewhere)",
    ]
    rare = row(**(STEADY | {"cc_n_30d": 2, "cu_n_30d": 35}))
    assert [r["message"] for r in reasons.describe(contributions, rare, unnamed, limit=3)] == [
        "a rare country for this customer: 2 of their 37 payments in 30 days were in NG"
    ]


def test_only_what_raised_the_score_is_listed_and_a_silent_group_leaves_its_place():
    at = NOON.replace(hour=3, minute=12)
    night = row(at=at, channel="online", **(STEADY | {"cm_n_30d": 0}))
    contributions = [
        Contribution(GROUPS["CUSTOMER_HISTORY"], 0.4),  # a steady customer: no sentence
        Contribution(GROUPS["TIME_OF_DAY"], 0.2),
        Contribution(GROUPS["NEW_MERCHANT_FOR_CUSTOMER"], 0.1),
        Contribution(GROUPS["CHANNEL"], REASON_MIN_DELTA / 2),  # too small to be a reason
        Contribution(GROUPS["MERCHANT_VOLUME"], -0.3),  # lowered the score
    ]
    said = reasons.describe(contributions, night, ctx(channel="online", timestamp=at), limit=2)
    assert [(r["code"], r["message"]) for r in said] == [
        ("TIME_OF_DAY", "made at night (03:12 UTC)"),
        ("NEW_MERCHANT_FOR_CUSTOMER",
         "first payment by this customer at this merchant in 30 days (their 37 earlier payments were at other merchants)"),
    ]  # fmt: skip
    # A merchant the customer already paid at is never a reason, however much the model added.
    again = reasons.describe([Contribution(GROUPS["NEW_MERCHANT_FOR_CUSTOMER"], 0.5)], row(**STEADY), ctx(), limit=3)
    assert again == []


def test_the_scoring_api_gives_an_it_customer_paying_in_ng_and_usd_the_country_with_their_usual_one(
    alice_api, alice, active_model
):
    now = datetime.now(UTC).replace(microsecond=0)
    for i in range(37):  # an IT/EUR customer paying as usual, about 1.2 a day at their shops
        TransactionFactory(
            owner=alice, customer_id="C-it", merchant_id=f"M0000{i % 5}", amount=Decimal("40"), currency="EUR",
            country="IT", timestamp=now - timedelta(days=29) + timedelta(hours=19 * i),
        )  # fmt: skip
    response = alice_api.post(
        URL,
        {"transaction_id": "ng-1", "customer_id": "C-it", "merchant_id": "M-lagos", "amount": "99.99",
         "currency": "USD", "country": "NG", "channel": "online", "timestamp": now.isoformat()},
        format="json",
    )  # fmt: skip

    assert response.status_code == 201, response.content
    said = {r["code"]: r for r in response.json()["reasons"]}
    assert all(r["contribution"] >= REASON_MIN_DELTA for r in said.values())
    assert "CUSTOMER_HISTORY" not in said and "AMOUNT_LEVEL" not in said
    assert said["NEW_COUNTRY_FOR_CUSTOMER"]["message"] == (
        "first payment in NG for this customer (all 37 earlier payments in 30 days were in IT)"
    )


# A generated history whose foreign cash-outs all come after at least 16 days of their customer's
# history: twelve of them, in six currencies (the session's model is trained on seed 7).
CASH_OUT_HISTORY = {
    "start": datetime(2026, 3, 1, tzinfo=UTC),
    "days": 45,
    "customers": 300,
    "merchants": 40,
    "seed": 13,
}


def test_foreign_cash_outs_are_explained_by_the_country_or_currency_change(alice_api, alice, active_model):
    """The generator's foreign cash-outs, scored through the scoring API one by one in time order
    on top of the rest of their history (as they would arrive): most of them carry the country
    or currency reason."""
    generated = generate(**CASH_OUT_HISTORY)
    cash_outs = [i for i in range(len(generated)) if generated.scenario[i] == "foreign_cash_out"]
    assert len(cash_outs) == 12
    history_generate(owner=alice, **CASH_OUT_HISTORY)
    Transaction.objects.filter(
        owner=alice, transaction_id__in=[generated.transaction_id[i] for i in cash_outs]
    ).delete()

    explained = []
    for i in cash_outs:
        places = 0 if generated.currency[i] in WHOLE_UNIT_CURRENCIES else 2
        response = alice_api.post(
            URL,
            {"transaction_id": generated.transaction_id[i], "customer_id": generated.customer_id[i],
             "merchant_id": generated.merchant_id[i], "amount": f"{generated.amount[i]:.{places}f}",
             "currency": generated.currency[i], "country": generated.country[i], "channel": generated.channel[i],
             "timestamp": fx.from_epoch_us(generated.ts_us[i]).isoformat()},
            format="json",
        )  # fmt: skip
        assert response.status_code == 201, response.content
        codes = {r["code"] for r in response.json()["reasons"]}
        explained.append(bool(codes & {"NEW_COUNTRY_FOR_CUSTOMER", "NEW_CURRENCY_FOR_CUSTOMER"}))
    assert sum(explained) >= 10, explained  # measured: 12 of 12
