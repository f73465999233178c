"""What is unusual about a payment for its customer: a country, currency, merchant or channel
the customer has not used before, or an amount far above what they usually spend. No Django
import: it reads any rows with those attributes, oldest first.

Kept to facts an analyst can check against the history shown beside them (``first time in DE``,
``4.2× their median``), not a score: the model's reasons already say how much each feature
weighed."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

# The attributes compared, with the words the console shows for them.
HABIT_FIELDS = {"country": "country", "currency": "currency", "merchant_id": "merchant", "channel": "channel"}
# "Far above usual": at least this many times the median of the customer's earlier amounts in the
# same currency (a first payment in yen is flagged as a new currency, not as 150× the euros), and
# only once there are enough earlier amounts for a median to mean something. Three times the
# median is where a stolen card's first large purchase usually sits, while a customer's ordinary
# spread (groceries vs. a monthly bill) stays below it.
AMOUNT_FACTOR = Decimal(3)
MIN_EARLIER_AMOUNTS = 3


class Payment(Protocol):
    country: str
    currency: str
    merchant_id: str
    channel: str
    amount: Decimal


@dataclass(frozen=True)
class Unusual:
    """How one payment departs from the payments before it (``new``: the fields, by their
    ``HABIT_FIELDS`` names, whose value the customer had not used; ``amount_ratio``: the amount
    over the earlier median, set only when at least ``AMOUNT_FACTOR``)."""

    new: frozenset[str] = frozenset()
    amount_ratio: float | None = None
    usual_amount: Decimal | None = None  # the earlier median in its currency, when there were enough
    earlier: int = 0  # how many earlier payments it was compared with

    def __bool__(self) -> bool:
        return bool(self.new) or self.amount_ratio is not None

    @property
    def new_country(self) -> bool:
        return "country" in self.new

    @property
    def new_currency(self) -> bool:
        return "currency" in self.new

    @property
    def new_merchant(self) -> bool:
        return "merchant" in self.new

    @property
    def new_channel(self) -> bool:
        return "channel" in self.new


def unusual_payments(payments: Sequence[Payment]) -> list[Unusual]:
    """One ``Unusual`` per payment (oldest first), each judged against the payments before it
    in ``payments``. The first payment has nothing to differ from, so nothing is marked on it;
    an empty value (a channel not sent) is never "new"."""
    seen: dict[str, set[str]] = {name: set() for name in HABIT_FIELDS.values()}
    amounts: dict[str, list[Decimal]] = {}  # per currency, kept sorted for the running median
    out: list[Unusual] = []
    for i, payment in enumerate(payments):
        new = frozenset(
            name
            for attr, name in HABIT_FIELDS.items()
            if i and getattr(payment, attr) and getattr(payment, attr) not in seen[name]
        )
        same_currency = amounts.setdefault(payment.currency, [])
        median = _median(same_currency) if len(same_currency) >= MIN_EARLIER_AMOUNTS else None
        ratio = None
        if median and payment.amount >= AMOUNT_FACTOR * median:
            ratio = float(payment.amount / median)
        out.append(Unusual(new=new, amount_ratio=ratio, usual_amount=median, earlier=i))
        for attr, name in HABIT_FIELDS.items():
            if getattr(payment, attr):
                seen[name].add(getattr(payment, attr))
        bisect.insort(same_currency, payment.amount)
    return out


def _median(ordered: list[Decimal]) -> Decimal:
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
