"""Human sentences for score contributions. No Django import.

Each reason carries a stable ``code`` (clients may switch on it), the ``value`` of the feature the
model saw, the ``contribution`` (how much the score drops when the group is set to ordinary
values) and a ``message`` for people."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from fraud.features.definitions import FEATURE_INDEX, MAX_GAP_SECONDS
from fraud.scoring.scorer import Contribution

# The transaction's own fields a message may quote: amount, currency, country, channel.
Context = dict[str, str]


def _f(row: np.ndarray, name: str) -> float:
    return float(row[FEATURE_INDEX[name]])


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} seconds"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.1f} days"


def _amount_high(row: np.ndarray, ctx: Context) -> tuple[float, str]:
    ratio = _f(row, "amount_ratio_30d")
    if _f(row, "c_n_30d") == 0:
        return ratio, "no 30-day history for this customer to compare the amount with"
    return ratio, f"amount is {ratio:.1f}× this customer's 30-day average"


def _amount_level(row: np.ndarray, ctx: Context) -> tuple[float, str]:
    amount = math.expm1(_f(row, "amount_log"))
    return round(amount, 2), f"amount of {ctx['amount']} {ctx['currency']} is in a range where fraud is more common"


def _velocity(row: np.ndarray, ctx: Context) -> tuple[float, str]:
    n1h, n1d = _f(row, "c_n_1h"), _f(row, "c_n_1d")
    return n1h, f"{n1h:.0f} earlier transactions by this customer in the last hour ({n1d:.0f} in the last day)"


def _succession(row: np.ndarray, ctx: Context) -> tuple[float, str]:
    gap = math.expm1(_f(row, "log_secs_since_prev"))
    if gap >= MAX_GAP_SECONDS - 1:
        return round(gap), "no earlier transaction by this customer in the last 30 days"
    return round(gap), f"only {_duration(gap)} since this customer's previous transaction"


def _history(row: np.ndarray, ctx: Context) -> tuple[float, str]:
    n30 = _f(row, "c_n_30d")
    return n30, f"this customer has {n30:.0f} transactions in the last 30 days"


def _new_merchant(row: np.ndarray, ctx: Context) -> tuple[float, str]:
    value = _f(row, "new_merchant_30d")
    if value:
        return value, "first payment by this customer at this merchant in 30 days"
    return value, "this customer already paid at this merchant in the last 30 days"


def _new_country(row: np.ndarray, ctx: Context) -> tuple[float, str]:
    value = _f(row, "new_country_30d")
    if value:
        return value, f"first transaction in {ctx['country']} for this customer in 30 days"
    return value, f"this customer already made transactions in {ctx['country']} in the last 30 days"


def _merchant_risk(row: np.ndarray, ctx: Context) -> tuple[float, str]:
    risk = _f(row, "m_risk_30d")
    return round(risk, 4), (
        f"{risk * 100:.1f}% of this merchant's transactions in the 30 days before the label delay are confirmed fraud"
    )


def _merchant_volume(row: np.ndarray, ctx: Context) -> tuple[float, str]:
    n1d = _f(row, "m_n_1d")
    return n1d, f"{n1d:.0f} transactions at this merchant in the last day"


def _time_of_day(row: np.ndarray, ctx: Context) -> tuple[float, str]:
    if _f(row, "is_night"):
        return 1.0, "made at night (00:00–06:00 UTC)"
    if _f(row, "is_weekend"):
        return 0.0, "made at the weekend"
    return 0.0, "made during the day on a weekday"


def _channel(row: np.ndarray, ctx: Context) -> tuple[float, str]:
    channel = ctx.get("channel") or "unspecified"
    return _f(row, "channel_online"), f"{channel} channel"


def _card_velocity(row: np.ndarray, ctx: Context) -> tuple[float, str]:
    n1h, n1d = _f(row, "card_n_1h"), _f(row, "card_n_1d")
    return n1h, f"{n1h:.0f} earlier payments with this card in the last hour ({n1d:.0f} in the last day)"


MESSAGES: dict[str, Callable[[np.ndarray, Context], tuple[float, str]]] = {
    "AMOUNT_HIGH_FOR_CUSTOMER": _amount_high,
    "AMOUNT_LEVEL": _amount_level,
    "CUSTOMER_VELOCITY": _velocity,
    "RAPID_SUCCESSION": _succession,
    "CUSTOMER_HISTORY": _history,
    "NEW_MERCHANT_FOR_CUSTOMER": _new_merchant,
    "NEW_COUNTRY_FOR_CUSTOMER": _new_country,
    "MERCHANT_FRAUD_RATE": _merchant_risk,
    "MERCHANT_VOLUME": _merchant_volume,
    "TIME_OF_DAY": _time_of_day,
    "CHANNEL": _channel,
    "CARD_VELOCITY": _card_velocity,
}


def describe(contributions: list[Contribution], row: np.ndarray, ctx: Context) -> list[dict[str, Any]]:
    """JSON-ready reasons, in the order given (largest contribution first)."""
    reasons = []
    for c in contributions:
        value, message = MESSAGES[c.group.code](row, ctx)
        reasons.append(
            {
                "code": c.group.code,
                "value": round(float(value), 4),
                "contribution": round(c.delta, 6),
                "message": message,
            }
        )
    return reasons
