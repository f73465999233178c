"""Feature definitions: one source of truth for training (offline) and scoring (online).

No Django import: this module is shared by the scoring path, training, evaluation and batch jobs.

A feature vector is built in two steps:

1. *Aggregates* over the history strictly before the transaction's time ``t`` (all times are
   integer microseconds since the Unix epoch, UTC):
   - customer windows ``[t - w, t)`` for w in 1 h, 1 d, 7 d, 30 d: count, amount sum (and sum of
     squares and the largest amount over 30 d), the previous transaction's time, prior payments at
     this merchant, in this country and in this currency over 30 d;
   - merchant volume ``[t - w, t)`` for w in 1, 7, 30 d;
   - merchant risk over the delayed windows ``[t - D - w, t - D)`` (``D`` = the label delay, w in
     1, 3, 7, 14, 21, 30 d): the transactions there and those labelled fraud *with the label known
     by t* (``label_time <= t``).
   Online, the database computes these (``fraud.features.store``); offline, ``aggregate_offline``
   computes them vectorised over a history table. A test proves the two agree.
2. ``assemble`` turns aggregates plus the transaction's own fields into the model's inputs. Both
   paths call it, so the feature maths exists once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np

# v2: card velocity; v3: amount against older history and the 30-day maximum, spend shift, merchant
# fraud counts; v4: the payment's currency against the customer's history, and the country's and
# the currency's share of the customer's payments (a change of country or currency, not only a
# first one).
FEATURE_SET_VERSION = "v4"

US_PER_SECOND = 1_000_000
HOUR = 3600 * US_PER_SECOND
DAY = 24 * HOUR

CUSTOMER_COUNT_WINDOWS = {"1h": HOUR, "1d": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
CUSTOMER_SUM_WINDOWS = {"1d": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
MERCHANT_WINDOWS = {"1d": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
# Merchant risk over the delayed windows: the v2 three, and (v3) 3, 14 and 21 days between them.
# Together they date a breach: a merchant all fraud for 21 days has been breached for at least 28.
MERCHANT_RISK_WINDOWS = {**MERCHANT_WINDOWS, "3d": 3 * DAY, "14d": 14 * DAY, "21d": 21 * DAY}
V3_RISK_WINDOWS = ("3d", "14d", "21d")
CARD_WINDOWS = {"1h": HOUR, "1d": DAY}
NOVELTY_WINDOW = 30 * DAY
# Without a previous transaction the gap is taken as this long (the longest customer window).
MAX_GAP_SECONDS = 30 * 24 * 3600.0

AGGREGATE_NAMES: tuple[str, ...] = (
    *(f"c_n_{w}" for w in CUSTOMER_COUNT_WINDOWS),
    *(f"c_sum_{w}" for w in CUSTOMER_SUM_WINDOWS),
    "c_sumsq_30d",
    "c_max_30d",  # the customer's largest amount in [t - 30 d, t), 0 without history
    "c_prev_ts",  # microseconds, or -1 when the customer has no earlier transaction
    "cm_n_30d",  # this customer's payments at this merchant
    "cc_n_30d",  # this customer's payments in this country
    "cu_n_30d",  # this customer's payments in this currency
    *(f"k_n_{w}" for w in CARD_WINDOWS),  # earlier payments with the same card (0 without a card)
    *(f"m_n_{w}" for w in MERCHANT_WINDOWS),
    *(f"m_dn_{w}" for w in MERCHANT_RISK_WINDOWS),  # delayed-window volume (risk denominator)
    *(f"m_fraud_{w}" for w in MERCHANT_RISK_WINDOWS),  # delayed-window known fraud (risk numerator)
)

FEATURE_NAMES: tuple[str, ...] = (
    "amount_log",
    "c_n_1h",
    "c_n_1d",
    "c_n_7d",
    "c_n_30d",
    "c_avg_1d",
    "c_avg_7d",
    "c_avg_30d",
    "amount_ratio_30d",
    "amount_zscore_30d",
    "log_secs_since_prev",
    "new_merchant_30d",
    "new_country_30d",
    "m_n_1d",
    "m_n_7d",
    "m_n_30d",
    "m_risk_1d",
    "m_risk_7d",
    "m_risk_30d",
    "is_night",
    "is_weekend",
    "channel_online",
    "channel_atm",
    "has_card",
    "card_n_1h",
    "card_n_1d",
    # v3. Appended, never inserted: a model of an earlier set reads its columns by name (scoring).
    "amount_ratio_older",  # against the customer's payments 7–30 days ago, before a recent compromise
    "spend_shift_7d",  # the last 7 days' average against that older average
    "amount_ratio_max_30d",  # against the customer's largest payment in 30 days
    "m_fraud_n_1d",  # known fraud at the merchant in the delayed windows, as counts: a rate of
    "m_fraud_n_7d",  # 1/1 and one of 40/40 are different evidence
    "m_fraud_n_30d",
    *(f"m_risk_{w}" for w in V3_RISK_WINDOWS),
    *(f"m_fraud_n_{w}" for w in V3_RISK_WINDOWS),
    # v4, appended likewise.
    "new_currency_30d",  # no payment by this customer in this currency in 30 days (1 without history)
    "country_share_30d",  # the share of the customer's 30-day payments made in this country
    "currency_share_30d",  # the share of them made in this currency
)
FEATURE_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}


@dataclass(frozen=True)
class ReasonGroup:
    """Features explained together: neutralising the whole group measures its effect."""

    code: str
    features: tuple[str, ...]


REASON_GROUPS: tuple[ReasonGroup, ...] = (
    ReasonGroup(
        "AMOUNT_HIGH_FOR_CUSTOMER",
        ("amount_ratio_30d", "amount_zscore_30d", "amount_ratio_older", "amount_ratio_max_30d"),
    ),
    ReasonGroup("AMOUNT_LEVEL", ("amount_log",)),
    ReasonGroup("CUSTOMER_VELOCITY", ("c_n_1h", "c_n_1d")),
    ReasonGroup("RAPID_SUCCESSION", ("log_secs_since_prev",)),
    ReasonGroup("CUSTOMER_HISTORY", ("c_n_7d", "c_n_30d", "c_avg_1d", "c_avg_7d", "c_avg_30d", "spend_shift_7d")),
    ReasonGroup("NEW_MERCHANT_FOR_CUSTOMER", ("new_merchant_30d",)),
    # The share beside the first-time flag: the model reads "2 of 37 payments there" as well as
    # "none", and neutralising one without the other would leave it the same evidence.
    ReasonGroup("NEW_COUNTRY_FOR_CUSTOMER", ("new_country_30d", "country_share_30d")),
    ReasonGroup("NEW_CURRENCY_FOR_CUSTOMER", ("new_currency_30d", "currency_share_30d")),
    ReasonGroup(
        "MERCHANT_FRAUD_RATE",
        tuple(f"m_risk_{w}" for w in MERCHANT_RISK_WINDOWS) + tuple(f"m_fraud_n_{w}" for w in MERCHANT_RISK_WINDOWS),
    ),
    ReasonGroup("MERCHANT_VOLUME", ("m_n_1d", "m_n_7d", "m_n_30d")),
    ReasonGroup("TIME_OF_DAY", ("is_night", "is_weekend")),
    ReasonGroup("CHANNEL", ("channel_online", "channel_atm")),
    ReasonGroup("CARD_VELOCITY", ("card_n_1h", "card_n_1d")),
)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_epoch_us(moment: datetime) -> int:
    """Exact integer microseconds since the epoch (``datetime.timestamp()`` is a float and can
    be off by one microsecond, which would move a row across a window edge)."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_epoch_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(value))


def calendar_flags(ts_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Night (00:00–05:59 UTC) and weekend (Saturday, Sunday) flags for epoch microseconds."""
    seconds = ts_us // US_PER_SECOND
    hour = (seconds // 3600) % 24
    weekday = (seconds // 86400 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return (hour < 6).astype(np.float64), (weekday >= 5).astype(np.float64)


def assemble(
    aggregates: Mapping[str, np.ndarray],
    *,
    amount: np.ndarray,
    ts_us: np.ndarray,
    channel: np.ndarray,
    has_card: np.ndarray,
) -> np.ndarray:
    """Model inputs, shape ``[n, len(FEATURE_NAMES)]`` float32, from aggregates and the
    transactions' own amount, time (epoch µs), channel (strings) and whether a card was sent."""
    agg = {name: np.asarray(aggregates[name], dtype=np.float64) for name in AGGREGATE_NAMES}
    amount = np.asarray(amount, dtype=np.float64)
    ts_us = np.asarray(ts_us, dtype=np.int64)
    channel = np.asarray(channel)
    n = amount.shape[0]

    def safe_div(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
        out = np.full(n, empty, dtype=np.float64)
        np.divide(num, den, out=out, where=den > 0)
        return out

    avg = {w: safe_div(agg[f"c_sum_{w}"], agg[f"c_n_{w}"], 0.0) for w in CUSTOMER_SUM_WINDOWS}
    n30 = agg["c_n_30d"]
    ratio = safe_div(amount, avg["30d"], 1.0)
    mean_sq = safe_div(agg["c_sumsq_30d"], n30, 0.0)
    std = np.sqrt(np.maximum(mean_sq - avg["30d"] ** 2, 0.0))
    # A floor keeps the z-score finite for customers whose few amounts are all alike.
    scale = np.maximum(np.maximum(std, 0.1 * avg["30d"]), 0.01)
    zscore = np.where(n30 > 0, np.clip((amount - avg["30d"]) / scale, -50.0, 50.0), 0.0)
    prev = agg["c_prev_ts"]
    # The customer's average before the last 7 days: a compromise in the last week inflates the
    # 30-day average it is compared with, the older part is still the customer's own.
    n_older = n30 - agg["c_n_7d"]
    avg_older = safe_div(agg["c_sum_30d"] - agg["c_sum_7d"], n_older, 0.0)
    has_older = (n_older > 0) & (avg_older > 0)
    ratio_older = np.where(has_older, amount / np.where(has_older, avg_older, 1.0), 1.0)
    shift = np.where(has_older & (agg["c_n_7d"] > 0), avg["7d"] / np.where(has_older, avg_older, 1.0), 1.0)
    gap = np.where(prev >= 0, (ts_us - prev) / US_PER_SECOND, MAX_GAP_SECONDS)
    gap = np.clip(gap, 0.0, MAX_GAP_SECONDS)
    night, weekend = calendar_flags(ts_us)
    columns = {
        "amount_log": np.log1p(amount),
        "c_n_1h": agg["c_n_1h"],
        "c_n_1d": agg["c_n_1d"],
        "c_n_7d": agg["c_n_7d"],
        "c_n_30d": n30,
        "c_avg_1d": avg["1d"],
        "c_avg_7d": avg["7d"],
        "c_avg_30d": avg["30d"],
        "amount_ratio_30d": ratio,
        "amount_zscore_30d": zscore,
        "log_secs_since_prev": np.log1p(gap),
        "new_merchant_30d": (agg["cm_n_30d"] == 0).astype(np.float64),
        "new_country_30d": (agg["cc_n_30d"] == 0).astype(np.float64),
        **{f"m_n_{w}": agg[f"m_n_{w}"] for w in MERCHANT_WINDOWS},
        **{f"m_risk_{w}": safe_div(agg[f"m_fraud_{w}"], agg[f"m_dn_{w}"], 0.0) for w in MERCHANT_RISK_WINDOWS},
        "is_night": night,
        "is_weekend": weekend,
        "channel_online": (channel == "online").astype(np.float64),
        "channel_atm": (channel == "atm").astype(np.float64),
        "has_card": np.asarray(has_card, dtype=np.float64),
        **{f"card_n_{w}": agg[f"k_n_{w}"] for w in CARD_WINDOWS},
        "amount_ratio_older": ratio_older,
        "spend_shift_7d": shift,
        "amount_ratio_max_30d": safe_div(amount, agg["c_max_30d"], 1.0),
        **{f"m_fraud_n_{w}": agg[f"m_fraud_{w}"] for w in MERCHANT_RISK_WINDOWS},
        "new_currency_30d": (agg["cu_n_30d"] == 0).astype(np.float64),
        # Without history nothing is a change: the share is 1, as for a customer who always pays there.
        "country_share_30d": safe_div(agg["cc_n_30d"], n30, 1.0),
        "currency_share_30d": safe_div(agg["cu_n_30d"], n30, 1.0),
    }
    return np.column_stack([columns[name] for name in FEATURE_NAMES]).astype(np.float32)


# --- Offline: vectorised aggregates over a history table ------------------------------------


@dataclass
class Frame:
    """Columns of transactions. ``customer`` and ``merchant`` are entity keys that already
    include the owner (e.g. ``"7\\x1fcust-1"``), so histories never mix API clients.
    ``fraud_known_at`` is the label time of fraud-labelled rows and ``NOT_FRAUD`` otherwise."""

    customer: np.ndarray
    merchant: np.ndarray
    country: np.ndarray
    currency: np.ndarray
    channel: np.ndarray
    ts: np.ndarray  # int64 epoch microseconds
    amount: np.ndarray  # float64
    fraud_known_at: np.ndarray  # int64 epoch microseconds
    card: np.ndarray  # owner-scoped card fingerprint key, "" when no card was sent

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @classmethod
    def concat(cls, *frames: Frame) -> Frame:
        return cls(**{name: np.concatenate([getattr(f, name) for f in frames]) for name in cls.__dataclass_fields__})


NOT_FRAUD = np.iinfo(np.int64).max


def _codes(*columns: np.ndarray) -> list[np.ndarray]:
    """Integer codes shared across several arrays of the same kind of key, numbered in order of
    first appearance (a dict: twice as fast as sorting the strings with ``np.unique``)."""
    index: dict[object, int] = {}
    return [
        np.fromiter((index.setdefault(k, len(index)) for k in column.tolist()), dtype=np.int64, count=len(column))
        for column in columns
    ]


def _pair_codes(a: list[np.ndarray], b: list[np.ndarray]) -> list[np.ndarray]:
    """Codes of (a, b) pairs, given each side's codes for the same arrays: integer arithmetic
    in place of joining the strings, renumbered densely (group numbers bound a search's work)."""
    width = max((int(c.max()) + 1 for c in b if len(c)), default=1)
    _, inverse = np.unique(np.concatenate([x * width + y for x, y in zip(a, b, strict=True)]), return_inverse=True)
    out, start = [], 0
    for column in a:
        out.append(inverse[start : start + len(column)].astype(np.int64))
        start += len(column)
    return out


class _Grouped:
    """History rows sorted by (group, time), answering per-target range queries in one
    vectorised ``searchsorted``. Times are shifted per group so one sorted key serves all groups;
    groups are processed in chunks small enough that the shifted key never overflows int64."""

    def __init__(self, group: np.ndarray, ts: np.ndarray, values: Mapping[str, np.ndarray] | None = None):
        order = np.lexsort((ts, group))
        self.group = group[order]
        self.ts = ts[order]
        self.values = {name: np.asarray(v, dtype=np.float64)[order] for name, v in (values or {}).items()}
        self.sums = {name: np.concatenate(([0.0], np.cumsum(v))) for name, v in self.values.items()}

    def positions(
        self, tgt_group: np.ndarray, tgt_time: np.ndarray, side: Literal["left", "right"] = "left"
    ) -> np.ndarray:
        """Index of the first history row of the target's group with time >= (or > for
        side='right') the target's time."""
        if len(self.ts) == 0:
            return np.zeros(len(tgt_time), dtype=np.int64)
        lo_t = min(int(self.ts.min()), int(tgt_time.min())) if len(tgt_time) else int(self.ts.min())
        hi_t = max(int(self.ts.max()), int(tgt_time.max())) if len(tgt_time) else int(self.ts.max())
        span = hi_t - lo_t + 2
        per_chunk = max(1, (2**62) // span)
        out = np.empty(len(tgt_time), dtype=np.int64)
        g_max = int(max(self.group.max(), tgt_group.max() if len(tgt_group) else 0))
        for g0 in range(0, g_max + 1, per_chunk):
            g1 = g0 + per_chunk
            hmask_lo = np.searchsorted(self.group, g0, side="left")
            hmask_hi = np.searchsorted(self.group, g1, side="left")
            tmask = (tgt_group >= g0) & (tgt_group < g1)
            if not tmask.any():
                continue
            hkey = (self.group[hmask_lo:hmask_hi] - g0) * span + (self.ts[hmask_lo:hmask_hi] - lo_t)
            tkey = (tgt_group[tmask] - g0) * span + (tgt_time[tmask] - lo_t)
            out[tmask] = hmask_lo + np.searchsorted(hkey, tkey, side=side)
        return out

    def range_max(self, name: str, lo: np.ndarray, hi: np.ndarray, empty: float = 0.0) -> np.ndarray:
        """Per target, the largest ``name`` value among sorted history rows [lo, hi) (``empty``
        where the range is empty): a sparse table over the sorted values, as deep as the
        longest range needs, answering every range with two overlapping power-of-two blocks."""
        values = self.values[name]
        length = hi - lo
        out = np.full(len(lo), empty, dtype=np.float64)
        nonempty = length > 0
        if not nonempty.any():
            return out
        levels = [values]
        while 2 ** len(levels) <= int(length.max()):
            half = 2 ** (len(levels) - 1)
            prev = levels[-1]
            levels.append(np.maximum(prev[:-half], prev[half:]))
        lo_, hi_, length_ = lo[nonempty], hi[nonempty], length[nonempty]
        k = np.floor(np.log2(length_)).astype(np.int64)
        # log2 of an exact power of two can round down a level too far; correct it both ways.
        k = np.where(2 ** (k + 1) <= length_, k + 1, k)
        k = np.where(2**k > length_, k - 1, k)
        result = np.empty(len(lo_), dtype=np.float64)
        for level in np.unique(k):
            rows = k == level
            table = levels[int(level)]
            result[rows] = np.maximum(table[lo_[rows]], table[hi_[rows] - 2 ** int(level)])
        out[nonempty] = result
        return out

    def window(self, tgt_group: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row index range [lo, hi) of history rows in the target's group with start <= t < end."""
        return self.positions(tgt_group, start), self.positions(tgt_group, end)

    def count(self, tgt_group: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        lo, hi = self.window(tgt_group, start, end)
        counts: np.ndarray = (hi - lo).astype(np.float64)
        return counts


def _known_fraud_counts(
    history: Frame, merchant_h: np.ndarray, targets_t: np.ndarray, merchant_t: np.ndarray, delay: int, width: int
) -> np.ndarray:
    """Per target, fraud rows at its merchant with ts in [t - delay - width, t - delay) whose label
    was known by t. Each fraud row adds one to the targets whose time falls in
    [max(ts + delay + 1µs, label_time), ts + delay + width]: a range update over the targets
    sorted by (merchant, time), summed with a difference array."""
    fraud = history.fraud_known_at != NOT_FRAUD
    counts = np.zeros(len(targets_t), dtype=np.float64)
    if not fraud.any() or len(targets_t) == 0:
        return counts
    ts_f = history.ts[fraud]
    lower = np.maximum(ts_f + delay + 1, history.fraud_known_at[fraud])
    upper = ts_f + delay + width
    valid = lower <= upper
    by_target = _Grouped(merchant_t, targets_t)
    lo = by_target.positions(merchant_h[fraud][valid], lower[valid], side="left")
    hi = by_target.positions(merchant_h[fraud][valid], upper[valid], side="right")
    diff = np.zeros(len(targets_t) + 1, dtype=np.int64)
    np.add.at(diff, lo, 1)
    np.add.at(diff, hi, -1)
    sorted_counts = np.cumsum(diff[:-1])
    # by_target sorted the targets; map counts back to the callers' order.
    order = np.lexsort((targets_t, merchant_t))
    counts[order] = sorted_counts
    return counts


def customer_aggregates(
    history: Frame, targets: Frame, *, merchant_codes: list[np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """The customer's and the card's aggregates of every target (``c_*``, ``cm_*``, ``cc_*``,
    ``cu_*``, ``k_*``) from ``history``: only rows strictly before each target's time count.
    ``merchant_codes``: ``_codes(history.merchant, targets.merchant)`` if the caller has them."""
    customer = _codes(history.customer, targets.customer)
    cust_h, cust_t = customer
    cm_h, cm_t = _pair_codes(customer, merchant_codes or _codes(history.merchant, targets.merchant))
    cc_h, cc_t = _pair_codes(customer, _codes(history.country, targets.country))
    cu_h, cu_t = _pair_codes(customer, _codes(history.currency, targets.currency))
    t = targets.ts.astype(np.int64)
    out: dict[str, np.ndarray] = {}

    amount = history.amount.astype(np.float64)
    customers = _Grouped(cust_h, history.ts, {"amount": amount, "amount_sq": amount * amount})
    for w, width in CUSTOMER_COUNT_WINDOWS.items():
        lo, hi = customers.window(cust_t, t - width, t)
        out[f"c_n_{w}"] = (hi - lo).astype(np.float64)
        if w in CUSTOMER_SUM_WINDOWS:
            out[f"c_sum_{w}"] = customers.sums["amount"][hi] - customers.sums["amount"][lo]
        if w == "30d":
            out["c_sumsq_30d"] = customers.sums["amount_sq"][hi] - customers.sums["amount_sq"][lo]
            out["c_max_30d"] = customers.range_max("amount", lo, hi)
    before = customers.positions(cust_t, t) - 1
    has_prev = (before >= 0) & (customers.group[np.maximum(before, 0)] == cust_t)
    out["c_prev_ts"] = np.where(has_prev, customers.ts[np.maximum(before, 0)], -1).astype(np.float64)
    out["cm_n_30d"] = _Grouped(cm_h, history.ts).count(cm_t, t - NOVELTY_WINDOW, t)
    out["cc_n_30d"] = _Grouped(cc_h, history.ts).count(cc_t, t - NOVELTY_WINDOW, t)
    out["cu_n_30d"] = _Grouped(cu_h, history.ts).count(cu_t, t - NOVELTY_WINDOW, t)
    card_h, card_t = _codes(history.card, targets.card)
    cards = _Grouped(card_h, history.ts)
    with_card = targets.card != ""
    for w, width in CARD_WINDOWS.items():
        # Rows without a card share the "" key; they must not count as one busy card.
        out[f"k_n_{w}"] = np.where(with_card, cards.count(card_t, t - width, t), 0.0)
    return out


def merchant_aggregates(
    history: Frame, targets: Frame, *, label_delay_days: int, merchant_codes: list[np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """The merchant's aggregates of every target (``m_*``) from ``history``: volumes in the
    windows before the target's time, and in the delayed windows with the fraud known by then."""
    delay = label_delay_days * DAY
    merch_h, merch_t = merchant_codes or _codes(history.merchant, targets.merchant)
    t = targets.ts.astype(np.int64)
    out: dict[str, np.ndarray] = {}
    merchants = _Grouped(merch_h, history.ts)
    for w, width in MERCHANT_WINDOWS.items():
        out[f"m_n_{w}"] = merchants.count(merch_t, t - width, t)
    for w, width in MERCHANT_RISK_WINDOWS.items():
        out[f"m_dn_{w}"] = merchants.count(merch_t, t - delay - width, t - delay)
        out[f"m_fraud_{w}"] = _known_fraud_counts(history, merch_h, t, merch_t, delay, width)
    return out


def aggregate_offline(history: Frame, targets: Frame, *, label_delay_days: int) -> dict[str, np.ndarray]:
    """The aggregates of every target computed from ``history`` (which may contain the targets
    themselves: only rows strictly before each target's time count)."""
    merchant = _codes(history.merchant, targets.merchant)  # both halves group by merchant
    return customer_aggregates(history, targets, merchant_codes=merchant) | merchant_aggregates(
        history, targets, label_delay_days=label_delay_days, merchant_codes=merchant
    )


def features_offline(history: Frame, targets: Frame, *, label_delay_days: int) -> np.ndarray:
    aggregates = aggregate_offline(history, targets, label_delay_days=label_delay_days)
    return assemble(
        aggregates, amount=targets.amount, ts_us=targets.ts, channel=targets.channel, has_card=targets.card != ""
    )
