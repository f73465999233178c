"""Human sentences for score contributions. No Django import.

Each reason carries a stable ``code`` (clients may switch on it), the ``value`` its message
quotes (a ratio, a count, an amount: see each message), the ``contribution`` (how much the score
drops when the group is set to ordinary values) and a ``message`` for people.

A reason is listed only when it raised the score (a contribution of at least
``REASON_MIN_DELTA``) *and* its features describe a risk an analyst can act on. A group can
raise a score without that: a model scores combinations, so "37 payments in 30 days" can add a
little to a score whose real cause is elsewhere. Such a group gets no sentence (its message
function returns None) and the next group takes its place; "this customer already paid at this
merchant" is never a reason.

Figures are set against the customer's own habits. A customer's *usual pace* is their payments
per day 7 to 30 days before this one, ``(c_n_30d - c_n_7d) / 23``: the part of the history older
than the last week, so that a compromise in the last few days does not raise the baseline it is
compared with (as ``amount_ratio_older`` does for amounts). Without that older history there is
no usual pace, and the messages say so instead of inventing one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from fraud.features.definitions import CUSTOMER_COUNT_WINDOWS, DAY, FEATURE_INDEX, MAX_GAP_SECONDS
from fraud.scoring.scorer import REASON_MIN_DELTA, Contribution

# Days in the older part of the customer's history (7 to 30 days before), the usual pace's base.
OLDER_DAYS = (CUSTOMER_COUNT_WINDOWS["30d"] - CUSTOMER_COUNT_WINDOWS["7d"]) / DAY
RECENT_DAYS = CUSTOMER_COUNT_WINDOWS["7d"] / DAY

# What reads as a risk. An amount 1.5× the customer's average is noticeable, a tenth of it is a
# probe; a pace twice the usual one is a change. A share under a fifth makes a country or currency
# rare for the customer. A merchant with fewer than 10 payments in 30 days is barely known to us.
HIGH_RATIO = 1.5
LOW_RATIO = 0.1
FAST_PACE = 2.0
RARE_SHARE = 0.2
LITTLE_KNOWN_MERCHANT = 10
# The amount on its own, against the typical payment the model was trained on (the training
# median, which is also the neutral value). Measured on the tests' small model (median 40): on
# ordinary payments the amount alone moves the score from about 6× the median up (+0.02 at 250,
# +0.035 from 400) and for a twentieth of it or less (+0.006 at 0.50 to 2.00: card tests), and
# leaves the amounts between alone (-0.003 to +0.000 from 3 to 150); on payments that look like a
# stolen card's it already counts from about 3×. Between a twentieth and 3× a contribution is the
# amount's part in a combination, not a property of the amount ("99.99 USD is in a range where
# fraud is more common" said nothing an analyst could use): no sentence.
HIGH_AMOUNT = 3.0
TEST_AMOUNT = 1 / 20

FIRST_SEEN = "first payment we have seen from this customer in 30 days: no history to compare it with"


@dataclass(frozen=True)
class Context:
    """The transaction's own fields a message may quote, and what the feature read already brought
    about the customer. The countries and currencies are None where the read did not bring them
    (the batch path computes its features offline, where collecting them would cost a pass over
    every customer's history): the messages then say "elsewhere" instead of naming them."""

    amount: Decimal | str
    currency: str
    country: str
    channel: str
    timestamp: datetime | None = None
    customer_countries: Collection[str] | None = None  # of the last 30 days
    customer_currencies: Collection[str] | None = None
    typical_amount: float | None = None  # the model's training median amount, for AMOUNT_LEVEL


def _f(row: np.ndarray, name: str) -> float:
    return float(row[FEATURE_INDEX[name]])


def _times(ratio: float) -> str:
    return f"{ratio:.1f}×" if ratio < 10 else f"{ratio:,.0f}×"


def _count(n: float, noun: str) -> str:
    n = round(n)
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _money(ctx: Context) -> str:
    try:
        amount = Decimal(str(ctx.amount))
    except InvalidOperation:
        return f"{ctx.amount} {ctx.currency}"
    return f"{amount:,} {ctx.currency}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} seconds"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.1f} days"


def _usual_per_day(row: np.ndarray) -> float | None:
    """The customer's usual pace (module docstring); None without history older than 7 days."""
    older = _f(row, "c_n_30d") - _f(row, "c_n_7d")
    return older / OLDER_DAYS if older > 0 else None


def _pace(per_day: float) -> str:
    if per_day >= 1:
        return f"{per_day:.1f} a day"
    return f"{per_day * 7:.1f} a week"


def _listing(codes: Collection[str]) -> str:
    names = sorted(codes)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


Said = tuple[float, str] | None


def _amount_high(row: np.ndarray, ctx: Context) -> Said:
    if _f(row, "c_n_30d") == 0:
        return None  # nothing to compare with: the history group says so
    ratio = _f(row, "amount_ratio_30d")
    older = _f(row, "amount_ratio_older")
    has_older = _f(row, "c_n_30d") > _f(row, "c_n_7d")
    if has_older and older > ratio and older >= HIGH_RATIO:
        # The last week raised the 30-day average (as a compromise does): the older one is theirs.
        said = f"{_money(ctx)}, {_times(older)} this customer's average payment before the last 7 days"
        ratio = older
    elif ratio >= HIGH_RATIO:
        said = f"{_money(ctx)}, {_times(ratio)} this customer's 30-day average"
    elif ratio <= LOW_RATIO:
        return round(ratio, 4), (
            f"a small amount for this customer: {_money(ctx)}, under a tenth of their 30-day average "
            "(card testers try small amounts first)"
        )
    else:
        return None
    if _f(row, "amount_ratio_max_30d") > 1:
        said += " and above their largest payment in 30 days"
    return round(ratio, 4), said


def _amount_level(row: np.ndarray, ctx: Context) -> Said:
    amount = math.expm1(_f(row, "amount_log"))
    typical = ctx.typical_amount
    if not typical or typical <= 0:
        return None
    if amount >= HIGH_AMOUNT * typical:
        return round(amount, 2), f"a high amount: {_money(ctx)}, {_times(amount / typical)} a typical payment"
    if amount <= TEST_AMOUNT * typical:
        return round(amount, 2), f"a small amount typical of card testing: {_money(ctx)}"
    return None


def _velocity(row: np.ndarray, ctx: Context) -> Said:
    n1h, n1d = _f(row, "c_n_1h"), _f(row, "c_n_1d")
    usual = _usual_per_day(row)
    if usual is None:
        if n1h >= 3 or n1d >= 5:
            return n1d, (
                f"{_count(n1d, 'earlier payment')} by this customer in the last 24 hours "
                f"({n1h:.0f} in the last hour), with no older history to compare with"
            )
        return None
    if n1h >= 2 and n1h > usual:
        return n1h, (
            f"{_count(n1h, 'earlier payment')} by this customer in the last hour, more than they usually "
            f"make in a day ({_pace(usual)})"
        )
    if n1d >= 3 and n1d >= 3 * usual:
        return n1d, (
            f"{_count(n1d, 'earlier payment')} by this customer in the last 24 hours, {_times(n1d / usual)} "
            f"their usual pace ({_pace(usual)})"
        )
    return None


def _succession(row: np.ndarray, ctx: Context) -> Said:
    gap = math.expm1(_f(row, "log_secs_since_prev"))
    # The count, not the gap: the longest gap comes back from float32 a second or two short.
    if _f(row, "c_n_30d") == 0:
        return round(MAX_GAP_SECONDS), FIRST_SEEN
    usual = _usual_per_day(row)
    usual_gap = 86400 / usual if usual else None
    if gap < 3600 and (usual_gap is None or gap < usual_gap / 4):
        habit = f" (they usually pay about every {_duration(usual_gap)})" if usual_gap else ""
        return round(gap), f"only {_duration(gap)} since this customer's previous payment{habit}"
    if gap >= 7 * 86400:
        return round(gap), f"first payment from this customer in {_duration(gap)}: a quiet account active again"
    return None


def _history(row: np.ndarray, ctx: Context) -> Said:
    n7, n30 = _f(row, "c_n_7d"), _f(row, "c_n_30d")
    if n30 == 0:
        return n30, FIRST_SEEN
    usual = _usual_per_day(row)
    if usual is None:
        return n30, (
            f"a customer new to us: all {_count(n30, 'payment')} we have seen from them in 30 days "
            "were in the last 7 days"
        )
    parts, value = [], None
    recent = n7 / RECENT_DAYS
    if n7 >= 3 and recent >= FAST_PACE * usual:
        value = recent / usual
        parts.append(
            f"{_count(n7, 'payment')} in the last 7 days, {_times(value)} this customer's usual pace "
            f"({_pace(usual)} in the 23 days before)"
        )
    shift = _f(row, "spend_shift_7d")
    if n7 > 0 and shift >= FAST_PACE:
        value = value if value is not None else shift
        parts.append(f"their payments in the last 7 days average {_times(shift)} their earlier ones")
    if parts:
        return round(value or 0.0, 4), "; ".join(parts)
    if n30 <= 3:
        return n30, f"little history: only {_count(n30, 'payment')} from this customer in 30 days"
    return None


def _new_merchant(row: np.ndarray, ctx: Context) -> Said:
    if not _f(row, "new_merchant_30d"):
        return None
    n30 = _f(row, "c_n_30d")
    if n30 == 0:
        return 1.0, FIRST_SEEN
    return 1.0, (
        f"first payment by this customer at this merchant in 30 days "
        f"(their {_count(n30, 'earlier payment')} were at other merchants)"
    )


def _novelty(
    row: np.ndarray, *, code: str, flag: str, share_name: str, seen: Collection[str] | None, what: str
) -> Said:
    """A country or currency against the customer's 30 days: a first, or a rare one."""
    n30 = _f(row, "c_n_30d")
    if not code:
        return None
    if n30 == 0:
        return (1.0, FIRST_SEEN) if _f(row, flag) else None
    share = _f(row, share_name)
    if _f(row, flag):
        if seen and len(seen) == 1:
            where = f"all {_count(n30, 'earlier payment')} in 30 days were in {_listing(seen)}"
        elif seen:
            where = f"their {_count(n30, 'earlier payment')} in 30 days were in {_listing(seen)}"
        else:
            where = f"all {_count(n30, 'earlier payment')} in 30 days were elsewhere"
        return 0.0, f"first payment in {code} for this customer ({where})"
    if share < RARE_SHARE:
        k = round(share * n30)
        return round(share, 4), (
            f"a rare {what} for this customer: {k:,} of their {_count(n30, 'payment')} in 30 days "
            f"{'was' if k == 1 else 'were'} in {code}"
        )
    return None


def _new_country(row: np.ndarray, ctx: Context) -> Said:
    return _novelty(
        row, code=ctx.country, flag="new_country_30d", share_name="country_share_30d",
        seen=ctx.customer_countries, what="country",
    )  # fmt: skip


def _new_currency(row: np.ndarray, ctx: Context) -> Said:
    return _novelty(
        row, code=ctx.currency, flag="new_currency_30d", share_name="currency_share_30d",
        seen=ctx.customer_currencies, what="currency",
    )  # fmt: skip


def _merchant_risk(row: np.ndarray, ctx: Context) -> Said:
    frauds, rate = _f(row, "m_fraud_n_30d"), _f(row, "m_risk_30d")
    if frauds <= 0 or rate <= 0:
        return None
    total = round(frauds / rate)
    return round(rate, 4), (
        f"confirmed fraud at this merchant: {frauds:.0f} of its {_count(total, 'payment')} in the 30 days before "
        f"the label delay ({rate * 100:.1f}%)"
    )


def _merchant_volume(row: np.ndarray, ctx: Context) -> Said:
    n1d, n7, n30 = _f(row, "m_n_1d"), _f(row, "m_n_7d"), _f(row, "m_n_30d")
    if n30 < LITTLE_KNOWN_MERCHANT:
        if n30 == 0:
            return n30, "a merchant we have not seen in 30 days"
        return n30, f"a merchant we have seen little of: {_count(n30, 'payment')} in 30 days"
    usual = (n30 - n7) / OLDER_DAYS
    if n1d >= 10 and usual > 0 and n1d >= 3 * usual:
        return n1d, (
            f"{_count(n1d, 'payment')} at this merchant in the last 24 hours, {_times(n1d / usual)} its usual "
            f"daily volume"
        )
    return None


def _time_of_day(row: np.ndarray, ctx: Context) -> Said:
    # Night only: a weekend moves scores a little but is not something an analyst can act on.
    if not _f(row, "is_night"):
        return None
    at = f"{ctx.timestamp.astimezone(UTC):%H:%M} UTC" if ctx.timestamp else "00:00–06:00 UTC"
    return 1.0, f"made at night ({at})"


def _channel(row: np.ndarray, ctx: Context) -> Said:
    if _f(row, "channel_atm"):
        return 1.0, "a cash withdrawal at an ATM"
    if _f(row, "channel_online"):
        return 1.0, "an online payment (card not present)"
    return None


def _card_velocity(row: np.ndarray, ctx: Context) -> Said:
    n1h, n1d = _f(row, "card_n_1h"), _f(row, "card_n_1d")
    if n1h < 1 and n1d < 2:
        return None
    return n1h, f"this card was already used {_count(n1h, 'time')} in the last hour ({n1d:.0f} in the last 24 hours)"


MESSAGES: dict[str, Callable[[np.ndarray, Context], Said]] = {
    "AMOUNT_HIGH_FOR_CUSTOMER": _amount_high,
    "AMOUNT_LEVEL": _amount_level,
    "CUSTOMER_VELOCITY": _velocity,
    "RAPID_SUCCESSION": _succession,
    "CUSTOMER_HISTORY": _history,
    "NEW_MERCHANT_FOR_CUSTOMER": _new_merchant,
    "NEW_COUNTRY_FOR_CUSTOMER": _new_country,
    "NEW_CURRENCY_FOR_CUSTOMER": _new_currency,
    "MERCHANT_FRAUD_RATE": _merchant_risk,
    "MERCHANT_VOLUME": _merchant_volume,
    "TIME_OF_DAY": _time_of_day,
    "CHANNEL": _channel,
    "CARD_VELOCITY": _card_velocity,
}


def describe(contributions: list[Contribution], row: np.ndarray, ctx: Context, *, limit: int) -> list[dict[str, Any]]:
    """JSON-ready reasons, at most ``limit``, from contributions largest first: those that raised
    the score and read as a risk, each sentence once (several groups say "first payment we have
    seen" of a customer without history; the largest contribution keeps it)."""
    reasons: list[dict[str, Any]] = []
    said: set[str] = set()
    for c in contributions:
        if len(reasons) >= limit:
            break
        if c.delta < REASON_MIN_DELTA:
            continue
        out = MESSAGES[c.group.code](row, ctx)
        if out is None or out[1] in said:
            continue
        value, message = out
        said.add(message)
        reasons.append(
            {
                "code": c.group.code,
                "value": round(float(value), 4),
                "contribution": round(c.delta, 6),
                "message": message,
            }
        )
    return reasons
