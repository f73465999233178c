"""The temporal evaluation protocol of the card-fraud literature. No Django import.

Train on ``[train_start, train_start + train_days)``, skip ``delay_days`` (their labels are not
known yet), test on the next ``test_days``. The test set leaves out the transactions of cards
(customers) already known to be compromised: a fraud from the start of training up to the test
day's start minus the delay (``not_known_compromised``). Every metric is computed on what is
left. Card Precision@k: for each test day, rank the cards that transacted that day by their
highest score, leaving out those caught on earlier test days; precision of the top k; averaged
over the days. (Le Borgne et al., *Reproducible Machine Learning for Credit Card Fraud
Detection — Practical Handbook*, chapters 3–5.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from fraud.features.definitions import DAY


@dataclass(frozen=True)
class Protocol:
    train_start: datetime
    train_days: int
    delay_days: int
    test_days: int
    k: int = 100

    @property
    def train_end(self) -> datetime:
        return self.train_start + timedelta(days=self.train_days)

    @property
    def test_start(self) -> datetime:
        return self.train_end + timedelta(days=self.delay_days)

    @property
    def test_end(self) -> datetime:
        return self.test_start + timedelta(days=self.test_days)


def not_known_compromised(
    *, ts: np.ndarray, customer: np.ndarray, is_fraud: np.ndarray, train_start: int, test_start: int, delay: int
) -> np.ndarray:
    """Which rows of a history (``ts``, ``customer``, ``is_fraud`` over training, delay and test)
    stay in the test set: those at or after ``test_start`` whose card had no fraud from
    ``train_start`` until before the row's test day start minus ``delay``."""
    fraud_rows = is_fraud & (ts >= train_start)
    first: dict[str, int] = {}
    for c, t in zip(customer[fraud_rows].tolist(), ts[fraud_rows].tolist(), strict=True):
        if t < first.get(c, t + 1):
            first[c] = t
    day_start = test_start + (ts - test_start) // DAY * DAY
    never = np.iinfo(np.int64).max
    first_fraud = np.array([first.get(c, never) for c in customer.tolist()], dtype=np.int64)
    return (ts >= test_start) & (first_fraud >= day_start - delay)


def card_precision_at_k(
    *,
    ts: np.ndarray,
    customer: np.ndarray,
    scores: np.ndarray,
    fraud: np.ndarray,
    test_start: int,
    test_days: int,
    k: int,
) -> tuple[float, list[float]]:
    """Mean daily precision of the top ``k`` cards, and the daily values (test rows only, known
    compromised cards already left out)."""
    caught: set[str] = set()
    daily: list[float] = []
    for day in range(test_days):
        start = test_start + day * DAY
        rows = (ts >= start) & (ts < start + DAY)
        if not rows.any():
            daily.append(0.0)
            continue
        best: dict[str, tuple[float, bool]] = {}
        for c, s, f in zip(customer[rows], scores[rows], fraud[rows], strict=True):
            prev = best.get(c)
            best[c] = (max(s, prev[0]) if prev else s, bool(f) or (prev[1] if prev else False))
        candidates = [(s, f, c) for c, (s, f) in best.items() if c not in caught]
        candidates.sort(key=lambda item: (-item[0], item[2]))
        hits = [c for s, f, c in candidates[:k] if f]
        daily.append(len(hits) / k)
        caught.update(hits)
    return float(np.mean(daily)) if daily else 0.0, daily


def calibration_metrics(y: np.ndarray, scores: np.ndarray, *, bins: int = 10) -> dict[str, float]:
    """How far scores are from being probabilities: the Brier score, and the expected
    calibration error over equal-count bins (mean |observed fraud rate - mean score|, weighted
    by bin size; equal-count because almost every score is near 0)."""
    y = np.asarray(y, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if len(y) == 0:
        return {}
    order = np.argsort(scores, kind="stable")
    ece = 0.0
    for part in np.array_split(order, bins):
        if len(part):
            ece += len(part) / len(y) * abs(float(y[part].mean()) - float(scores[part].mean()))
    return {"brier": float(np.mean((scores - y) ** 2)), "ece": ece, "mean_score": float(scores.mean()),
            "fraud_rate": float(y.mean())}  # fmt: skip


def ranking_metrics(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    if 0 < y.sum() < len(y):
        return {
            "auc_roc": float(roc_auc_score(y, scores)),
            "average_precision": float(average_precision_score(y, scores)),
        }
    return {}
