"""Synthetic card-transaction history with labelled fraud. No Django import.

Same arguments, same data: every draw comes from one seeded ``numpy`` generator, and output is
sorted by time with ids assigned after sorting.

Legitimate behaviour: each customer has a home country, a typical amount (log-normal), a daily
rate, a set of favourite merchants and an online share; they pay mostly by day, mostly at home.

Fraud scenarios (documented in ``docs/model.md``), together about 0.5–1 % of transactions:

1. ``compromised_merchant`` — a merchant is breached for 2–4 weeks; part of its transactions in
   that time are fraud at ordinary amounts. Only merchant risk (with the label delay) reveals it.
2. ``compromised_card`` — a card is stolen; for 1–2 weeks the fraudster pays 1–3 times a day,
   3–8× the customer's usual amount, online, at merchants the customer never used, often abroad.
3. ``high_value_one_off`` — a single payment of 10–30× the usual amount, at night, online, at a
   new merchant.
4. ``card_testing`` — a burst of 5–12 tiny online payments within minutes across a few merchants,
   then one large payment.
5. ``foreign_cash_out`` — a cloned card used at ATMs or shops in a country the customer never
   visits, at 2–4× the usual amount, often at night, in that country's currency (cash comes out
   of an ATM in local money). Amounts are not converted, as for every currency here: they are
   the customer's own scale whatever the currency.

Fraud labels become known half a day to a week after the transaction for 85 % of frauds and one
to three weeks after for the rest (chargebacks are slow), so some are still unknown when the
default 7-day label delay has passed, as in real life.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from fraud.features.definitions import DAY, HOUR, to_epoch_us

COUNTRIES = ("FR", "DE", "GB", "ES", "IT", "NL", "BE", "US", "PL", "SE", "PT", "IE")
COUNTRY_WEIGHTS = np.array([18, 18, 14, 10, 10, 7, 5, 6, 4, 3, 3, 2], dtype=float)
FOREIGN_FRAUD_COUNTRIES = ("NG", "RU", "BR", "VN", "UA", "ID", "CN", "MX", "TR", "PH")
CURRENCY = {"GB": "GBP", "US": "USD", "PL": "PLN", "SE": "SEK"}
# The local money of the foreign fraud countries, for the payments made there in person
# (foreign cash-out); an online fraudster abroad still pays the merchant's own currency.
LOCAL_CURRENCY = {"NG": "NGN", "RU": "RUB", "BR": "BRL", "VN": "VND", "UA": "UAH", "ID": "IDR", "CN": "CNY",
                  "MX": "MXN", "TR": "TRY", "PH": "PHP"}  # fmt: skip
WHOLE_UNIT_CURRENCIES = frozenset({"VND", "IDR"})  # no minor unit (ISO 4217 / CLDR): whole amounts
SCENARIOS = ("compromised_merchant", "compromised_card", "high_value_one_off", "card_testing", "foreign_cash_out")


@dataclass
class Generated:
    transaction_id: list[str] = field(default_factory=list)
    customer_id: list[str] = field(default_factory=list)
    merchant_id: list[str] = field(default_factory=list)
    country: list[str] = field(default_factory=list)
    currency: list[str] = field(default_factory=list)
    channel: list[str] = field(default_factory=list)
    ts_us: list[int] = field(default_factory=list)
    amount: list[float] = field(default_factory=list)
    scenario: list[str] = field(default_factory=list)  # "" for legitimate
    label_time_us: list[int] = field(default_factory=list)  # -1 for legitimate

    def __len__(self) -> int:
        return len(self.ts_us)

    @property
    def fraud_rate(self) -> float:
        return sum(1 for s in self.scenario if s) / max(1, len(self))


def label_delay(rng: np.random.Generator) -> int:
    """Microseconds until a fraud label is known: most within a week (card holders notice and
    call), 15 % later (chargebacks), up to three weeks."""
    days = rng.uniform(0.5, 7.0) if rng.random() < 0.85 else rng.uniform(7.0, 21.0)
    return int(days * DAY)


class _Builder:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.rows: list[tuple] = []

    def add(
        self,
        customer: str,
        merchant: str,
        country: str,
        channel: str,
        ts: int,
        amount: float,
        scenario: str = "",
        currency: str = "",
    ) -> None:
        """``currency``: "" for the country's usual one (``CURRENCY``, else EUR)."""
        currency = currency or CURRENCY.get(str(country), "EUR")
        whole = currency in WHOLE_UNIT_CURRENCIES
        amount = round(max(1.0 if whole else 0.5, float(amount)), 0 if whole else 2)
        label_time = ts + label_delay(self.rng) if scenario else -1
        self.rows.append((ts, customer, merchant, country, channel, amount, scenario, label_time, currency))


def generate(*, start: datetime, days: int, customers: int, merchants: int, seed: int) -> Generated:
    rng = np.random.default_rng(seed)
    t0 = to_epoch_us(start)
    end = t0 + days * DAY
    out = _Builder(rng)

    # Merchants: a home country, a popularity weight, and whether they sell online only.
    m_ids = [f"M{i:05d}" for i in range(merchants)]
    m_country = rng.choice(COUNTRIES, size=merchants, p=COUNTRY_WEIGHTS / COUNTRY_WEIGHTS.sum())
    m_weight = rng.pareto(1.5, size=merchants) + 1.0
    m_weight /= m_weight.sum()
    m_online = rng.random(merchants) < 0.3

    # Customers.
    c_ids = [f"C{i:06d}" for i in range(customers)]
    c_country = rng.choice(COUNTRIES, size=customers, p=COUNTRY_WEIGHTS / COUNTRY_WEIGHTS.sum())
    c_mean = np.clip(rng.lognormal(np.log(45), 0.7, size=customers), 5, 600)
    c_std = c_mean * rng.uniform(0.2, 0.6, size=customers)
    c_rate = rng.uniform(0.3, 3.0, size=customers)
    c_online = rng.uniform(0.1, 0.6, size=customers)

    def daytime_offsets(k: int) -> np.ndarray:
        hours = np.clip(rng.normal(14.0, 3.8, size=k), 0.0, 23.999)
        return (hours * HOUR).astype(np.int64)

    favourites = []
    for c in range(customers):
        local = np.flatnonzero(m_country == c_country[c])
        pool_p = m_weight.copy()
        pool_p[local] *= 6.0  # people mostly shop near home
        pool_p /= pool_p.sum()
        size = min(int(rng.integers(4, 14)), max(1, merchants - 1))
        favourites.append(rng.choice(merchants, size=size, replace=False, p=pool_p))

    # Legitimate traffic.
    for c in range(customers):
        per_day = rng.poisson(c_rate[c], size=days)
        for d in np.flatnonzero(per_day):
            k = int(per_day[d])
            stamps = t0 + d * DAY + daytime_offsets(k) + rng.integers(0, 60_000_000, size=k)
            for ts in stamps:
                m = int(rng.choice(favourites[c])) if rng.random() < 0.85 else int(rng.choice(merchants, p=m_weight))
                online = bool(m_online[m]) or rng.random() < c_online[c]
                channel = "online" if online else ("atm" if rng.random() < 0.05 else "pos")
                country = c_country[c] if rng.random() < 0.96 else str(rng.choice(COUNTRIES))
                amount = rng.normal(c_mean[c], c_std[c])
                if channel == "atm":
                    amount = round(max(20.0, amount * 2) / 10) * 10
                out.add(c_ids[c], m_ids[m], country, channel, int(ts), amount)

    # 1. Compromised merchants: about one new breach every ten days per 200 merchants.
    breaches = rng.poisson(days * merchants / 2000)
    breached: dict[str, list[tuple[int, int]]] = {}
    for _ in range(breaches):
        m = int(rng.choice(merchants, p=m_weight))
        b_start = t0 + int(rng.integers(0, max(1, days - 7))) * DAY
        breached.setdefault(m_ids[m], []).append((b_start, b_start + int(rng.integers(14, 29)) * DAY))
    rows = out.rows
    for i, row in enumerate(rows):
        ts = row[0]
        for b0, b1 in breached.get(row[2], ()):
            if b0 <= ts < b1 and rng.random() < 0.3:
                rows[i] = (*row[:6], "compromised_merchant", ts + label_delay(rng), row[8])
                break

    def random_time(lo: int = t0, hi: int = end) -> int:
        return int(rng.integers(lo, hi))

    def night_time(day_start: int) -> int:
        return day_start + int(rng.uniform(0, 6) * HOUR)

    def new_merchant(c: int) -> int:
        if len(favourites[c]) >= merchants:
            return int(rng.integers(0, merchants))
        while True:
            m = int(rng.integers(0, merchants))
            if m not in favourites[c]:
                return m

    # 2. Compromised cards.
    for _ in range(rng.poisson(days * customers / 5000)):
        c = int(rng.integers(0, customers))
        first = random_time()
        length = int(rng.integers(7, 15))
        abroad = rng.random() < 0.5
        country = str(rng.choice(FOREIGN_FRAUD_COUNTRIES)) if abroad else c_country[c]
        for d in range(length):
            for _k in range(int(rng.integers(1, 4))):
                ts = first + d * DAY + int(rng.integers(0, DAY))
                if ts >= end:
                    continue
                out.add(
                    c_ids[c],
                    m_ids[new_merchant(c)],
                    country,
                    "online",
                    ts,
                    c_mean[c] * rng.uniform(3, 8),
                    "compromised_card",
                )

    # 3. High-value one-offs.
    for _ in range(rng.poisson(days * customers / 3000)):
        c = int(rng.integers(0, customers))
        day = t0 + int(rng.integers(0, days)) * DAY
        out.add(
            c_ids[c],
            m_ids[new_merchant(c)],
            c_country[c],
            "online",
            night_time(day),
            c_mean[c] * rng.uniform(10, 30),
            "high_value_one_off",
        )

    # 4. Card testing bursts, then a cash-out.
    for _ in range(rng.poisson(days * customers / 4000)):
        c = int(rng.integers(0, customers))
        ts = random_time(hi=end - 2 * HOUR)
        shops = [new_merchant(c) for _ in range(int(rng.integers(1, 4)))]
        for _k in range(int(rng.integers(5, 13))):
            ts += int(rng.integers(20, 240)) * 1_000_000
            out.add(
                c_ids[c],
                m_ids[int(rng.choice(shops))],
                c_country[c],
                "online",
                ts,
                rng.uniform(0.5, 3.0),
                "card_testing",
            )
        ts += int(rng.integers(5, 60)) * 60 * 1_000_000
        out.add(
            c_ids[c], m_ids[new_merchant(c)], c_country[c], "online", ts, c_mean[c] * rng.uniform(4, 10), "card_testing"
        )

    # 5. Foreign cash-out with a cloned card.
    for _ in range(rng.poisson(days * customers / 3500)):
        c = int(rng.integers(0, customers))
        country = str(rng.choice(FOREIGN_FRAUD_COUNTRIES))
        day = t0 + int(rng.integers(0, days)) * DAY
        for _k in range(int(rng.integers(1, 4))):
            ts = night_time(day) if rng.random() < 0.6 else day + int(rng.integers(0, DAY))
            channel = "atm" if rng.random() < 0.6 else "pos"
            out.add(
                c_ids[c],
                m_ids[new_merchant(c)],
                country,
                channel,
                ts,
                c_mean[c] * rng.uniform(2, 4),
                "foreign_cash_out",
                LOCAL_CURRENCY[country],
            )

    rows = sorted((r for r in out.rows if t0 <= r[0] < end), key=lambda r: (r[0], r[1], r[2]))
    result = Generated()
    for i, (ts, customer, merchant, country, channel, amount, scenario, label_time, currency) in enumerate(rows):
        result.transaction_id.append(f"G{seed}-{i:08d}")
        result.customer_id.append(customer)
        result.merchant_id.append(merchant)
        result.country.append(str(country))
        result.currency.append(currency)
        result.channel.append(channel)
        result.ts_us.append(int(ts))
        result.amount.append(float(amount))
        result.scenario.append(scenario)
        result.label_time_us.append(int(label_time))
    return result


def default_start(days: int, *, now: datetime) -> datetime:
    """A start date so that generated history ends at the beginning of today (UTC)."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days)
