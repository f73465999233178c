"""The temporal evaluation protocol of the card-fraud literature. No Django import.

Train on ``[train_start, train_start + train_days)``, skip ``delay_days`` (their labels are not
known yet), test on the next ``test_days``. Card Precision@k: for each test day, rank the
customers (cards) that transacted that day by their highest score, leaving out customers already
known to be compromised (a fraud label from the start of training up to that day minus the
delay) and those caught on earlier test days; precision of the top k; averaged over the days."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from fraud.features import DAY


def card_precision_at_k(
    *,
    ts: np.ndarray,
    customer: np.ndarray,
    scores: np.ndarray,
    fraud: np.ndarray,
    test_start: int,
    test_days: int,
    k: int,
    known_compromised_before: Mapping[str, int],
    delay: int,
) -> tuple[float, list[float]]:
    """Mean daily precision of the top ``k`` customers, and the daily values.

    ``known_compromised_before[c]`` is the earliest transaction time of a fraud on customer ``c``
    (from the start of training); on a test day starting at ``d`` that customer counts as already
    known when that time is before ``d - delay``."""
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
        candidates = [
            (s, f, c)
            for c, (s, f) in best.items()
            if c not in caught and not (c in known_compromised_before and known_compromised_before[c] < start - delay)
        ]
        candidates.sort(key=lambda item: (-item[0], item[2]))
        top = candidates[:k]
        hits = [c for s, f, c in top if f]
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
